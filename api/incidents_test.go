package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"gridwatch/auth"
)

// gridPoint returns a point inside the first grid-level cell of the demo
// city and that grid's id and code.
func (e *authEnv) gridPoint() (lon, lat float64, id int64, code string) {
	e.t.Helper()
	saved := e.token
	e.token = adminToken
	defer func() { e.token = saved }()
	g := e.do("GET", "/api/v1/grids?level=grid&limit=1", nil).json(e.t)["grids"].([]any)[0].(map[string]any)
	id = int64(g["id"].(float64))
	det := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", id), nil).json(e.t)
	ring := det["geometry"].(map[string]any)["coordinates"].([]any)[0].([]any)[0].([]any)
	for _, p := range ring[:len(ring)-1] {
		lon += p.([]any)[0].(float64)
		lat += p.([]any)[1].(float64)
	}
	n := float64(len(ring) - 1)
	return lon / n, lat / n, id, g["code"].(string)
}

func incidentBody(lon, lat float64, ext string) []byte {
	return []byte(fmt.Sprintf(`{"source":"hotline","external_id":%q,"category":"0101","title":"暴露垃圾","description":"路口垃圾堆放",
		"location":{"type":"Point","coordinates":[%v,%v]},"address":"经八路1号","priority":"high"}`, ext, lon, lat))
}

