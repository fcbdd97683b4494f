package domain

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
)

// DemoAccount is one of the demo users SeedDemo creates.
type DemoAccount struct {
	Username, Password, DisplayName string
	Role                            auth.Role
	GridCodes                       []string
}

// DemoAccounts are the demo users, one per role; their passwords are in the
// README, for local use only.
func DemoAccounts() []DemoAccount {
	return []DemoAccount{
		{Username: "demo-admin", Password: "gridwatch-admin", DisplayName: "演示管理员", Role: auth.RoleAdmin},
		{Username: "demo-commander", Password: "gridwatch-commander", DisplayName: "指挥中心值班员", Role: auth.RoleCommander},
		{Username: "demo-operator", Password: "gridwatch-operator", DisplayName: "视频操作员", Role: auth.RoleOperator},
		{Username: "demo-gis", Password: "gridwatch-gis", DisplayName: "地理信息编辑", Role: auth.RoleGISEditor},
		{Username: "demo-leader", Password: "gridwatch-leader", DisplayName: "经八路第一社区网格长", Role: auth.RoleGridLeader, GridCodes: []string{"410105001001"}},
	}
}

// DemoIntegrationToken is the demo city's integration token (a 12345
// hotline), for local use.
const DemoIntegrationToken = "gw_demo-integration-token-for-local-use-only"

// DemoCameras is how many cameras the demo city has: one H.264 camera per
// community (JS-CAM-01…06), and one H.265 dome without a sub stream in the
// second grid of the first community (JS-H265-07), as many cameras in the
// field are set: browsers without an H.265 decoder watch it transcoded.
const DemoCameras = 7

// DemoH265Camera is the code of the demo's H.265 camera.
const DemoH265Camera = "JS-H265-07"

// DemoOptions say how the demo is seeded.
type DemoOptions struct {
	// SimURL, when set, is the URL of a stream of the demo's simulated
	// cameras (camera 1…DemoCameras, stream "main" or "sub"): the demo
	// cameras point at them and record, so the map shows them live.
	SimURL func(cam int, stream string) string
	// ONVIFURL, when set, is the ONVIF device service of a simulated
	// camera: the demo's H.265 dome is managed over ONVIF (PTZ, presets).
	ONVIFURL func(cam int) string
	// Tasks seeds a few cases dispatched to the demo grid leader (the field
	// app's "my tasks"), once.
	Tasks bool
	// Year seeds a year of cases (DemoYearCases, demo_year.go) worked
	// through the workflow, once: the statistics, the map's shading and
	// the overdue lists have something to show.
	Year bool
	// Base seeds the base data (demo_base.go): buildings, parcels,
	// components and, when the base-data service has its key ring,
	// households with synthetic residents, once.
	Base bool
}

// DemoONVIFAccount is the account of the demo's simulated ONVIF devices.
var DemoONVIFAccount = camera.ONVIFAccount{Username: "demo", Password: "demo-camera"}

// SeedDemo fills the database with the demo: the demo city unless its
// district is stored already, one camera per community, each grid's team as
// staff, the demo accounts that are missing and the demo integration token;
// as opts ask, the base data, a year of cases and the grid leader's tasks.
// Run again, it adds only what is missing (and points the cameras at the
// simulator's new port).
func (d *Domain) SeedDemo(ctx context.Context, opts DemoOptions) error {
	city, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		return fmt.Errorf("demo city: %w", err)
	}
	if err := d.seedDemoCity(ctx, city); err != nil {
		return err
	}
	if err := d.seedDemoCameras(ctx, city, opts.SimURL, opts.ONVIFURL); err != nil {
		return err
	}
	if err := d.seedDemoStaff(ctx); err != nil {
		return err
	}
	if err := d.seedDemoAccess(ctx); err != nil {
		return err
	}
	// The base data first: the year's component cases name components.
	now := time.Now()
	if opts.Base {
		if err := d.seedDemoBase(ctx, now.In(demoZone).Year()); err != nil {
			return err
		}
		if err := d.seedDemoVisits(ctx, now); err != nil {
			return err
		}
	}
	if opts.Year {
		if err := d.seedDemoYear(ctx, now); err != nil {
			return err
		}
	}
	if !opts.Tasks {
		return nil
	}
	return d.seedDemoTasks(ctx)
}

