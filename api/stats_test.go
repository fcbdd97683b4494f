package api_test

import (
	"encoding/csv"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
)

// statsReport files an incident reported at the given time and returns its id.
func statsReport(e *authEnv, lon, lat float64, category, reported string) string {
	e.t.Helper()
	r := e.do("POST", "/api/v1/incidents", []byte(fmt.Sprintf(`{"source":"patrol","category":%q,"title":"巡查发现",
		"location":{"type":"Point","coordinates":[%v,%v]},"reported_at":%q}`, category, lon, lat, reported)))
	if r.status != 201 {
		e.t.Fatalf("report: %d %s", r.status, r.body)
	}
	return fmt.Sprint(int64(r.json(e.t)["id"].(float64)))
}

// statsMove takes incident id from version 1 through the statuses, at the
// clock's time.
func statsMove(e *authEnv, id string, to ...string) {
	e.t.Helper()
	for i, st := range to {
		r := e.do("POST", "/api/v1/incidents/"+id+"/transitions", []byte(fmt.Sprintf(`{"to":%q,"version":%d}`, st, i+1)))
		if r.status != 200 {
			e.t.Fatalf("incident %s to %s: %d %s", id, st, r.status, r.body)
		}
	}
}

// statsRow is a row's numbers as JSON gives them (nil for null).
func statsRow(t *testing.T, row any) []any {
	t.Helper()
	m := row.(map[string]any)
	return []any{m["key"], m["reported"], m["registered"], m["closed"], m["close_rate"], m["closed_on_time"],
		m["on_time_rate"], m["median_handling_hours"], m["open"], m["overdue"]}
}

