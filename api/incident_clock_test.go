package api_test

import (
	"fmt"
	"testing"
	"time"
)

// TestIncidentClockStepOverHTTP: the service's clock, not the handler's,
// dates a report without reported_at (received_at and the deadline come
// from the same clock); after that clock steps back an hour, the case's
// steps are not dated before its report, the statistics count it closed on
// time with no negative handling time, and a report dated by the client's
// (now an hour ahead) is refused naming reported_at.
func TestIncidentClockStepOverHTTP(t *testing.T) {
	e := newAuthEnv(t) // the service's clock: 2026-11-26T09:00Z, days behind the handler's
	t0 := e.clock.Now()
	a := open311Points(e, 1)[0]
	if r := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/staff", a.id), []byte(`{"role":"leader","name":"王芳"}`)); r.status != 201 {
		t.Fatalf("add leader: %d %s", r.status, r.body)
	}
	r := e.do("POST", "/api/v1/incidents", []byte(fmt.Sprintf(`{"source":"patrol","category":"0101","title":"巡查发现",
		"location":{"type":"Point","coordinates":[%v,%v]}}`, a.lon, a.lat)))
	if r.status != 201 {
		t.Fatalf("report: %d %s", r.status, r.body)
	}
	in := r.json(t)
	id := fmt.Sprint(int64(in["id"].(float64)))
	times := func(m map[string]any, keys ...string) []time.Time {
		t.Helper()
		out := make([]time.Time, len(keys))
		for i, k := range keys {
			s, _ := m[k].(string)
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				t.Fatalf("%s: %q: %v", k, m[k], err)
			}
			out[i] = v
		}
		return out
	}
	got := times(in, "reported_at", "received_at", "deadline")
	if !got[0].Equal(t0) || !got[1].Equal(t0) || !got[2].Equal(t0.Add(24*time.Hour)) {
		t.Errorf("reported_at %s received_at %s deadline %s; want %s, %s and 24 h later", got[0], got[1], got[2], t0, t0)
	}

	e.clock.Add(-time.Hour)
	statsMove(e, id, "registered", "dispatched", "in_progress", "handled", "verified", "closed")
	r = e.do("GET", "/api/v1/incidents/"+id, nil)
	if r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	after := r.json(t)
	steps := times(after, "reported_at", "registered_at", "closed_at", "deadline")
	if steps[1].Before(steps[0]) || steps[2].Before(steps[1]) || !steps[3].Equal(t0.Add(24*time.Hour)) {
		t.Errorf("after the clock stepped back: reported %s registered %s closed %s deadline %s; want them in order and the deadline unchanged",
			steps[0], steps[1], steps[2], steps[3])
	}

	r = e.do("GET", "/api/v1/stats/incidents", nil)
	if r.status != 200 {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	if got, want := statsRow(t, r.json(t)["totals"]), []any{"total", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("totals with the clock an hour back:\n got %v\nwant %v", got, want)
	}

	r = e.do("POST", "/api/v1/incidents", []byte(fmt.Sprintf(`{"source":"patrol","category":"0101","title":"巡查发现",
		"location":{"type":"Point","coordinates":[%v,%v]},"reported_at":%q}`, a.lon, a.lat, t0.Format(time.RFC3339))))
	if r.status != 400 {
		t.Fatalf("a report an hour ahead of the service's clock: %d %s, want 400", r.status, r.body)
	}
	if d, _ := r.errorOf(t)["details"].(map[string]any); d["field"] != "reported_at" {
		t.Errorf("a report an hour ahead: %s, want it to name reported_at", r.body)
	}
}