// demoTasks are the cases the demo dispatches to its grid leader: one
// overdue, one due today, one being handled.
var demoTasks = []struct {
	category, title string
	age             time.Duration
	dx, dy          float64
	handling        bool
}{
	{"0101", "小区门口垃圾满溢 · Overflowing bins at the gate", 50 * time.Hour, -0.3, 0.2, false},
	{"0504", "人行道乱停电动车 · E-bikes blocking the pavement", 2 * time.Hour, 0.25, -0.1, false},
	{"0101", "楼道堆放杂物 · Clutter in the stairwell", 5 * time.Hour, 0.05, 0.3, true},
}

// seedDemoTasks links the demo grid leader's account to the leader of its
// grid's team and dispatches demoTasks to it, each once (external ids make
// a second seeding find them).
func (d *Domain) seedDemoTasks(ctx context.Context) error {
	var leader DemoAccount
	for _, a := range DemoAccounts() {
		if a.Role == auth.RoleGridLeader {
			leader = a
		}
	}
	// The demo leader's scope is a community: the account leads each of
	// its grids' teams.
	scope, _, err := d.Grids.List(ctx, geo.Filter{Code: leader.GridCodes[0], Limit: 1})
	if err != nil || len(scope) == 0 {
		return fmt.Errorf("demo tasks: grid %s: %v", leader.GridCodes[0], err)
	}
	grids, _, err := d.Grids.List(ctx, geo.Filter{Scope: []int64{scope[0].ID}, Level: geo.LevelGrid, Geometry: true})
	if err != nil || len(grids) == 0 {
		return fmt.Errorf("demo tasks: the grids of %s: %v", leader.GridCodes[0], err)
	}
	users, err := d.Auth.ListUsers(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.Username != leader.Username {
			continue
		}
		for _, g := range grids {
			if err := d.Incidents.LinkStaff(ctx, g.ID, "leader", u.ID); err != nil {
				return err
			}
		}
	}
	g := grids[0]
	if err := d.Locator.Refresh(ctx); err != nil {
		return err
	}
	box := g.Geometry.Bounds()
	mid := [2]float64{(box.Min(0) + box.Max(0)) / 2, (box.Min(1) + box.Max(1)) / 2}
	w, h := box.Max(0)-box.Min(0), box.Max(1)-box.Min(1)
	now := time.Now()
	ctx = audit.WithActor(ctx, audit.Actor{Kind: "system", Name: "demo"})
	for i, task := range demoTasks {
		lon, lat := mid[0]+task.dx*w, mid[1]+task.dy*h
		if ref, ok := d.Locator.Assign(lon, lat); !ok || ref.ID != g.ID {
			lon, lat = mid[0], mid[1]
		}
		in, created, err := d.Incidents.Create(ctx, incident.NewIncident{Source: "superior", ExternalID: fmt.Sprintf("demo-task-%d", i+1),
			Category: task.category, Title: task.title, Lon: lon, Lat: lat, ReportedAt: now.Add(-task.age), Priority: "normal"},
			incident.Reporter{Name: "demo"}, incident.Viewer{})
		if err != nil {
			return fmt.Errorf("demo task: %w", err)
		}
		if !created {
			continue
		}
		steps := []incident.Status{incident.Registered, incident.Dispatched}
		if task.handling {
			steps = append(steps, incident.InProgress)
		}
		for _, to := range steps {
			req := incident.TransitionRequest{To: to, Version: in.Version}
			if to == incident.Dispatched {
				req.GridID = &g.ID
			}
			if in, err = d.Incidents.Transition(ctx, in.ID, req, incident.Viewer{}, "demo",
				func(incident.Stage) bool { return true }); err != nil {
				return fmt.Errorf("demo task: %w", err)
			}
		}
	}
	d.log.Info("demo tasks seeded", "grid", g.Code)
	return nil
}

