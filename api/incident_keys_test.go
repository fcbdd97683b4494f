package api_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"gridwatch/api"
	"gridwatch/auth"
)

// TestIdempotencyKeysPerCaller: two callers sending the same Idempotency-Key
// or the same source and external_id each get their own incident; the same
// caller again gets its first.
func TestIdempotencyKeysPerCaller(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	callers := map[string]string{"hotline": e.tokenFor(auth.RoleIntegration), "app": e.tokenFor(auth.RoleIntegration), "admin": adminToken}
	for _, tc := range []struct {
		name string
		body []byte
		hdr  map[string]string
	}{
		{"Idempotency-Key", incidentBody(lon, lat, ""), map[string]string{"Idempotency-Key": "same-key"}},
		{"source and external_id", incidentBody(lon, lat, "12345-77"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := map[string]string{}
			for _, round := range []struct {
				want int
			}{{201}, {200}} {
				for _, name := range []string{"hotline", "app", "admin"} {
					h := map[string]string{"Authorization": "Bearer " + callers[name]}
					for k, v := range tc.hdr {
						h[k] = v
					}
					r := e.send(e.srv.Client(), "POST", "/api/v1/incidents", string(tc.body), h)
					if r.status != round.want {
						t.Fatalf("%s: %d %s, want %d", name, r.status, r.body, round.want)
					}
					id := fmt.Sprint(r.json(t)["id"])
					if round.want == 201 {
						for other, oid := range first {
							if oid == id {
								t.Errorf("%s got %s's incident %s; want their own", name, other, id)
							}
						}
						first[name] = id
					} else if id != first[name] {
						t.Errorf("%s again: incident %s, want their first, %s", name, id, first[name])
					}
				}
			}
		})
	}
}

// TestIdempotencyKeyMismatch: the same key with another body is a 422
// naming the key, and nothing is stored; the same body is 200 with the
// first incident.
func TestIdempotencyKeyMismatch(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	e.token = e.tokenFor(auth.RoleIntegration)
	key := map[string]string{"Idempotency-Key": "retry-1", "Authorization": "Bearer " + e.token}
	body := string(incidentBody(lon, lat, ""))
	r := e.send(e.srv.Client(), "POST", "/api/v1/incidents", body, key)
	if r.status != 201 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	id := fmt.Sprint(r.json(t)["id"])
	for _, tc := range []struct {
		name, body, query string
		want              int
	}{
		{"same body", body, "", 200},
		{"another title", strings.Replace(body, "暴露垃圾", "另一件事", 1), "", 422},
		{"another location", string(incidentBody(lon+0.001, lat, "")), "", 422},
		{"same body in another CRS", body, "?crs=gcj02", 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.send(e.srv.Client(), "POST", "/api/v1/incidents"+tc.query, tc.body, key)
			if r.status != tc.want {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want == 200 {
				if got := fmt.Sprint(r.json(t)["id"]); got != id {
					t.Errorf("incident %s, want the first, %s", got, id)
				}
				return
			}
			er := r.errorOf(t)
			if er["code"] != "idempotency_mismatch" || !strings.Contains(er["message"].(string), "retry-1") || er["details"].(map[string]any)["key"] != "retry-1" {
				t.Errorf("error %v: want idempotency_mismatch naming the key", er)
			}
		})
	}
	if n := len(e.do("GET", "/api/v1/incidents", nil).json(t)["incidents"].([]any)); n != 1 {
		t.Errorf("%d incidents stored, want 1", n)
	}
}

// TestLeaderReportsOutsideTheirGrids: a grid leader's report located
// outside their grids is refused (403 outside_scope naming the location's
// grid and theirs) through the API, bulk and Open311, unless the server
// allows it.
func TestLeaderReportsOutsideTheirGrids(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allow   bool
		outside int // status of a single report outside
	}{
		{"refused by default", false, 403},
		{"allowed by policy", true, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAuthEnvWith(t, func(d *api.Deps) { d.LeaderReportOutside = tc.allow })
			lon, lat, _, code := e.gridPoint()
			olon, olat, _ := e.otherGridPoint(code)
			community := code[:12]
			leader := e.tokenFor(auth.RoleGridLeader, community)
			e.token = leader
			if r := e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "in")); r.status != 201 {
				t.Fatalf("inside: %d %s, want 201", r.status, r.body)
			}
			r := e.do("POST", "/api/v1/incidents", incidentBody(olon, olat, "out"))
			if r.status != tc.outside {
				t.Fatalf("outside: %d %s, want %d", r.status, r.body, tc.outside)
			}
			if tc.outside == 403 {
				er := r.errorOf(t)
				d := er["details"].(map[string]any)
				if er["code"] != "outside_scope" || !strings.Contains(er["message"].(string), community) ||
					fmt.Sprint(d["your_grids"]) != "["+community+"]" || d["grid"] == nil || d["location"] == nil {
					t.Errorf("error %v: want outside_scope naming the location, its grid and %s", er, community)
				}
			}
			// Bulk: the line outside is refused, the others stored.
			oneLine := func(b []byte) string { return strings.ReplaceAll(string(b), "\n\t\t", " ") }
			br := e.do("POST", "/api/v1/incidents/bulk", []byte(oneLine(incidentBody(lon, lat, "b-in"))+"\n"+oneLine(incidentBody(olon, olat, "b-out"))+"\n"))
			if br.status != 200 {
				t.Fatalf("bulk: %d %s", br.status, br.body)
			}
			wantOut := "created"
			if !tc.allow {
				wantOut = "outside_scope"
			}
			results := strings.Split(strings.TrimSpace(string(br.body)), "\n")
			if len(results) != 3 || !strings.Contains(results[0], `"status":"created"`) || !strings.Contains(results[1], wantOut) {
				t.Errorf("bulk answer %s: want line 1 created and line 2 %s", br.body, wantOut)
			}
			// Open311.
			form := url.Values{"api_key": {leader}, "service_code": {"0101"}, "lat": {fmt.Sprint(olat)}, "long": {fmt.Sprint(olon)}, "description": {"垃圾"}}
			or := open311Post(e, "", form, nil)
			if want := map[bool]int{true: 201, false: 403}[tc.allow]; or.status != want {
				t.Errorf("open311 outside: %d %s, want %d", or.status, or.body, want)
			}
		})
	}
}

// TestListIncidentsByIDs: ?ids= lists those incidents only (the dashboard
// reads a bulk upload's new cases so); a bad list names the parameter.
func TestListIncidentsByIDs(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	var ids []string
	for i := range 3 {
		r := e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, fmt.Sprint("by-id-", i)))
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		ids = append(ids, fmt.Sprint(r.json(t)["id"]))
	}
	for _, tc := range []struct {
		name, query string
		want        int
		wantIDs     []string
	}{
		{"two of three", "?ids=" + ids[0] + "," + ids[2], 200, []string{ids[2], ids[0]}},
		{"not a number", "?ids=1,x", 400, nil},
		{"zero", "?ids=0", 400, nil},
		{"too many", "?ids=" + strings.Repeat("1,", 1000) + "1", 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/api/v1/incidents"+tc.query, nil)
			if r.status != tc.want {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.want)
			}
			if tc.want != 200 {
				if d, _ := r.errorOf(t)["details"].(map[string]any); d["param"] != "ids" {
					t.Errorf("error %s: want the parameter ids named", r.body)
				}
				return
			}
			var got []string
			for _, in := range r.json(t)["incidents"].([]any) {
				got = append(got, fmt.Sprint(in.(map[string]any)["id"]))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantIDs) {
				t.Errorf("ids %v, want %v", got, tc.wantIDs)
			}
		})
	}
}
