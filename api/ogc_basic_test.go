package api_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
)

// wantChallenge is what a 401 on /ogc and /tiles must carry (QGIS 3.22
// crashes without one).
const wantChallenge = `Basic realm="gridwatch", charset="UTF-8"`

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// basicGet sends a GET with the Authorization value authz (none when "")
// and more headers (name, value pairs).
func (e *authEnv) basicGet(path, authz string, hdr ...string) response {
	e.t.Helper()
	h := map[string]string{}
	if authz != "" {
		h["Authorization"] = authz
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return e.send(e.srv.Client(), "GET", path, "", h)
}

// TestBasicAuthOnGISRoutes checks HTTP Basic where GIS clients need it
// (/ogc, /tiles: user+password or any name+token, a challenge on 401) and
// its refusal everywhere else.
func TestBasicAuthOnGISRoutes(t *testing.T) {
	e := newAuthEnv(t)
	const pw = "correct horse battery"
	e.createUser("gis-basic", pw, auth.RoleGISEditor)
	token := e.tokenFor(auth.RoleCommander)
	const items = "/ogc/collections/grids/items?limit=1000"
	tests := []struct {
		name, path, authz string
		hdr               []string
		status            int
		code              string // the error code, "" on success
		challenge         bool
		inMessage         string
	}{
		{name: "ogc without credentials", path: items, status: 401, code: "unauthenticated", challenge: true},
		{name: "ogc landing without credentials", path: "/ogc", status: 401, code: "unauthenticated", challenge: true},
		{name: "tilejson without credentials", path: "/tiles/grids.json", status: 401, code: "unauthenticated", challenge: true},
		{name: "tile without credentials", path: "/tiles/grids/12/3370/1625.mvt", status: 401, code: "unauthenticated", challenge: true},
		{name: "ogc user and password", path: items, authz: basicAuth("gis-basic", pw), status: 200},
		{name: "ogc user name in other case", path: items, authz: basicAuth("GIS-Basic", pw), status: 200},
		{name: "tiles user and password", path: "/tiles/grids.json", authz: basicAuth("gis-basic", pw), status: 200},
		{name: "ogc any name and a token", path: items, authz: basicAuth("qgis", token), status: 200},
		{name: "ogc empty name and a token", path: items, authz: basicAuth("", token), status: 200},
		{name: "tiles any name and a token", path: "/tiles/grids.json", authz: basicAuth("anyone", token), status: 200},
		{name: "ogc bearer still works", path: items, authz: "Bearer " + token, status: 200},
		{name: "ogc wrong password", path: items, authz: basicAuth("gis-basic", "wrong horse battery"), status: 401, code: "invalid_credentials", challenge: true},
		{name: "ogc unknown user", path: items, authz: basicAuth("nobody", pw), status: 401, code: "invalid_credentials", challenge: true},
		{name: "ogc revoked-looking token", path: items, authz: basicAuth("qgis", "gw_"+strings.Repeat("A", 43)), status: 401, code: "unauthenticated", challenge: true},
		{name: "ogc malformed basic", path: items, authz: "Basic not-base64!", status: 401, code: "unauthenticated", challenge: true, inMessage: "base64"},
		{name: "ogc basic without colon", path: items, authz: "Basic " + base64.StdEncoding.EncodeToString([]byte("gis-basic")), status: 401, code: "unauthenticated", challenge: true},
		// A browser opening /ogc may ask for a password; the dashboard's
		// own fetches must not open the browser's dialog over the map.
		{name: "browser navigating to ogc", path: "/ogc", hdr: []string{"Sec-Fetch-Mode", "navigate"}, status: 401, code: "unauthenticated", challenge: true},
		{name: "dashboard fetch of tilejson", path: "/tiles/grids.json", hdr: []string{"Sec-Fetch-Mode", "cors"}, status: 401, code: "unauthenticated"},
		{name: "dashboard fetch of a tile", path: "/tiles/grids/12/3370/1625.mvt", hdr: []string{"Sec-Fetch-Mode", "same-origin"}, status: 401, code: "unauthenticated"},
		// The REST API: session or bearer only, and no challenge.
		{name: "api without credentials", path: "/api/v1/grids", status: 401, code: "unauthenticated"},
		{name: "api basic user and password", path: "/api/v1/grids", authz: basicAuth("gis-basic", pw), status: 401, code: "unauthenticated", inMessage: "/ogc and /tiles"},
		{name: "api basic token", path: "/api/v1/me", authz: basicAuth("qgis", token), status: 401, code: "unauthenticated", inMessage: "/ogc and /tiles"},
		{name: "api geojson basic", path: "/api/v1/grids.geojson", authz: basicAuth("gis-basic", pw), status: 401, code: "unauthenticated", inMessage: "Bearer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.basicGet(tc.path, tc.authz, tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("GET %s: status %d %s, want %d", tc.path, r.status, r.body, tc.status)
			}
			if got := errCode(r); got != tc.code {
				t.Errorf("GET %s: error code %q, want %q (%s)", tc.path, got, tc.code, r.body)
			}
			got := r.header.Get("WWW-Authenticate")
			if want := map[bool]string{true: wantChallenge}[tc.challenge]; got != want {
				t.Errorf("GET %s: WWW-Authenticate %q, want %q", tc.path, got, want)
			}
			if tc.inMessage != "" {
				if msg, _ := r.errorOf(t)["message"].(string); !strings.Contains(msg, tc.inMessage) {
					t.Errorf("GET %s: message %q, want it to mention %q", tc.path, msg, tc.inMessage)
				}
			}
		})
	}
	// Basic reads the same grids as a bearer token.
	e.token = token
	bearer, _ := e.ogcGet(items).json(t)["features"].([]any)
	e.token = adminToken
	basic, _ := e.basicGet(items, basicAuth("gis-basic", pw)).json(t)["features"].([]any)
	if got, want := len(basic), len(bearer); got != want || want != 76 {
		t.Errorf("grids through Basic: %d, through a bearer token %d; want 76 both", got, want)
	}
	for _, secret := range []string{pw, token, base64.StdEncoding.EncodeToString([]byte("gis-basic:" + pw))} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("a Basic credential is in the log")
		}
	}
}

