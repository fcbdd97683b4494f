package domain_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/domain"
	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var cheapHash = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}

// TestSeedDemo seeds the demo twice: the first time fills the database, the
// second adds nothing (and re-points the cameras at a new simulator port).
func TestSeedDemo(t *testing.T) {
	ctx := context.Background()
	d := domain.New(testdb.New(t), domain.Options{Auth: auth.Options{Hash: cheapHash}})
	port := 0
	sim := func(cam int, stream string) string {
		return fmt.Sprintf("rtsp://demo:demo@127.0.0.1:%d/cam/%d/%s", port, cam, stream)
	}
	for round := 1; round <= 2; round++ {
		port = 8000 + round
		if err := d.SeedDemo(ctx, domain.DemoOptions{SimURL: sim}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		grids, _, err := d.Grids.List(ctx, geo.Filter{Level: geo.LevelGrid, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(grids) != 66 {
			t.Errorf("round %d: %d grids, want 66", round, len(grids))
		}
		cams, _, err := d.Cameras.List(ctx, camera.Filter{Limit: 100}, camera.Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cams) != domain.DemoCameras {
			t.Errorf("round %d: %d cameras, want %d", round, len(cams), domain.DemoCameras)
		}
		h265 := 0
		for _, c := range cams {
			if c.Code == domain.DemoH265Camera {
				h265++
				if !strings.HasSuffix(c.MainURL, "/h265") || c.SubURL != "" {
					t.Errorf("round %d: the H.265 camera: main %s, sub %q; want the simulator's h265 stream and no sub", round, c.MainURL, c.SubURL)
				}
			}
			if !c.Record || c.Grid == nil || !strings.Contains(c.MainURL, fmt.Sprintf(":%d/", port)) {
				t.Errorf("round %d: camera %s: record %v, grid %v, %s; want recording, placed, on port %d", round, c.Code, c.Record, c.Grid, c.MainURL, port)
			}
		}
		if h265 != 1 {
			t.Errorf("round %d: %d H.265 demo cameras, want 1", round, h265)
		}
		users, err := d.Auth.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != len(domain.DemoAccounts()) {
			t.Errorf("round %d: %d users, want %d", round, len(users), len(domain.DemoAccounts()))
		}
		tokens, err := d.Auth.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(tokens) != 1 {
			t.Errorf("round %d: %d tokens, want the integration token alone", round, len(tokens))
		}
		team, err := d.Incidents.ListStaff(ctx, grids[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := demoTeamSize(grids[0].Properties); len(team) != want {
			t.Errorf("round %d: grid %s has %d staff, want %d", round, grids[0].Code, len(team), want)
		}
	}
	p, err := d.Auth.AuthenticateToken(ctx, domain.DemoIntegrationToken)
	if err != nil {
		t.Fatalf("the demo integration token: %v", err)
	}
	if p.Role != auth.RoleIntegration {
		t.Errorf("demo token role %s, want %s", p.Role, auth.RoleIntegration)
	}
	leader, _, err := d.Auth.Login(ctx, "demo-leader", "gridwatch-leader", "", "127.0.0.1", "test")
	if err != nil {
		t.Fatalf("demo leader sign-in: %v", err)
	}
	if got := leader.ScopeIDs(); len(got) != 1 {
		t.Errorf("demo leader scope %v, want one community", got)
	}
}

func demoTeamSize(props map[string]any) int {
	n := 0
	if props["leader"] != nil {
		n++
	}
	for _, k := range []string{"volunteers", "staff"} {
		l, _ := props[k].([]any)
		n += len(l)
	}
	return n
}

// TestDemoTeam: names carry their organisation in full-width brackets;
// the leader comes first, then volunteers, then staff.
func TestDemoTeam(t *testing.T) {
	got := domain.DemoTeam(map[string]any{
		"leader":     "李强（社区党支部）",
		"volunteers": []any{"王芳", ""},
		"staff":      []any{"赵伟（城管执法中队）"},
	})
	want := []incident.Staff{
		{Role: "leader", Name: "李强", Organisation: "社区党支部"},
		{Role: "volunteer", Name: "王芳"},
		{Role: "staff", Name: "赵伟", Organisation: "城管执法中队"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("team\n got %+v\nwant %+v", got, want)
	}
}

// TestSeedDemoTasks: the demo grid leader's account is the leader of its
// grid's team, and finds the demo's dispatched cases as its own; seeding
// again adds none.
func TestSeedDemoTasks(t *testing.T) {
	ctx := context.Background()
	d := domain.New(testdb.New(t), domain.Options{Auth: auth.Options{Hash: cheapHash}})
	for round := 1; round <= 2; round++ {
		if err := d.SeedDemo(ctx, domain.DemoOptions{Tasks: true}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	leader, _, err := d.Auth.Login(ctx, "demo-leader", "gridwatch-leader", "test phone", "127.0.0.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	mine, _, err := d.Incidents.List(ctx, incident.Filter{AssigneeUser: leader.ID}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := d.Incidents.List(ctx, incident.Filter{}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 3 || len(all) != 3 {
		t.Fatalf("the leader's tasks: %d of %d cases, want 3 of 3", len(mine), len(all))
	}
	statuses := map[incident.Status]int{}
	overdue := 0
	for _, in := range mine {
		statuses[in.Status]++
		if in.Overdue {
			overdue++
		}
		if in.Grid == nil || !strings.HasPrefix(in.Grid.Code, leader.Grids[0].Code) || in.Grid.Level != geo.LevelGrid {
			t.Errorf("task %d is in grid %v, want a grid of %s", in.ID, in.Grid, leader.Grids[0].Code)
		}
	}
	if statuses[incident.Dispatched] != 2 || statuses[incident.InProgress] != 1 || overdue != 1 {
		t.Errorf("tasks by status %v, %d overdue; want 2 dispatched, 1 in progress, 1 overdue", statuses, overdue)
	}
}