func TestIncidentsOverHTTP(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, code := e.gridPoint()
	hotline := e.tokenFor(auth.RoleIntegration)
	e.token = hotline
	r := e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "12345-1"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	in := r.json(t)
	if in["status"] != "reported" || in["version"].(float64) != 1 || in["deadline"] == nil || in["grid"].(map[string]any)["code"] != code {
		t.Errorf("created %s", r.body)
	}
	id := int64(in["id"].(float64))
	// A retry with the same external id: 200 and the same incident.
	if r := e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "12345-1")); r.status != 200 || int64(r.json(t)["id"].(float64)) != id {
		t.Errorf("retry: %d %s", r.status, r.body)
	}
	// The integration reads its own report's status, and nothing else.
	if r := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil); r.status != 200 {
		t.Errorf("own incident: %d", r.status)
	}
	e.token = adminToken
	other := int64(e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "")).json(t)["id"].(float64))
	e.token = hotline
	if r := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", other), nil); r.status != 404 {
		t.Errorf("another's incident: %d, want 404", r.status)
	}
	if l := e.do("GET", "/api/v1/incidents", nil).json(t)["incidents"].([]any); len(l) != 1 {
		t.Errorf("integration list: %d incidents, want its own 1", len(l))
	}
	if r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"registered","version":1}`)); r.status != 403 {
		t.Errorf("integration transition: %d, want 403", r.status)
	}
	// Idempotency-Key.
	e.token = adminToken
	req := func(key string) response {
		hr, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/incidents", bytes.NewReader(incidentBody(lon, lat, "")))
		hr.Header.Set("Authorization", "Bearer "+adminToken)
		hr.Header.Set("Idempotency-Key", key)
		res, err := e.srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		return readResponse(res)
	}
	a, b := req("retry-key-1"), req("retry-key-1")
	if a.status != 201 || b.status != 200 || a.json(t)["id"] != b.json(t)["id"] {
		t.Errorf("Idempotency-Key: %d/%d", a.status, b.status)
	}
	// The grid's leader sees it but cannot register it (a command step);
	// a commander registers and dispatches; then the leader handles it.
	leader := e.tokenFor(auth.RoleGridLeader, code)
	commander := e.tokenFor(auth.RoleCommander)
	e.token = leader
	if r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"registered","version":1}`)); r.status != 403 {
		t.Errorf("leader registering: %d %s, want 403", r.status, r.body)
	}
	e.token = commander
	r = e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"closed","version":1}`))
	if r.status != 409 || !strings.Contains(string(r.body), `"allowed":["registered","rejected"]`) {
		t.Errorf("illegal step: %d %s, want 409 listing the allowed", r.status, r.body)
	}
	if r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"registered","version":1,"note":"立案"}`)); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"rejected","version":1}`)); r.status != 409 ||
		r.errorOf(t)["details"].(map[string]any)["current_version"].(float64) != 2 {
		t.Errorf("stale version: %d %s", r.status, r.body)
	}
	// Staff: the commander adds the leader; dispatch defaults to them.
	if r := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/staff", gridID), []byte(`{"role":"leader","name":"王芳","phone":"13800000000"}`)); r.status != 201 {
		t.Fatalf("add staff: %d %s", r.status, r.body)
	}
	r = e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"dispatched","version":2}`))
	if r.status != 200 || r.json(t)["assignee"].(map[string]any)["name"] != "王芳" {
		t.Errorf("dispatch: %d %s", r.status, r.body)
	}
	// The leader of that grid now handles it.
	e.token = leader
	if r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"in_progress","version":3}`)); r.status != 200 {
		t.Errorf("leader accepting: %d %s", r.status, r.body)
	}
	d := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil).json(t)
	if h := d["history"].([]any); len(h) != 4 {
		t.Errorf("history: %d entries, want 4", len(h))
	}
	if l := e.do("GET", "/api/v1/incidents?status=in_progress&grid="+fmt.Sprint(gridID), nil).json(t)["incidents"].([]any); len(l) != 1 {
		t.Errorf("filtered list: %d", len(l))
	}
	// The hotline that reported it sees its status, not who handles it.
	e.token = hotline
	if r := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil); r.status != 200 || strings.Contains(string(r.body), "王芳") ||
		r.json(t)["status"] != "in_progress" || r.json(t)["history"] != nil {
		t.Errorf("integration view: %d %s", r.status, r.body)
	}
	e.token = leader
	for _, q := range []string{"status=done", "grid=x", "from=yesterday", "bbox=1,2,3", "overdue=perhaps", "cursor=-1"} {
		if r := e.do("GET", "/api/v1/incidents?"+q, nil); r.status != 400 {
			t.Errorf("%s: %d, want 400", q, r.status)
		}
	}
}

func TestBulkOverHTTP(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	var body bytes.Buffer
	for i := range 12 {
		fmt.Fprintf(&body, `{"source":"sensor","external_id":"b-%d","category":"0404","title":"积水","location":{"type":"Point","coordinates":[%v,%v]}}`+"\n", i, lon, lat)
	}
	body.WriteString("{broken\n")
	r := e.do("POST", "/api/v1/incidents/bulk", body.Bytes())
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/x-ndjson") {
		t.Fatalf("bulk: %d %s", r.status, r.body)
	}
	lines := r.ndjson(t)
	if len(lines) != 14 {
		t.Fatalf("%d answer lines, want 13 results and a summary", len(lines))
	}
	sum := lines[13]["summary"].(map[string]any)
	if sum["created"].(float64) != 12 || sum["errors"].(float64) != 1 {
		t.Errorf("summary %v", sum)
	}
	if lines[12]["status"] != "error" || lines[12]["line"].(float64) != 13 {
		t.Errorf("bad line result %v", lines[12])
	}
	// The same stream again: all duplicates, nothing new.
	r = e.do("POST", "/api/v1/incidents/bulk", body.Bytes())
	if !strings.Contains(string(r.body), `"duplicates":12`) {
		t.Errorf("replayed bulk: %s", r.body)
	}
}

// tinyPNG is a 1×1 PNG.
func tinyPNG(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestIncidentPhotos(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, code := e.gridPoint()
	id := int64(e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "")).json(t)["id"].(float64))
	upload := func(name string, data []byte) response {
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		fw, _ := w.CreateFormFile("file", name)
		fw.Write(data)
		w.Close()
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/incidents/%d/attachments", e.srv.URL, id), &body)
		req.Header.Set("Content-Type", w.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+e.token)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return readResponse(res)
	}
	pic := tinyPNG(t)
	r := upload("../../etc/现场.png", pic)
	if r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	a := r.json(t)
	if a["content_type"] != "image/png" || a["filename"] != "现场.png" || a["bytes"].(float64) != float64(len(pic)) {
		t.Errorf("attachment %v", a)
	}
	got := e.do("GET", a["url"].(string), nil)
	if got.status != 200 || got.header.Get("Content-Type") != "image/png" || !bytes.Equal(got.body, pic) {
		t.Errorf("download: %d %s", got.status, got.header.Get("Content-Type"))
	}
	if d := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil).json(t); len(d["attachments"].([]any)) != 1 {
		t.Errorf("incident lists %v attachments", d["attachments"])
	}
	if r := upload("evil.png", []byte("<html><script>alert(1)</script></html>")); r.status != 400 || r.errorOf(t)["details"].(map[string]any)["field"] != "file" {
		t.Errorf("HTML named .png: %d %s, want 400 naming file", r.status, r.body)
	}
	if r := upload("big.png", append(pic, make([]byte, 11<<20)...)); r.status != 413 {
		t.Errorf("11 MiB photo: %d, want 413", r.status)
	}
	// A grid leader of another grid cannot see the incident's photos.
	var otherCode string
	for _, g := range e.do("GET", "/api/v1/grids?level=grid&limit=5", nil).json(t)["grids"].([]any) {
		if c := g.(map[string]any)["code"].(string); c != code {
			otherCode = c
			break
		}
	}
	e.token = e.tokenFor(auth.RoleGridLeader, otherCode)
	if r := e.do("GET", a["url"].(string), nil); r.status != 404 {
		t.Errorf("out-of-scope photo: %d, want 404", r.status)
	}
}

// TestIncidentScopeHoles: replaying another's external id files the
// caller's own incident (keys are per caller) and reveals nothing of the
// first; a scoped commander cannot remove staff or dispatch outside
// their grids; a transition needs its version.
func TestIncidentScopeHoles(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, code := e.gridPoint()
	secret := incidentBody(lon, lat, "P-77")
	first := e.do("POST", "/api/v1/incidents", secret)
	if first.status != 201 {
		t.Fatalf("create: %d %s", first.status, first.body)
	}
	e.token = e.tokenFor(auth.RoleIntegration)
	r := e.do("POST", "/api/v1/incidents", secret)
	if r.status != 201 || r.json(t)["id"] == first.json(t)["id"] {
		t.Errorf("replayed external id: %d %s, want 201 with an incident of its own (not %v)", r.status, r.body, first.json(t)["id"])
	}
	e.token = adminToken
	var other int64
	for _, g := range e.do("GET", "/api/v1/grids?level=grid&limit=100", nil).json(t)["grids"].([]any) {
		m := g.(map[string]any)
		if !strings.HasPrefix(m["code"].(string), code[:12]) {
			other = int64(m["id"].(float64))
			break
		}
	}
	staff := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/staff", other), []byte(`{"role":"leader","name":"远处的网格长"}`)).json(t)
	e.do("POST", fmt.Sprintf("/api/v1/grids/%d/staff", gridID), []byte(`{"role":"leader","name":"本地网格长"}`))
	body, _ := json.Marshal(map[string]any{"name": "scoped commander", "role": "commander", "grid_codes": []string{code[:12]}})
	scoped := e.do("POST", "/api/v1/tokens", body).json(t)["secret"].(string)
	e.token = scoped
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/staff/%d", int64(staff["id"].(float64))), nil); r.status != 404 {
		t.Errorf("scoped commander removing another grid's staff: %d, want 404", r.status)
	}
	id := int64(e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "")).json(t)["id"].(float64))
	e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"registered","version":1}`))
	r = e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(fmt.Sprintf(`{"to":"dispatched","version":2,"grid_id":%d}`, other)))
	if r.status != 400 || r.errorOf(t)["details"].(map[string]any)["field"] != "grid_id" {
		t.Errorf("dispatch outside the scope: %d %s, want 400 on grid_id", r.status, r.body)
	}
	if r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(`{"to":"dispatched"}`)); r.status != 400 || r.errorOf(t)["details"].(map[string]any)["field"] != "version" {
		t.Errorf("no version: %d %s, want 400 on version", r.status, r.body)
	}
}

// ndjson reads the body as NDJSON, one object a line.
func (r response) ndjson(t testing.TB) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("answer line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}
