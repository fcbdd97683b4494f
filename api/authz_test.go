package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/api"
	"gridwatch/auth"
	"gridwatch/incident"
	"gridwatch/internal/domain"
	"gridwatch/internal/testdb"
)

// clock is a test clock the auth service reads.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

var cheapHash = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}

// authEnv is a server over a demo city with a clock the test controls.
type authEnv struct {
	*env
	clock *clock
	pool  *pgxpool.Pool
}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	return newAuthEnvWith(t, nil)
}

// newAuthEnvWith is newAuthEnv with more settings of the server.
func newAuthEnvWith(t *testing.T, more func(*api.Deps)) *authEnv {
	t.Helper()
	return newAuthEnvOn(t, testdb.New(t), newClock(), more)
}

// newClock is the tests' settable clock, at a fixed morning.
func newClock() *clock { return &clock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)} }

// newAuthEnvOn is newAuthEnvWith over pool, on clock ck (for parts the
// caller wires to the same database and time).
func newAuthEnvOn(t *testing.T, pool *pgxpool.Pool, ck *clock, more func(*api.Deps)) *authEnv {
	t.Helper()
	e := newEnvOn(t, pool, domain.Options{
		Auth:      auth.Options{Now: ck.Now, SessionIdle: 30 * time.Minute, SessionMax: 8 * time.Hour},
		Incidents: incident.Options{Now: ck.Now},
	}, func(d *api.Deps) {
		if more != nil {
			more(d)
		}
	})
	ae := &authEnv{env: e, clock: ck, pool: pool}
	ae.importDemo()
	return ae
}

// tokenFor creates an API token of role (scoped to codes) and returns its secret.
func (e *authEnv) tokenFor(role auth.Role, codes ...string) string {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": "test " + string(role), "role": role, "grid_codes": codes})
	r := e.do("POST", "/api/v1/tokens", body)
	if r.status != 201 {
		e.t.Fatalf("create %s token: %d %s", role, r.status, r.body)
	}
	return r.json(e.t)["secret"].(string)
}

// allowed is the specification of who may do what, written out separately
// from auth's table so that a change there must be made here too.
var allowed = map[auth.Role][]auth.Permission{
	auth.RoleAdmin: {auth.GridsRead, auth.GridsWrite, auth.Locate, auth.UsersManage, auth.TokensManage, auth.AuditRead, auth.MetricsRead,
		auth.IncidentsRead, auth.IncidentsCreate, auth.IncidentsTransition, auth.StaffManage, auth.CamerasRead, auth.CamerasWrite, auth.CamerasPTZ, auth.VideoLive, auth.VideoPlayback, auth.ExportsManage,
		auth.PatrolsRecord, auth.PatrolsRead,
		auth.BaseRead, auth.BaseImport, auth.BaseWrite, auth.ResidentsRead, auth.ResidentsWrite, auth.ResidentsUnmask, auth.ResidentsExport, auth.VisitsRecord},
	auth.RoleCommander: {auth.GridsRead, auth.Locate, auth.IncidentsRead, auth.IncidentsCreate, auth.IncidentsTransition, auth.StaffManage, auth.CamerasRead, auth.CamerasPTZ, auth.VideoLive, auth.VideoPlayback, auth.PatrolsRecord, auth.PatrolsRead,
		auth.BaseRead, auth.ResidentsRead},
	auth.RoleOperator:  {auth.GridsRead, auth.Locate, auth.IncidentsRead, auth.CamerasRead, auth.CamerasWrite, auth.CamerasPTZ, auth.VideoLive, auth.VideoPlayback, auth.BaseRead},
	auth.RoleGISEditor: {auth.GridsRead, auth.GridsWrite, auth.Locate, auth.BaseRead, auth.BaseImport, auth.BaseWrite},
	auth.RoleGridLeader: {auth.GridsRead, auth.Locate, auth.IncidentsRead, auth.IncidentsCreate, auth.IncidentsTransition, auth.CamerasRead, auth.CamerasPTZ, auth.VideoLive, auth.VideoPlayback, auth.PatrolsRecord,
		auth.BaseRead, auth.BaseWrite, auth.ResidentsRead, auth.ResidentsWrite, auth.ResidentsUnmask, auth.VisitsRecord},
	auth.RoleIntegration: {auth.IncidentsCreate, auth.IncidentsRead}, // no cameras, no video
}

