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
func seedDemo(ctx context.Context, store *geo.Store, accounts *auth.Service, cases *incident.Service, cams *camera.Store, log *slog.Logger) error {
	if err := seedDemoCity(ctx, store, log); err != nil {
		return err
	}
	if err := seedDemoCameras(ctx, cams); err != nil {
		return err
	}
	if err := seedDemoStaff(ctx, store, cases); err != nil {
		return err
	}
	return accounts.SeedDemo(ctx, DemoAccounts())
}

// seedDemoCameras registers one camera per community of the demo city, at
// the middle of its first grid, pointing at where `gridwatch camsim` will
// serve it (live video comes with the camera issue). Existing codes are kept.
func seedDemoCameras(ctx context.Context, cams *camera.Store) error {
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
		sp := camera.Spec{Code: code, Name: f.Name + " 路口摄像机", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{x / k, y / k}},
			Heading: &heading, FOV: &fov, Range: &rng,
			MainURL: fmt.Sprintf("rtsp://demo:demo@127.0.0.1:8554/%s/main", code), SubURL: fmt.Sprintf("rtsp://demo:demo@127.0.0.1:8554/%s/sub", code)}
		if err := sp.Check(geo.CRSWGS84); err != nil {
			return fmt.Errorf("demo camera: %w", err)
		}
		if _, err := cams.Create(ctx, sp); err != nil && gridwatch.ErrorCode(err) != gridwatch.EConflict {
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