func TestIncidentStatsOverHTTP(t *testing.T) {
	e := newAuthEnv(t) // the service's clock: 2026-11-26T09:00Z
	pts := open311Points(e, 2)
	a, b := pts[0], pts[1]
	if r := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/staff", a.id), []byte(`{"role":"leader","name":"王芳"}`)); r.status != 201 {
		t.Fatalf("add leader: %d %s", r.status, r.body)
	}
	// A 0103 (12 h) reported 05:00, closed 09:00: on time, 4 h.
	// A 0101 (24 h) reported 11-20, closed 11-26 10:00: late, 154 h.
	// B 0101 reported 11-25, registered, overdue; no grid, 0601, open.
	onTime := statsReport(e, a.lon, a.lat, "0103", "2026-11-26T05:00:00Z")
	late := statsReport(e, a.lon, a.lat, "0101", "2026-11-20T00:00:00Z")
	overdue := statsReport(e, b.lon, b.lat, "0101", "2026-11-25T00:00:00Z")
	statsReport(e, 0, 0, "0601", "2026-11-26T00:00:00Z")
	toClosed := []string{"registered", "dispatched", "in_progress", "handled", "verified", "closed"}
	statsMove(e, onTime, toClosed...)
	e.clock.Add(time.Hour)
	statsMove(e, late, toClosed...)
	statsMove(e, overdue, "registered")

	month := "from=" + url.QueryEscape("2026-11-01T00:00:00+08:00") + "&to=" + url.QueryEscape("2026-12-01T00:00:00+08:00")
	get := func(q string) map[string]any {
		t.Helper()
		r := e.do("GET", "/api/v1/stats/incidents?"+q, nil)
		if r.status != 200 {
			t.Fatalf("stats?%s: %d %s", q, r.status, r.body)
		}
		return r.json(t)
	}
	total := []any{"total", 4.0, 3.0, 2.0, 0.6667, 1.0, 0.5, 79.0, 2.0, 1.0}
	for _, tc := range []struct {
		group string
		rows  [][]any
	}{
		{"grid", [][]any{
			{a.code, 2.0, 2.0, 2.0, 1.0, 1.0, 0.5, 79.0, 0.0, 0.0},
			{b.code, 1.0, 1.0, 0.0, 0.0, 0.0, nil, nil, 1.0, 1.0},
			{"unassigned", 1.0, 0.0, 0.0, nil, 0.0, nil, nil, 1.0, 0.0},
		}},
		{"category", [][]any{
			{"0101", 2.0, 2.0, 1.0, 0.5, 0.0, 0.0, 154.0, 1.0, 1.0},
			{"0103", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 0.0, 0.0},
			{"0601", 1.0, 0.0, 0.0, nil, 0.0, nil, nil, 1.0, 0.0},
		}},
		{"month", [][]any{
			{"2026-11", 4.0, 3.0, 2.0, 0.6667, 1.0, 0.5, 79.0, 2.0, 1.0},
		}},
	} {
		t.Run(tc.group, func(t *testing.T) {
			st := get(month + "&group=" + tc.group)
			if st["group"] != tc.group || st["from"] != "2026-11-01T00:00:00+08:00" || st["to"] != "2026-12-01T00:00:00+08:00" {
				t.Errorf("header: group %v from %v to %v", st["group"], st["from"], st["to"])
			}
			rows := st["rows"].([]any)
			if len(rows) != len(tc.rows) {
				t.Fatalf("%d rows, want %d: %v", len(rows), len(tc.rows), rows)
			}
			for i, want := range tc.rows {
				if got := statsRow(t, rows[i]); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("row %d:\n got %v\nwant %v", i, got, want)
				}
			}
			if got := statsRow(t, st["totals"]); fmt.Sprint(got) != fmt.Sprint(total) {
				t.Errorf("totals:\n got %v\nwant %v", got, total)
			}
		})
	}
	if r := get(month + "&group=category")["rows"].([]any)[0].(map[string]any); r["name"] != "暴露垃圾" || r["class_name"] != "市容环境" {
		t.Errorf("category row names: %v", r)
	}

	// Default: the 30 days up to the service's now, grouped by grid.
	st := get("")
	if st["group"] != "grid" || st["to"] != "2026-11-26T18:00:00+08:00" || st["from"] != "2026-10-27T18:00:00+08:00" {
		t.Errorf("defaults: %v – %v, %v", st["from"], st["to"], st["group"])
	}

	// CSV, by Accept or by format=csv.
	for _, how := range []struct {
		query  string
		header map[string]string
	}{
		{month + "&group=grid", map[string]string{"Accept": "text/csv", "Authorization": "Bearer " + adminToken}},
		{month + "&group=grid&format=csv", map[string]string{"Authorization": "Bearer " + adminToken}},
	} {
		r := e.send(e.srv.Client(), "GET", "/api/v1/stats/incidents?"+how.query, "", how.header)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
			t.Fatalf("csv: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="incident-stats-grid-20261101-20261201.csv"` {
			t.Errorf("Content-Disposition %q", cd)
		}
		recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(r.body), "\ufeff"))).ReadAll()
		if err != nil || len(recs) != 5 {
			t.Fatalf("csv: %v, %d records: %s", err, len(recs), r.body)
		}
		wantHeader := "分组 key,名称 name,上报数 reported,立案数 registered,结案数 closed,结案率 close_rate,按期结案数 closed_on_time," +
			"按期结案率 on_time_rate,处置时长中位数(小时) median_handling_hours,未结案 open,超期 overdue"
		if got := strings.Join(recs[0], ","); got != wantHeader {
			t.Errorf("csv header:\n got %s\nwant %s", got, wantHeader)
		}
		if got := strings.Join(append([]string{recs[1][0]}, recs[1][2:]...), ","); got != a.code+",2,2,2,1,1,0.5,79,0,0" {
			t.Errorf("csv grid row: %s", got)
		}
		if got := strings.Join(recs[2][2:], ","); got != "1,1,0,0,0,,,1,1" {
			t.Errorf("csv row with no closed cases: %s", got)
		}
		if got := strings.Join(recs[4], ","); got != "total,合计,4,3,2,0.6667,1,0.5,79,2,1" {
			t.Errorf("csv totals: %s", got)
		}
	}
	r := e.send(e.srv.Client(), "GET", "/api/v1/stats/incidents?"+month+"&group=category", "", map[string]string{"Accept": "text/csv", "Authorization": "Bearer " + adminToken})
	if !strings.Contains(string(r.body), "大类 class_code") || !strings.Contains(string(r.body), "0101,暴露垃圾,01,市容环境,2,2,1,0.5,0,0,154,1,1") {
		t.Errorf("category csv: %s", r.body)
	}

	// A grid leader's report: their grid only.
	e.token = e.tokenFor(auth.RoleGridLeader, a.code)
	st = get(month)
	if rows := st["rows"].([]any); len(rows) != 1 || rows[0].(map[string]any)["key"] != a.code || st["totals"].(map[string]any)["reported"] != 2.0 {
		t.Errorf("scoped: %v / %v", st["rows"], st["totals"])
	}
	e.token = adminToken

	for _, tc := range []struct{ query, param string }{
		{"group=week", "group"},
		{"from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from"},
		{"from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z", "from"},
		{"from=last-month", "from"},
		{"to=2026-11-01", "to"},
		{"format=xml", "format"},
		{"tz=Mars/Olympus", "tz"},
		{"from=2030-01-01T00:00:00Z", "from"}, // after now, the default to
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := e.do("GET", "/api/v1/stats/incidents?"+tc.query, nil)
			if r.status != 400 {
				t.Fatalf("%d %s, want 400", r.status, r.body)
			}
			d, _ := r.errorOf(t)["details"].(map[string]any)
			if d["param"] != tc.param && d["field"] != tc.param {
				t.Errorf("error %s does not name %s", r.body, tc.param)
			}
		})
	}
}