func may(role auth.Role, p auth.Permission) bool {
	if p == auth.Public || p == auth.Authenticated {
		return true
	}
	for _, q := range allowed[role] {
		if q == p {
			return true
		}
	}
	return false
}

// TestEveryRouteHasARule walks every route the engine registered and fails
// if one is missing from the table; then checks allow and deny for each
// role and for anonymous callers, through HTTP.
func TestEveryRouteHasARule(t *testing.T) {
	e := newAuthEnv(t)
	srv := api.New(api.Deps{Auth: e.auth})
	table := map[string]auth.Permission{}
	for _, r := range srv.Routes() {
		key := r.Method + " " + r.Path
		if _, dup := table[key]; dup {
			t.Errorf("route %s is in the table twice", key)
		}
		if r.Perm == "" {
			t.Errorf("route %s has no permission", key)
		}
		table[key] = r.Perm
	}
	registered := srv.Handler().(*gin.Engine).Routes()
	for _, r := range registered {
		if _, ok := table[r.Method+" "+r.Path]; !ok {
			t.Errorf("route %s %s is registered without a rule", r.Method, r.Path)
		}
	}
	if len(registered) != len(table) {
		t.Errorf("%d routes registered, %d in the table", len(registered), len(table))
	}

	tokens := map[auth.Role]string{}
	for _, role := range auth.Roles() {
		var codes []string
		if role == auth.RoleGridLeader {
			codes = []string{"410105001001"}
		}
		tokens[role] = e.tokenFor(role, codes...)
	}
	for _, r := range srv.Routes() {
		path := strings.ReplaceAll(r.Path, ":id", "999999")
		// Anonymous: only public routes answer without 401.
		e.token = ""
		res := e.do(r.Method, path, []byte("{}"))
		if r.Perm == auth.Public {
			if code := errCode(res); code == "unauthenticated" || code == "forbidden" {
				t.Errorf("anonymous %s %s: %d, want the public route open", r.Method, path, res.status)
			}
		} else if res.status != 401 {
			t.Errorf("anonymous %s %s: %d %s, want 401", r.Method, path, res.status, res.body)
		}
		for role, tok := range tokens {
			e.token = tok
			res := e.do(r.Method, path, []byte("{}"))
			denied := res.status == 403 && strings.Contains(string(res.body), `"permission"`)
			if want := may(role, r.Perm); want && (denied || errCode(res) == "unauthenticated") {
				t.Errorf("%s %s %s: %d %s, want allowed", role, r.Method, path, res.status, res.body)
			} else if !want && !denied {
				t.Errorf("%s %s %s: %d %s, want 403 forbidden", role, r.Method, path, res.status, res.body)
			}
		}
	}
	e.token = adminToken
}

// errCode is the error code of a response, "" when it is not an error.
func errCode(r response) string {
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &body)
	return body.Error.Code
}

// browser is a cookie-keeping client, as a browser would be.
func (e *authEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func (e *authEnv) send(c *http.Client, method, path, body string, hdr map[string]string) response {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return readResponse(res)
}

// login signs in as user with pw from the browser c.
func (e *authEnv) login(c *http.Client, user, pw string) response {
	return e.send(c, "POST", "/api/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw), nil)
}

// readResponse reads res to its end, or to where it broke off (what was
// read is kept), and closes it.
func readResponse(res *http.Response) response {
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return response{status: res.StatusCode, header: res.Header, body: []byte(b.String())}
}

func (e *authEnv) createUser(username, password string, role auth.Role, codes ...string) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"username": username, "password": password, "role": role, "display_name": username, "grid_codes": codes})
	if r := e.do("POST", "/api/v1/users", body); r.status != 201 {
		e.t.Fatalf("create user: %d %s", r.status, r.body)
	}
}