// TestBasicAuthThrottle checks that Basic password guesses count towards
// the sign-in lockout, and that a lock covers both ways in.
func TestBasicAuthThrottle(t *testing.T) {
	e := newAuthEnv(t)
	const pw = "correct horse battery"
	e.createUser("guessed", pw, auth.RoleGISEditor)
	const path = "/ogc/collections/grids/items?limit=1"
	for i := range 5 {
		if r := e.basicGet(path, basicAuth("guessed", fmt.Sprintf("guess number %d", i))); r.status != 401 {
			t.Fatalf("guess %d: %d %s, want 401", i, r.status, r.body)
		}
	}
	r := e.basicGet(path, basicAuth("guessed", pw))
	if r.status != 429 || errCode(r) != "throttled" || r.header.Get("Retry-After") == "" {
		t.Fatalf("right password after 5 Basic guesses: %d %s (Retry-After %q), want 429 throttled with Retry-After",
			r.status, r.body, r.header.Get("Retry-After"))
	}
	b := e.browser()
	if r := e.send(b, "POST", "/api/v1/auth/login", fmt.Sprintf(`{"username":"guessed","password":%q}`, pw), nil); r.status != 429 {
		t.Errorf("sign-in after 5 Basic guesses: %d %s, want 429", r.status, r.body)
	}
	// Sign-in guesses lock Basic too.
	e.createUser("guessed2", pw, auth.RoleGISEditor)
	for i := range 5 {
		e.send(b, "POST", "/api/v1/auth/login", fmt.Sprintf(`{"username":"guessed2","password":"guess %d"}`, i), nil)
	}
	if r := e.basicGet(path, basicAuth("guessed2", pw)); r.status != 429 {
		t.Errorf("Basic after 5 sign-in guesses: %d %s, want 429", r.status, r.body)
	}
	e.clock.Add(31 * time.Second)
	if r := e.basicGet(path, basicAuth("guessed", pw)); r.status != 200 {
		t.Errorf("right password after the lock: %d %s, want 200", r.status, r.body)
	}
	// An unknown name is throttled as a real one is.
	for range 5 {
		e.basicGet(path, basicAuth("ghost", "guess"))
	}
	if r := e.basicGet(path, basicAuth("ghost", "guess")); r.status != 429 {
		t.Errorf("unknown name after 5 guesses: %d, want 429 like a real one", r.status)
	}
}

