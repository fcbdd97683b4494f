package api

import (
	"testing"

	"gridwatch"
)

// TestEveryRouteDeclaresItsQuery walks every route of Server.Routes and
// fails when one has no query rule, so a route added later must say which
// parameters it reads; and a rule must belong to a route.
func TestEveryRouteDeclaresItsQuery(t *testing.T) {
	s := New(Deps{})
	rules := s.queryRules()
	routes := map[string]bool{}
	for _, r := range s.Routes() {
		key := r.Method + " " + r.Path
		routes[key] = true
		if _, ok := rules[key]; !ok {
			t.Errorf("route %s has no entry in queryParams (api/query.go): list the query parameters it reads (nil for none)", key)
		}
	}
	for key := range rules {
		if !routes[key] {
			t.Errorf("queryParams has %s, which is no route", key)
		}
	}
	for key := range bodyKinds {
		if !routes[key] {
			t.Errorf("bodyKinds has %s, which is no route", key)
		}
	}
}

func TestCheckQuery(t *testing.T) {
	allowed := []string{"grid", "status", "limit"}
	for _, tc := range []struct {
		name, raw string
		param     string // "" accepted
	}{
		{"none", "", ""},
		{"known", "grid=22&status=reported,dispatched&limit=5", ""},
		{"empty pairs", "&grid=22&&", ""},
		{"escaped semicolon is a value", "grid=22%3B", ""},
		{"repeated known", "grid=1&grid=2", ""},
		{"semicolon after the value", "grid=22;", "grid"},
		{"semicolon as a separator", "grid=22;status=x", "grid"},
		{"semicolon in a later pair", "limit=5&status=a;b", "status"},
		{"unknown", "gird=22", "gird"},
		{"unknown without value", "grid=1&verbose", "verbose"},
		{"bad escape in a value", "grid=%zz", "grid"},
		{"bad escape in a name", "gr%zzid=1", "gr%zzid"},
		{"NUL in a value", "grid=%00", "grid"},
		{"invalid UTF-8 in a value", "grid=%ff", "grid"},
		{"NUL in a name", "gr%00id=1", `gr\u0000id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkQuery(tc.raw, allowed)
			if tc.param == "" {
				if err != nil {
					t.Fatalf("checkQuery(%q) = %v, want nil", tc.raw, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("checkQuery(%q) = nil, want an error naming %q", tc.raw, tc.param)
			}
			if got := errorDetail(err, "param"); got != tc.param {
				t.Errorf("checkQuery(%q) names %q, want %q (%v)", tc.raw, got, tc.param, err)
			}
		})
	}
}

func errorDetail(err error, key string) any { return gridwatch.ErrorDetails(err)[key] }
