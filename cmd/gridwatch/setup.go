package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"gridwatch"
	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
)

// DemoAccounts are the demo users, one per role; their passwords are in the
// README, for local use only.
func DemoAccounts() []auth.DemoAccount {
	return []auth.DemoAccount{
		{Username: "demo-admin", Password: "gridwatch-admin", DisplayName: "演示管理员", Role: auth.RoleAdmin},
		{Username: "demo-commander", Password: "gridwatch-commander", DisplayName: "指挥中心值班员", Role: auth.RoleCommander},
		{Username: "demo-operator", Password: "gridwatch-operator", DisplayName: "视频操作员", Role: auth.RoleOperator},
		{Username: "demo-gis", Password: "gridwatch-gis", DisplayName: "地理信息编辑", Role: auth.RoleGISEditor},
		{Username: "demo-leader", Password: "gridwatch-leader", DisplayName: "经八路第一社区网格长", Role: auth.RoleGridLeader, GridCodes: []string{"410105001001"}},
	}
}

// seedDemo imports the demo city unless its district is already stored, and
// creates the demo accounts that are missing.
func seedDemo(ctx context.Context, store *geo.Store, accounts *auth.Service, cases *incident.Service, cams *camera.Store,
	simURL func(cam int, stream string) string, log *slog.Logger) error {
	if err := seedDemoCity(ctx, store, log); err != nil {
		return err
	}
	if err := seedDemoCameras(ctx, cams, simURL); err != nil {
		return err
	}
	if err := seedDemoStaff(ctx, store, cases); err != nil {
		return err
	}
	return accounts.SeedDemo(ctx, DemoAccounts())
}

// demoCameras is how many cameras the demo city has: one per community.
const demoCameras = 6

// seedDemoCameras registers one camera per community of the demo city, at
// the middle of its first grid. With simURL (the demo's simulated cameras)
// each points at its simulated camera and records, so it is always pulled
// and the map shows it live; the URLs are brought up to date on every start,
// since the simulator's port changes. Existing cameras keep everything else.
func seedDemoCameras(ctx context.Context, cams *camera.Store, simURL func(int, string) string) error {
	fs, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	n := 0
	for _, f := range fs {
		if f.Level != geo.LevelGrid || seen[f.ParentCode] {
			continue
		}
		seen[f.ParentCode] = true
		n++
		ring := f.Geometry.Polygon(0).Coords()[0]
		var x, y float64
		for _, p := range ring[:len(ring)-1] {
			x += p[0]
			y += p[1]
		}
		k := float64(len(ring) - 1)
		heading, fov, rng := float64((n*73)%360), 70.0, 180.0
		code := fmt.Sprintf("JS-CAM-%02d", n)
		main, sub := fmt.Sprintf("rtsp://demo:demo@127.0.0.1:8554/cam/%d/main", n), fmt.Sprintf("rtsp://demo:demo@127.0.0.1:8554/cam/%d/sub", n)
		if simURL != nil {
			main, sub = simURL(n, "main"), simURL(n, "sub")
		}
		sp := camera.Spec{Code: code, Name: f.Name + " 路口摄像机", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{x / k, y / k}},
			Heading: &heading, FOV: &fov, Range: &rng, MainURL: main, SubURL: sub, Record: simURL != nil}
		if err := sp.Check(geo.CRSWGS84); err != nil {
			return fmt.Errorf("demo camera: %w", err)
		}
		_, err := cams.Create(ctx, sp)
		if gridwatch.ErrorCode(err) == gridwatch.EConflict && simURL != nil {
			var id int64
			if id, err = cams.IDByCode(ctx, code); err == nil {
				_, err = cams.Update(ctx, id, camera.Patch{MainURL: &main, SubURL: &sub, Record: &sp.Record}, geo.CRSWGS84)
			}
		}
		if err != nil && gridwatch.ErrorCode(err) != gridwatch.EConflict {
			return fmt.Errorf("demo camera: %w", err)
		}
	}
	return nil
}

// seedDemoStaff turns each demo grid's 1+X+Y team, kept in its properties,
// into staff that cases are dispatched to; grids with a team are skipped.
func seedDemoStaff(ctx context.Context, store *geo.Store, cases *incident.Service) error {
	grids, _, err := store.List(ctx, geo.Filter{Level: geo.LevelGrid})
	if err != nil {
		return err
	}
	for _, g := range grids {
		team, err := cases.ListStaff(ctx, g.ID)
		if err != nil {
			return err
		}
		if len(team) > 0 {
			continue
		}
		add := func(role string, v any) error {
			name, _ := v.(string)
			org := ""
			if i := strings.Index(name, "（"); i > 0 {
				name, org = name[:i], strings.TrimSuffix(name[i+len("（"):], "）")
			}
			if name == "" {
				return nil
			}
			_, err := cases.AddStaff(ctx, incident.Staff{GridID: g.ID, Role: role, Name: name, Organisation: org})
			return err
		}
		if err := add("leader", g.Properties["leader"]); err != nil {
			return fmt.Errorf("demo staff: %w", err)
		}
		for _, key := range []string{"volunteers", "staff"} {
			list, _ := g.Properties[key].([]any)
			for _, v := range list {
				role := "volunteer"
				if key == "staff" {
					role = "staff"
				}
				if err := add(role, v); err != nil {
					return fmt.Errorf("demo staff: %w", err)
				}
			}
		}
	}
	return nil
}

func seedDemoCity(ctx context.Context, store *geo.Store, log *slog.Logger) error {
	features, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		return fmt.Errorf("demo city: %w", err)
	}
	existing, _, err := store.List(ctx, geo.Filter{Level: geo.LevelDistrict, Limit: 1000})
	if err != nil {
		return err
	}
	for _, g := range existing {
		if g.Code == features[0].Code {
			log.Info("demo city already present", "district", g.Code)
			return nil
		}
	}
	res, err := store.Import(ctx, features, geo.ImportOptions{})
	if err != nil {
		return fmt.Errorf("demo city: %w", err)
	}
	log.Info("demo city seeded", "grids", res.Created)
	return nil
}