// TestBasicAuthCache checks that a verified Basic credential is remembered
// for about a minute (QGIS sends it on every page), and forgotten at once
// when the password changes or the account is disabled.
func TestBasicAuthCache(t *testing.T) {
	e := newAuthEnv(t)
	const pw = "correct horse battery"
	e.createUser("cached", pw, auth.RoleGISEditor)
	id := e.userID("cached")
	const path = "/ogc/collections/grids/items?limit=1"
	good := basicAuth("cached", pw)
	if r := e.basicGet(path, good); r.status != 200 {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	// Someone else's guesses lock the account for 30 s.
	guess := func(n int) {
		t.Helper()
		if r := e.basicGet(path, basicAuth("cached", fmt.Sprintf("guess %d", n))); r.status != 401 && r.status != 429 {
			t.Fatalf("guess %d: %d %s", n, r.status, r.body)
		}
	}
	for i := range 5 {
		guess(i)
	}
	// The credential that verified moments ago is not checked again (no
	// hash, no lock): the working client goes on paging.
	e.clock.Add(10 * time.Second)
	if r := e.basicGet(path, good); r.status != 200 {
		t.Fatalf("verified credential 10 s later, account locked by guesses: %d %s, want 200 from the cache", r.status, r.body)
	}
	// A guess after that lock locks it again, for 60 s.
	e.clock.Add(35 * time.Second)
	guess(5)
	e.clock.Add(5 * time.Second)
	if r := e.basicGet(path, good); r.status != 200 {
		t.Fatalf("verified credential 50 s later, account locked: %d %s, want 200 from the cache", r.status, r.body)
	}
	// After the cache's minute it is checked again, and the lock holds.
	e.clock.Add(11 * time.Second)
	if r := e.basicGet(path, good); r.status != 429 {
		t.Fatalf("verified credential 61 s later, account locked: %d %s, want 429 (no longer cached)", r.status, r.body)
	}
	e.clock.Add(45 * time.Second)
	if r := e.basicGet(path, good); r.status != 200 {
		t.Fatalf("after the lock: %d %s", r.status, r.body)
	}

	changes := []struct {
		name, patch, after string
	}{
		{"a new password", `{"password":"another horse battery"}`, "another horse battery"},
		{"the account disabled", `{"disabled":true}`, ""},
	}
	current := pw
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			cred := basicAuth("cached", current)
			if r := e.basicGet(path, cred); r.status != 200 {
				t.Fatalf("before: %d %s", r.status, r.body)
			}
			if r := e.do("PATCH", fmt.Sprintf("/api/v1/users/%d", id), []byte(tc.patch)); r.status != 200 {
				t.Fatalf("PATCH %s: %d %s", tc.patch, r.status, r.body)
			}
			if r := e.basicGet(path, cred); r.status != 401 || r.header.Get("WWW-Authenticate") != wantChallenge {
				t.Errorf("the cached credential right after %s: %d %s, want 401 with the challenge", tc.name, r.status, r.body)
			}
			if tc.after != "" {
				if r := e.basicGet(path, basicAuth("cached", tc.after)); r.status != 200 {
					t.Errorf("the new password: %d %s", r.status, r.body)
				}
				current = tc.after
			}
		})
	}
}

// TestBasicAuthCrossSite checks that a change sent with Basic credentials
// passes the cross-site check a cookie session gets: browsers replay Basic
// credentials by themselves. QGIS sends neither Origin nor Sec-Fetch-Site.
func TestBasicAuthCrossSite(t *testing.T) {
	e := newAuthEnv(t)
	const pw = "correct horse battery"
	e.createUser("gis-writer", pw, auth.RoleGISEditor)
	token := e.tokenFor(auth.RoleGISEditor)
	const items = "/ogc/collections/grids/items"
	tests := []struct {
		name, authz, code string
		hdr               []string
		status            int
	}{
		{"origin of another site", basicAuth("gis-writer", pw), "410191", []string{"Origin", "http://evil.example"}, 403},
		{"sec-fetch-site cross-site", basicAuth("gis-writer", pw), "410192", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"token as password from another site", basicAuth("x", token), "410193", []string{"Origin", "http://evil.example"}, 403},
		{"QGIS: no origin", basicAuth("gis-writer", pw), "410194", nil, 201},
		{"same origin", basicAuth("gis-writer", pw), "410195", []string{"Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin"}, 201},
		{"token as password, QGIS", basicAuth("x", token), "410196", nil, 201},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := 114.3 + 0.02*float64(i)
			h := map[string]string{"Authorization": tc.authz, "Content-Type": "application/geo+json"}
			for j := 0; j+1 < len(tc.hdr); j += 2 {
				h[tc.hdr[j]] = tc.hdr[j+1]
			}
			feature := ogcGridFeature(tc.code, "跨站试验区", "district", "", bRect(x, 34.9, x+0.01, 34.91))
			r := e.send(e.srv.Client(), "POST", items, feature, h)
			if r.status != tc.status {
				t.Fatalf("POST with %v: %d %s, want %d", tc.hdr, r.status, r.body, tc.status)
			}
			if tc.status == 403 && errCode(r) != "csrf" {
				t.Errorf("POST with %v: code %q, want csrf", tc.hdr, errCode(r))
			}
			stored := e.do("GET", "/api/v1/grids?level=district&limit=1000", nil)
			if has := strings.Contains(string(stored.body), `"`+tc.code+`"`); has != (tc.status == 201) {
				t.Errorf("grid %s stored: %v, want %v", tc.code, has, tc.status == 201)
			}
		})
	}
}

// userID finds a user's id by name.
func (e *authEnv) userID(name string) int64 {
	e.t.Helper()
	for _, u := range e.do("GET", "/api/v1/users", nil).json(e.t)["users"].([]any) {
		if m := u.(map[string]any); m["username"] == name {
			return int64(m["id"].(float64))
		}
	}
	e.t.Fatalf("no user %s", name)
	return 0
}