func TestSessionLoginCSRFLogout(t *testing.T) {
	e := newAuthEnv(t)
	e.createUser("lisi", "correct horse battery", auth.RoleGISEditor)
	b := e.browser()
	login := func(user, pw string) response { return e.login(b, user, pw) }
	wrong := login("lisi", "wrong password!")
	unknown := login("nobody", "wrong password!")
	if wrong.status != 401 || unknown.status != 401 || wrong.errorOf(t)["message"] != unknown.errorOf(t)["message"] {
		t.Fatalf("wrong password %d %s / unknown user %d %s: want the same 401", wrong.status, wrong.body, unknown.status, unknown.body)
	}
	r := login("LiSi", "correct horse battery")
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	me := r.json(t)
	csrf, _ := me["csrf_token"].(string)
	if me["role"] != "gis_editor" || csrf == "" {
		t.Fatalf("login answer %v: want role and csrf token", me)
	}
	cookie := r.header.Get("Set-Cookie")
	for _, want := range []string{"gw_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(string(r.body), strings.TrimPrefix(strings.Split(cookie, ";")[0], "gw_session=")) {
		t.Error("the session secret is in the body")
	}
	if r := e.send(b, "GET", "/api/v1/me", "", nil); r.status != 200 || r.json(t)["username"] != "lisi" {
		t.Errorf("me: %d %s", r.status, r.body)
	}
	feature := `{"type":"Feature","properties":{"code":"410106","name":"管城区","level":"district"},"geometry":{"type":"Polygon","coordinates":[[[113.7,34.7],[113.8,34.7],[113.8,34.8],[113.7,34.7]]]}}`
	if r := e.send(b, "POST", "/api/v1/grids", feature, nil); r.status != 403 || r.errorOf(t)["code"] != "csrf" {
		t.Errorf("change without CSRF token: %d %s, want 403 csrf", r.status, r.body)
	}
	if r := e.send(b, "POST", "/api/v1/grids", feature, map[string]string{"X-CSRF-Token": "forged"}); r.status != 403 {
		t.Errorf("forged CSRF token: %d", r.status)
	}
	if r := e.send(b, "POST", "/api/v1/grids", feature, map[string]string{"X-CSRF-Token": csrf, "Origin": "http://evil.example"}); r.status != 403 {
		t.Errorf("cross-origin change: %d, want 403", r.status)
	}
	if r := e.send(b, "POST", "/api/v1/grids", feature, map[string]string{"X-CSRF-Token": csrf, "Origin": e.srv.URL}); r.status != 201 {
		t.Errorf("change with CSRF token: %d %s", r.status, r.body)
	}
	if r := e.send(b, "POST", "/api/v1/auth/logout", "", map[string]string{"X-CSRF-Token": csrf}); r.status != 204 {
		t.Errorf("logout: %d %s", r.status, r.body)
	}
	if r := e.send(b, "GET", "/api/v1/me", "", nil); r.status != 401 || r.errorOf(t)["code"] != "unauthenticated" {
		t.Errorf("after logout: %d %s", r.status, r.body)
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newAuthEnv(t)
	e.createUser("wangwu", "correct horse battery", auth.RoleCommander)
	b := e.browser()
	if r := e.send(b, "POST", "/api/v1/auth/login", `{"username":"wangwu","password":"correct horse battery"}`, nil); r.status != 200 {
		t.Fatal(r.status)
	}
	// Active use keeps it alive past the idle limit, not past the absolute one.
	for range 20 {
		e.clock.Add(25 * time.Minute)
		if r := e.send(b, "GET", "/api/v1/me", "", nil); r.status != 200 {
			t.Fatalf("active session ended early at %v: %d", e.clock.Now(), r.status)
		}
		if e.clock.Now().Sub(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)) > 7*time.Hour+30*time.Minute {
			break
		}
	}
	e.clock.Add(45 * time.Minute) // past 8 h since login
	if r := e.send(b, "GET", "/api/v1/me", "", nil); r.status != 401 {
		t.Errorf("after the absolute limit: %d, want 401", r.status)
	}
	// Idle: a new session left alone for more than 30 minutes ends.
	b = e.browser()
	e.send(b, "POST", "/api/v1/auth/login", `{"username":"wangwu","password":"correct horse battery"}`, nil)
	e.clock.Add(31 * time.Minute)
	if r := e.send(b, "GET", "/api/v1/me", "", nil); r.status != 401 || !strings.Contains(r.errorOf(t)["message"].(string), "sign in again") {
		t.Errorf("after idling: %d %s, want 401", r.status, r.body)
	}
}