func (d *Domain) seedDemoCity(ctx context.Context, features []geo.ImportFeature) error {
	existing, _, err := d.Grids.List(ctx, geo.Filter{Level: geo.LevelDistrict, Limit: 1000})
	if err != nil {
		return err
	}
	for _, g := range existing {
		if g.Code == features[0].Code {
			d.log.Info("demo city already present", "district", g.Code)
			return nil
		}
	}
	res, err := d.Grids.Import(ctx, features, geo.ImportOptions{})
	if err != nil {
		return fmt.Errorf("demo city: %w", err)
	}
	d.log.Info("demo city seeded", "grids", res.Created)
	return nil
}

// seedDemoCameras registers one camera per community of the demo city, at
// the middle of its first grid. With simURL each points at its simulated
// camera and records, so it is always pulled and the map shows it live; the
// URLs are brought up to date on every start, since the simulator's port
// changes. Existing cameras keep everything else.
func (d *Domain) seedDemoCameras(ctx context.Context, city []geo.ImportFeature, simURL func(int, string) string, onvifURL func(int) string) error {
	seen := map[string]bool{}
	n := 0
	var second *geo.ImportFeature // the first community's second grid
	var places []*geo.ImportFeature
	for i, f := range city {
		if f.Level != geo.LevelGrid {
			continue
		}
		if seen[f.ParentCode] {
			if len(places) == 1 && second == nil && f.ParentCode == places[0].ParentCode {
				second = &city[i]
			}
			continue
		}
		seen[f.ParentCode] = true
		places = append(places, &city[i])
	}
	if second != nil {
		places = append(places, second)
	}
	for _, f := range places {
		n++
		ring := f.Geometry.Polygon(0).Coords()[0]
		var x, y float64
		for _, p := range ring[:len(ring)-1] {
			x += p[0]
			y += p[1]
		}
		k := float64(len(ring) - 1)
		heading, fov, rng := float64((n*73)%360), 70.0, 180.0
		code, name := fmt.Sprintf("JS-CAM-%02d", n), f.Name+" 路口摄像机"
		mainStream, subStream := "main", "sub"
		// Cameras with sound, as the city's are: AAC on the first, G.711
		// A-law on the second (the simulator's streams with a beep at each
		// keyframe).
		switch n {
		case 1:
			mainStream, subStream = "main-aac", "sub-aac"
		case 2:
			mainStream, subStream = "main-pcma", "sub-pcma"
		}
		if f == second {
			code, name, mainStream, subStream = DemoH265Camera, f.Name+" H.265 球机", "h265", ""
		}
		main, sub := fmt.Sprintf("rtsp://demo:demo@127.0.0.1:8554/cam/%d/%s", n, mainStream), ""
		if subStream != "" {
			sub = fmt.Sprintf("rtsp://demo:demo@127.0.0.1:8554/cam/%d/%s", n, subStream)
		}
		if simURL != nil {
			main = simURL(n, mainStream)
			if subStream != "" {
				sub = simURL(n, subStream)
			}
		}
		sp := camera.Spec{Code: code, Name: name, Location: &camera.Point{Type: "Point", Coordinates: [2]float64{x / k, y / k}},
			Heading: &heading, FOV: &fov, Range: &rng, MainURL: main, SubURL: sub, Record: simURL != nil}
		if f == second && onvifURL != nil {
			// The dome is steered over ONVIF; the device is read on first use.
			sp.ONVIF = &camera.ONVIFSpec{URL: onvifURL(n), Username: DemoONVIFAccount.Username, Password: DemoONVIFAccount.Password, Profile: "h265"}
		}
		if err := sp.Check(geo.CRSWGS84); err != nil {
			return fmt.Errorf("demo camera: %w", err)
		}
		_, err := d.Cameras.Create(ctx, sp)
		if gridwatch.ErrorCode(err) == gridwatch.EConflict && simURL != nil {
			var id int64
			if id, err = d.Cameras.IDByCode(ctx, code); err == nil {
				_, err = d.Cameras.Update(ctx, id, camera.Patch{MainURL: &main, SubURL: &sub, Record: &sp.Record, ONVIF: sp.ONVIF}, geo.CRSWGS84)
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
func (d *Domain) seedDemoStaff(ctx context.Context) error {
	grids, _, err := d.Grids.List(ctx, geo.Filter{Level: geo.LevelGrid})
	if err != nil {
		return err
	}
	for _, g := range grids {
		team, err := d.Incidents.ListStaff(ctx, g.ID)
		if err != nil {
			return err
		}
		if len(team) > 0 {
			continue
		}
		for _, m := range demoTeam(g.Properties) {
			m.GridID = g.ID
			if _, err := d.Incidents.AddStaff(ctx, m); err != nil {
				return fmt.Errorf("demo staff: %w", err)
			}
		}
	}
	return nil
}

// demoTeam reads a demo grid's team from its properties: "leader", then
// "volunteers" and "staff", each a name with its organisation in full-width
// brackets, as in "王芳（社区居委会）".
func demoTeam(props map[string]any) []incident.Staff {
	var team []incident.Staff
	add := func(role string, v any) {
		name, _ := v.(string)
		org := ""
		if i := strings.Index(name, "（"); i > 0 {
			name, org = name[:i], strings.TrimSuffix(name[i+len("（"):], "）")
		}
		if name != "" {
			team = append(team, incident.Staff{Role: role, Name: name, Organisation: org})
		}
	}
	add("leader", props["leader"])
	for _, k := range [...]struct{ key, role string }{{"volunteers", "volunteer"}, {"staff", "staff"}} {
		list, _ := props[k.key].([]any)
		for _, v := range list {
			add(k.role, v)
		}
	}
	return team
}

// seedDemoAccess creates the demo accounts that are missing (a password
// hash is dear: existing ones are not hashed again) and the demo
// integration token when absent.
func (d *Domain) seedDemoAccess(ctx context.Context) error {
	ctx = audit.WithActor(ctx, audit.Actor{Kind: "system", Name: "demo"})
	users, err := d.Auth.ListUsers(ctx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, u := range users {
		have[u.Username] = true
	}
	for _, a := range DemoAccounts() {
		if have[a.Username] {
			continue
		}
		if _, err := d.Auth.CreateUser(ctx, auth.NewUser{Username: a.Username, DisplayName: a.DisplayName, Role: a.Role, Password: a.Password, GridCodes: a.GridCodes}); err != nil {
			return fmt.Errorf("demo user %s: %w", a.Username, err)
		}
	}
	return d.Auth.EnsureToken(ctx, auth.NewToken{Name: "demo 12345 hotline", Role: auth.RoleIntegration}, DemoIntegrationToken)
}

// DemoPlace is a spot in the demo city: the middle of one of its grids.
type DemoPlace struct {
	Grid     string
	Name     string
	Lon, Lat float64
}

// DemoNVRPlaces are where the demo's simulated GB/T 28181 NVR reports its
// channels: the middle of the last grid of each community (grids the
// demo's RTSP cameras do not stand in), up to n.
func DemoNVRPlaces(n int) ([]DemoPlace, error) {
	city, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo city: %w", err)
	}
	last := map[string]int{}
	var order []string
	for i, f := range city {
		if f.Level != geo.LevelGrid {
			continue
		}
		if _, ok := last[f.ParentCode]; !ok {
			order = append(order, f.ParentCode)
		}
		last[f.ParentCode] = i
	}
	var out []DemoPlace
	for _, c := range order {
		if len(out) == n {
			break
		}
		f := city[last[c]]
		ring := f.Geometry.Polygon(0).Coords()[0]
		var x, y float64
		for _, p := range ring[:len(ring)-1] {
			x += p[0]
			y += p[1]
		}
		k := float64(len(ring) - 1)
		out = append(out, DemoPlace{Grid: f.Code, Name: f.Name, Lon: x / k, Lat: y / k})
	}
	return out, nil
}
