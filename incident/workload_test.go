package incident

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestWorkload: per member, the open cases dispatched to their staff rows
// and the overdue ones; closed cases, staff without an account and other
// grids (for a scoped viewer) are not counted.
func TestWorkload(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	var codes []string
	for code := range c.inside {
		codes = append(codes, code)
	}
	g1, g2 := c.byCode[codes[0]], c.byCode[codes[1]]
	user := func(name string) int64 {
		var id int64
		if err := c.svc.pool.QueryRow(ctx, `INSERT INTO users (username, role, password_hash) VALUES ($1, 'grid_leader', 'x') RETURNING id`, name).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	wang, li := user("wang"), user("li")
	staff := func(g int64, role string, uid *int64) int64 {
		st, err := c.svc.AddStaff(ctx, Staff{GridID: g, Role: role, Name: fmt.Sprint(role, g), UserID: uid})
		if err != nil {
			t.Fatal(err)
		}
		return st.ID
	}
	wang1, wang2 := staff(g1.ID, "leader", &wang), staff(g2.ID, "leader", &wang) // wang leads two grids
	li1 := staff(g1.ID, "volunteer", &li)
	nobody := staff(g1.ID, "staff", nil)
	dispatch := func(code, category string, to int64, then ...Status) {
		t.Helper()
		in := c.report(t, code, func(n *NewIncident) { n.Category = category })
		steps := []TransitionRequest{{To: Registered}, {To: Dispatched, AssigneeID: &to}}
		for _, st := range then {
			steps = append(steps, TransitionRequest{To: st})
		}
		for _, req := range steps {
			req.Version = in.Version
			var err error
			if in, err = c.svc.Transition(ctx, in.ID, req, Viewer{}, "t", all); err != nil {
				t.Fatalf("%s: %v", req.To, err)
			}
		}
	}
	// 0403 is due in 1 hour, 0601 in 72.
	dispatch(g1.Code, "0601", wang1)
	dispatch(g2.Code, "0403", wang2)
	dispatch(g1.Code, "0403", li1, InProgress, Handled, Verified, Closed)
	dispatch(g1.Code, "0601", li1, InProgress)
	dispatch(g1.Code, "0403", nobody)
	c.advance(2 * time.Hour)

	for _, tc := range []struct {
		name  string
		v     Viewer
		users []int64
		want  string
	}{
		{"all", Viewer{}, nil, fmt.Sprintf("[{%d 2 1} {%d 1 0}]", wang, li)},
		{"li", Viewer{}, []int64{li}, fmt.Sprintf("[{%d 1 0}]", li)},
		{"nobody asked", Viewer{}, []int64{}, "[]"},
		{"scoped to g2", Viewer{Grids: []int64{g2.ID}}, nil, fmt.Sprintf("[{%d 1 1}]", wang)},
	} {
		got, err := c.svc.Workload(ctx, tc.v, tc.users)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, got, tc.want)
		}
	}
}