func TestLoginThrottling(t *testing.T) {
	e := newAuthEnv(t)
	e.createUser("zhaoliu", "correct horse battery", auth.RoleCommander)
	b := e.browser()
	try := func(user, pw string) response { return e.login(b, user, pw) }
	for i := range 5 {
		if r := try("zhaoliu", "guess number "+fmt.Sprint(i)); r.status != 401 {
			t.Fatalf("failure %d: %d", i, r.status)
		}
	}
	r := try("zhaoliu", "correct horse battery")
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.errorOf(t)["code"] != "throttled" {
		t.Fatalf("locked account with the right password: %d %s, want 429 with Retry-After", r.status, r.body)
	}
	// An unknown name locks the same way: no telling which names exist.
	for range 5 {
		try("ghost", "guess")
	}
	if r := try("ghost", "guess"); r.status != 429 {
		t.Errorf("unknown account after 5 failures: %d, want 429 like a real one", r.status)
	}
	e.clock.Add(31 * time.Second)
	if r := try("zhaoliu", "correct horse battery"); r.status != 200 {
		t.Errorf("after the lock: %d %s", r.status, r.body)
	}
	// One address trying many names locks the address.
	for i := range 20 {
		try(fmt.Sprintf("user%d", i), "guess")
	}
	if r := try("zhaoliu", "correct horse battery"); r.status != 429 {
		t.Errorf("address lock: %d, want 429", r.status)
	}
}

func TestTokensScopeAndRevocation(t *testing.T) {
	e := newAuthEnv(t)
	r := e.do("POST", "/api/v1/tokens", []byte(`{"name":"leader tablet","role":"grid_leader","grid_codes":["410105001001"]}`))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := r.json(t)
	secret := created["secret"].(string)
	id := int64(created["token"].(map[string]any)["id"].(float64))
	if !strings.HasPrefix(secret, "gw_") {
		t.Errorf("secret %q", secret)
	}
	list := e.do("GET", "/api/v1/tokens", nil)
	if strings.Contains(string(list.body), secret) || strings.Contains(string(list.body), "hash") {
		t.Errorf("token list shows the secret or its hash: %s", list.body)
	}
	e.token = secret
	grids := e.do("GET", "/api/v1/grids?limit=1000", nil).json(t)["grids"].([]any)
	if len(grids) != 12 {
		t.Errorf("grid leader sees %d grids, want the community and its 11 grids", len(grids))
	}
	if fc := e.do("GET", "/api/v1/grids.geojson", nil).json(t)["features"].([]any); len(fc) != 12 {
		t.Errorf("grid leader map has %d features, want 12", len(fc))
	}
	// Another street's grid: as if it did not exist.
	e.token = adminToken
	other := e.do("GET", "/api/v1/grids?level=street", nil).json(t)["grids"].([]any)[2].(map[string]any)
	e.token = secret
	if r := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", int64(other["id"].(float64))), nil); r.status != 404 {
		t.Errorf("out-of-scope grid: %d, want 404", r.status)
	}
	in := grids[1].(map[string]any)
	d := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", int64(in["id"].(float64))), nil).json(t)
	if chain := d["chain"].([]any); len(chain) > 2 {
		t.Errorf("in-scope detail chain %v shows grids above the scope", chain)
	}
	e.token = adminToken
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", id), nil); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	e.token = secret
	if r := e.do("GET", "/api/v1/grids", nil); r.status != 401 {
		t.Errorf("revoked token: %d, want 401", r.status)
	}
	// An expired token stops working when its time comes.
	e.token = adminToken
	exp := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	r = e.do("POST", "/api/v1/tokens", []byte(`{"name":"short","role":"commander","expires_at":"`+exp+`"}`))
	short := r.json(t)["secret"].(string)
	e.token = short
	if r := e.do("GET", "/api/v1/grids", nil); r.status != 200 {
		t.Errorf("fresh token: %d", r.status)
	}
	e.clock.Add(61 * time.Minute)
	if r := e.do("GET", "/api/v1/grids", nil); r.status != 401 {
		t.Errorf("expired token: %d, want 401", r.status)
	}
	for _, s := range []string{secret, short, adminToken} {
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("a token secret is in the log")
		}
	}
}

func TestUsersAdministration(t *testing.T) {
	e := newAuthEnv(t)
	bad := []struct{ body, field string }{
		{`{"username":"A B","password":"long enough pw","role":"commander"}`, "username"},
		{`{"username":"ok","password":"short","role":"commander"}`, "password"},
		{`{"username":"ok","password":"long enough pw","role":"mayor"}`, "role"},
		{`{"username":"ok","password":"long enough pw","role":"grid_leader"}`, "grid_codes"},
		{`{"username":"ok","password":"long enough pw","role":"grid_leader","grid_codes":["999"]}`, "grid_codes"},
		{`{"username":"ok","password":"long enough pw","role":"commander","colour":"red"}`, "colour"},
	}
	for _, b := range bad {
		r := e.do("POST", "/api/v1/users", []byte(b.body))
		if r.status != 400 || r.errorOf(t)["details"].(map[string]any)["field"] != b.field {
			t.Errorf("%s: %d %s, want 400 naming %s", b.body, r.status, r.body, b.field)
		}
	}
	e.createUser("admin2", "correct horse battery", auth.RoleAdmin)
	e.createUser("leader", "correct horse battery", auth.RoleGridLeader, "410105001001")
	if r := e.do("POST", "/api/v1/users", []byte(`{"username":"leader","password":"long enough pw","role":"commander"}`)); r.status != 409 {
		t.Errorf("duplicate: %d", r.status)
	}
	users := e.do("GET", "/api/v1/users", nil)
	if strings.Contains(string(users.body), "argon2") || strings.Contains(string(users.body), "password") {
		t.Errorf("user list shows password material: %s", users.body)
	}
	var admin2 int64
	for _, u := range users.json(t)["users"].([]any) {
		if m := u.(map[string]any); m["username"] == "admin2" {
			admin2 = int64(m["id"].(float64))
		}
	}
	// The last enabled admin cannot be disabled.
	if r := e.do("PATCH", fmt.Sprintf("/api/v1/users/%d", admin2), []byte(`{"disabled":true}`)); r.status != 409 {
		t.Errorf("disable the last admin: %d %s, want 409", r.status, r.body)
	}
	// Disabling ends the user's sessions at once.
	b := e.browser()
	if r := e.send(b, "POST", "/api/v1/auth/login", `{"username":"leader","password":"correct horse battery"}`, nil); r.status != 200 {
		t.Fatal(r.status)
	}
	var leader int64
	for _, u := range e.do("GET", "/api/v1/users", nil).json(t)["users"].([]any) {
		if m := u.(map[string]any); m["username"] == "leader" {
			leader = int64(m["id"].(float64))
		}
	}
	if r := e.do("PATCH", fmt.Sprintf("/api/v1/users/%d", leader), []byte(`{"disabled":true}`)); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if r := e.send(b, "GET", "/api/v1/me", "", nil); r.status != 401 {
		t.Errorf("disabled user's session: %d, want 401", r.status)
	}
}

func TestAuditTrail(t *testing.T) {
	e := newAuthEnv(t)
	e.createUser("auditee", "correct horse battery", auth.RoleCommander)
	b := e.browser()
	e.send(b, "POST", "/api/v1/auth/login", `{"username":"auditee","password":"wrong wrong"}`, map[string]string{"X-Request-ID": "req-login-1"})
	r := e.do("GET", "/api/v1/audit?limit=100", nil)
	entries := r.json(t)["entries"].([]any)
	actions := map[string]map[string]any{}
	for _, x := range entries {
		m := x.(map[string]any)
		actions[m["action"].(string)] = m
	}
	for _, want := range []string{"grid.import", "user.create", "auth.login_failed"} {
		if actions[want] == nil {
			t.Errorf("no %s entry in %s", want, r.body)
		}
	}
	uc := actions["user.create"]
	if uc["actor"].(map[string]any)["name"] != "bootstrap" || uc["summary"].(map[string]any)["after"].(map[string]any)["username"] != "auditee" || uc["request_id"] == "" {
		t.Errorf("user.create entry %v: want who, after-summary and request id", uc)
	}
	if lf := actions["auth.login_failed"]; lf["request_id"] != "req-login-1" {
		t.Errorf("login failure entry %v: want the request id", lf)
	}
	if r := e.do("GET", "/api/v1/audit?action=grid.&limit=10", nil); len(r.json(t)["entries"].([]any)) != 1 {
		t.Errorf("filter by action prefix: %s", r.body)
	}
	if r := e.do("GET", "/api/v1/audit?from=yesterday", nil); r.status != 400 {
		t.Errorf("bad from: %d", r.status)
	}
	// Append-only, even for the database owner.
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, "UPDATE audit_log SET actor_name = 'someone else'"); err == nil {
		t.Error("audit_log accepted an UPDATE")
	}
	if _, err := e.pool.Exec(ctx, "DELETE FROM audit_log"); err == nil {
		t.Error("audit_log accepted a DELETE")
	}
	if _, err := e.pool.Exec(ctx, "TRUNCATE audit_log"); err == nil {
		t.Error("audit_log accepted a TRUNCATE")
	}
}
