package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gridwatch/api"
	"gridwatch/auth"
	"gridwatch/camera/camsim"
	"gridwatch/camera/live"
	"gridwatch/camera/onvif"
	"gridwatch/camera/onvifcam"
	"gridwatch/camera/video"
	"gridwatch/internal/testdb"
)

// onvifEnv is an API over a database with two simulated ONVIF cameras
// (their device services and their WS-Discovery answers on loopback).
type onvifEnv struct {
	*authEnv
	sim  *camsim.Sim
	base string // the simulated devices' http://host:port
}

const simPassword = "Hik12345-secret"

func newONVIFEnv(t *testing.T, tweak ...func(*api.Deps)) *onvifEnv {
	t.Helper()
	sim, err := camsim.New(camsim.Config{N: 2, Addr: "127.0.0.1:0", Username: "admin", Password: simPassword})
	if err != nil {
		t.Fatal(err)
	}
	dev := httptest.NewServer(sim.ONVIFHandler())
	t.Cleanup(dev.Close)
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.ServeDiscovery(ctx, udp, dev.URL) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	ck := newClock()
	pool := testdb.New(t)
	ae := newAuthEnvOn(t, pool, ck, func(d *api.Deps) {
		d.ONVIF = onvifcam.New(pool, d.Cameras, onvifcam.Options{
			Hold: 30 * time.Second, Now: ck.Now,
			Discovery: onvif.DiscoverOptions{Addr: udp.LocalAddr().String(), Wait: 2 * time.Second},
		})
		for _, f := range tweak {
			f(d)
		}
	})
	return &onvifEnv{authEnv: ae, sim: sim, base: dev.URL}
}

func (e *onvifEnv) deviceURL(n int) string {
	return fmt.Sprintf("%s/onvif/%d/device_service", e.base, n)
}

func (e *onvifEnv) post(path string, v any) response {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do("POST", path, b)
}

// fieldOf is the field an error's details name.
func fieldOf(t *testing.T, r response) string {
	d, _ := r.errorOf(t)["details"].(map[string]any)
	f, _ := d["field"].(string)
	return f
}

// An operator adds a camera by its ONVIF address and account alone: the
// probe says what the device is and which streams it would pull; the
// camera is registered with the device's main and sub streams, signed in
// with the account, which shows nowhere; discovery lists the devices not
// registered first; a change keeps the account when the address stays.
func TestAddCameraByONVIF(t *testing.T) {
	e := newONVIFEnv(t)
	e.token = e.tokenFor(auth.RoleOperator)
	lon, lat, _, _ := e.gridPoint()

	r := e.post("/api/v1/onvif/probe", map[string]any{"url": e.deviceURL(1), "username": "admin", "password": simPassword})
	if r.status != 200 {
		t.Fatalf("probe: %d %s", r.status, r.body)
	}
	var probe struct {
		Device struct {
			Manufacturer, Model, Serial string
			ClockOffsetMS               int64 `json:"clock_offset_ms"`
			PTZ                         bool
		}
		Streams []struct {
			Token, Encoding, URI string
			Width                int
		}
		MainProfile string `json:"main_profile"`
		SubProfile  string `json:"sub_profile"`
		PTZProfile  string `json:"ptz_profile"`
		Registered  any
	}
	if err := json.Unmarshal(r.body, &probe); err != nil {
		t.Fatal(err)
	}
	if probe.Device.Manufacturer != "Gridwatch" || probe.Device.Serial != "CAMSIM-0001" || !probe.Device.PTZ || probe.Device.ClockOffsetMS > 2000 || probe.Device.ClockOffsetMS < -2000 {
		t.Errorf("device %+v", probe.Device)
	}
	if len(probe.Streams) != 3 || probe.MainProfile != "main" || probe.SubProfile != "sub" || probe.PTZProfile != "main" || probe.Registered != nil {
		t.Errorf("probe %+v", probe)
	}
	wantMain := strings.Replace(e.sim.URL(1, camsim.StreamMain), "admin:"+simPassword+"@", "", 1)
	if probe.Streams[0].URI != wantMain || probe.Streams[2].Encoding != "H265" {
		t.Errorf("streams %+v, want main at %s", probe.Streams, wantMain)
	}

	// What is wrong is named: the address, the account.
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
		says  string
	}{
		{"wrong password", map[string]any{"url": e.deviceURL(1), "username": "admin", "password": "nope"}, "onvif.password", "refused the user name or password"},
		{"not http", map[string]any{"url": "ftp://10.0.0.9/onvif", "username": "admin"}, "onvif.url", "http://"},
		{"credentials in the URL", map[string]any{"url": "http://admin:x@10.0.0.9/onvif/device_service"}, "onvif.url", "must not hold credentials"},
		{"nobody there", map[string]any{"url": "http://127.0.0.1:1/onvif/device_service", "username": "admin", "password": "x"}, "onvif.url", "did not answer"},
		{"not a camera", map[string]any{"url": e.base + "/nothing", "username": "admin", "password": "x"}, "onvif.url", "did not answer"},
	} {
		r := e.post("/api/v1/onvif/probe", tc.body)
		if r.status != 400 || fieldOf(t, r) != tc.field || !strings.Contains(string(r.body), tc.says) {
			t.Errorf("%s: %d %s, want 400 naming %s (%q)", tc.name, r.status, r.body, tc.field, tc.says)
		}
		if strings.Contains(string(r.body), simPassword) {
			t.Errorf("%s: the answer repeats the password", tc.name)
		}
	}

	// Registered by address: the streams come from the device.
	r = e.post("/api/v1/cameras", map[string]any{"code": "ONVIF-1", "name": "东门球机", "location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"onvif": map[string]any{"url": e.deviceURL(1), "username": "admin", "password": simPassword}})
	if r.status != 201 {
		t.Fatalf("create by ONVIF: %d %s", r.status, r.body)
	}
	cam := r.json(t)
	id := int64(cam["id"].(float64))
	ov, _ := cam["onvif"].(map[string]any)
	dev, _ := ov["device"].(map[string]any)
	wantSub := strings.Replace(e.sim.URL(1, camsim.StreamSub), "admin:"+simPassword+"@", "", 1)
	if cam["main_url"] != wantMain || cam["sub_url"] != wantSub || cam["has_credentials"] != true ||
		ov["url"] != e.deviceURL(1) || ov["has_credentials"] != true || ov["profile"] != "main" || dev["serial"] != "CAMSIM-0001" {
		t.Errorf("camera %s", r.body)
	}
	// A wrong account registers nothing.
	r = e.post("/api/v1/cameras", map[string]any{"code": "ONVIF-X", "name": "x", "location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"onvif": map[string]any{"url": e.deviceURL(2), "username": "admin", "password": "wrong"}})
	if r.status != 400 || fieldOf(t, r) != "onvif.password" {
		t.Errorf("create with a wrong account: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/cameras?q=ONVIF-X", nil); strings.Contains(string(r.body), "ONVIF-X") {
		t.Errorf("a refused camera was stored: %s", r.body)
	}
	// A named profile that the device lacks is refused, naming it.
	r = e.post("/api/v1/cameras", map[string]any{"code": "ONVIF-Y", "name": "y", "location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"onvif": map[string]any{"url": e.deviceURL(2), "username": "admin", "password": simPassword, "main_profile": "4k"}})
	if r.status != 400 || fieldOf(t, r) != "onvif.main_profile" || !strings.Contains(errMessage(t, r), `"main"`) {
		t.Errorf("create with an unknown profile: %d %s", r.status, r.body)
	}

	// Discovery: the unregistered device first, the registered one named.
	r = e.do("GET", "/api/v1/onvif/discover", nil)
	if r.status != 200 {
		t.Fatalf("discover: %d %s", r.status, r.body)
	}
	var disc struct {
		Devices []struct {
			URL, Name  string
			Registered *struct{ ID int64 }
		}
	}
	if err := json.Unmarshal(r.body, &disc); err != nil {
		t.Fatal(err)
	}
	if len(disc.Devices) != 2 || disc.Devices[0].URL != e.deviceURL(2) || disc.Devices[0].Registered != nil ||
		disc.Devices[1].URL != e.deviceURL(1) || disc.Devices[1].Registered == nil || disc.Devices[1].Registered.ID != id {
		t.Errorf("discovered %s", r.body)
	}

	// A change naming the same address without the account keeps it (the
	// device is probed again with it); the H.265 profile becomes the main stream.
	r = e.do("PATCH", fmt.Sprintf("/api/v1/cameras/%d", id), []byte(fmt.Sprintf(`{"onvif":{"url":%q,"main_profile":"h265","sub_profile":"none"}}`, e.deviceURL(1))))
	if r.status != 200 {
		t.Fatalf("patch keeping the account: %d %s", r.status, r.body)
	}
	cam = r.json(t)
	wantH265 := strings.Replace(e.sim.URL(1, camsim.StreamH265), "admin:"+simPassword+"@", "", 1)
	if cam["main_url"] != wantH265 || cam["sub_url"] != "" || cam["onvif"].(map[string]any)["has_credentials"] != true || cam["onvif"].(map[string]any)["profile"] != "h265" {
		t.Errorf("after the change: %s", r.body)
	}
	// Another address without an account is probed without one: refused.
	r = e.do("PATCH", fmt.Sprintf("/api/v1/cameras/%d", id), []byte(fmt.Sprintf(`{"onvif":{"url":%q}}`, e.deviceURL(2))))
	if r.status != 400 || fieldOf(t, r) != "onvif.password" {
		t.Errorf("a new address without its account: %d %s", r.status, r.body)
	}
	// Profiles without an address are a mistake, not a removal: nothing changes.
	r = e.do("PATCH", fmt.Sprintf("/api/v1/cameras/%d", id), []byte(`{"onvif":{"sub_profile":"none"}}`))
	if r.status != 400 || fieldOf(t, r) != "onvif.url" {
		t.Errorf("onvif without a url: %d %s", r.status, r.body)
	}
	if r := e.do("GET", fmt.Sprintf("/api/v1/cameras/%d", id), nil); r.json(t)["onvif"] == nil {
		t.Errorf("a refused change dropped the camera's ONVIF: %s", r.body)
	}
	// An empty address: no longer managed over ONVIF; the streams stay.
	r = e.do("PATCH", fmt.Sprintf("/api/v1/cameras/%d", id), []byte(`{"onvif":{"url":""}}`))
	if r.status != 200 || r.json(t)["onvif"] != nil || r.json(t)["main_url"] != wantH265 {
		t.Errorf("ONVIF removed: %d %s", r.status, r.body)
	}

	// The account shows nowhere: cameras, the audit log, the server's log.
	e.token = adminToken
	for _, path := range []string{"/api/v1/cameras", fmt.Sprintf("/api/v1/cameras/%d", id), "/api/v1/audit?target_type=camera", "/ogc/collections/cameras/items"} {
		if r := e.do("GET", path, nil); r.status != 200 || strings.Contains(string(r.body), simPassword) {
			t.Errorf("GET %s: %d, shows the password: %v", path, r.status, strings.Contains(string(r.body), simPassword))
		}
	}
	if strings.Contains(e.logs.String(), simPassword) {
		t.Error("the server's log holds the ONVIF password")
	}
}

// PTZ: an operator steers a dome (the simulated head moves), saves and
// recalls a preset; while they hold it, someone else is told who steers
// until when; control lapses after the hold and can be let go; every
// command is audited (a held button's repeats once); the permission and
// the grid leader's scope apply; bad commands are named.
func TestPTZOverHTTP(t *testing.T) {
	e := newONVIFEnv(t)
	lon, lat, gridID, gridCode := e.gridPoint()
	operator := e.tokenFor(auth.RoleOperator)
	commander := e.tokenFor(auth.RoleCommander)
	gis := e.tokenFor(auth.RoleGISEditor)
	leaderHere := e.tokenFor(auth.RoleGridLeader, gridCode)
	e.token = adminToken
	other := ""
	for _, g := range e.do("GET", "/api/v1/grids?level=grid&limit=50", nil).json(t)["grids"].([]any) {
		if c := g.(map[string]any)["code"].(string); c != gridCode && other == "" {
			other = c
		}
	}
	leaderElsewhere := e.tokenFor(auth.RoleGridLeader, other)

	e.token = operator
	r := e.post("/api/v1/cameras", map[string]any{"code": "DOME-1", "name": "球机", "location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"onvif": map[string]any{"url": e.deviceURL(1), "username": "admin", "password": simPassword}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := int64(r.json(t)["id"].(float64))
	r = e.post("/api/v1/cameras", map[string]any{"code": "FIXED-1", "name": "枪机", "location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"main_url": "rtsp://127.0.0.1:1/x"})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	fixed := int64(r.json(t)["id"].(float64))
	ptz := fmt.Sprintf("/api/v1/cameras/%d/ptz", id)

	type status struct {
		PTZ        bool
		Position   *onvif.Vector
		Moving     bool
		Presets    []onvif.Preset
		Controller *struct {
			Name string
			You  bool
		}
		Error string
	}
	get := func(token string) status {
		t.Helper()
		e.token = token
		r := e.do("GET", ptz, nil)
		if r.status != 200 {
			t.Fatalf("GET ptz: %d %s", r.status, r.body)
		}
		var st status
		if err := json.Unmarshal(r.body, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := get(operator)
	if !st.PTZ || st.Position == nil || *st.Position != (onvif.Vector{}) || st.Moving || st.Controller != nil || st.Error != "" {
		t.Fatalf("at rest: %+v", st)
	}

	// Move: the head moves; the same move again (a held button) is one audit entry.
	for range 3 {
		if r := e.post(ptz, map[string]any{"op": "move", "pan": 0.5, "tilt": 0.25}); r.status != 200 || !strings.Contains(string(r.body), `"you":true`) {
			t.Fatalf("move: %d %s", r.status, r.body)
		}
	}
	if st := get(operator); !st.Moving || st.Controller == nil || !st.Controller.You || !strings.HasPrefix(st.Controller.Name, "test") {
		t.Errorf("moving: %+v", st)
	}
	// Someone else: told who steers.
	e.token = commander
	r = e.post(ptz, map[string]any{"op": "move", "pan": -1})
	if r.status != 409 || !strings.Contains(errMessage(t, r), "is being steered by") {
		t.Errorf("commander while the operator steers: %d %s", r.status, r.body)
	} else if d, _ := r.errorOf(t)["details"].(map[string]any); d["controller"] == nil {
		t.Errorf("the conflict does not say who: %s", r.body)
	}
	if st := get(commander); st.Controller == nil || st.Controller.You || st.Controller.Name == "" {
		t.Errorf("the commander's view of the controller: %+v", st.Controller)
	}
	e.token = operator
	if r := e.post(ptz, map[string]any{"op": "stop"}); r.status != 200 {
		t.Fatalf("stop: %d %s", r.status, r.body)
	}
	st = get(operator)
	if st.Moving || st.Position.Pan <= 0 || st.Position.Tilt <= 0 {
		t.Errorf("after move and stop: %+v", st)
	}
	at := *st.Position

	// Presets: save here, go home, come back.
	r = e.post(ptz, map[string]any{"op": "set_preset", "name": "东门 gate"})
	tok, _ := r.json(t)["preset"].(string)
	if r.status != 200 || tok == "" {
		t.Fatalf("set preset: %d %s", r.status, r.body)
	}
	if r := e.post(ptz, map[string]any{"op": "home"}); r.status != 200 {
		t.Fatalf("home: %d %s", r.status, r.body)
	}
	if st := get(operator); *st.Position != (onvif.Vector{}) || len(st.Presets) != 1 || st.Presets[0].Name != "东门 gate" {
		t.Errorf("home with a preset saved: %+v", st)
	}
	if r := e.post(ptz, map[string]any{"op": "goto", "preset": tok}); r.status != 200 {
		t.Fatalf("goto: %d %s", r.status, r.body)
	}
	if st := get(operator); *st.Position != at {
		t.Errorf("back at the preset: %+v, want %+v", st.Position, at)
	}

	// Bad commands are named and change nothing.
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"op": "fly"}, "op"},
		{map[string]any{"op": "move"}, "op"},
		{map[string]any{"op": "move", "pan": 2}, "pan"},
		{map[string]any{"op": "move", "zoom": -1.5}, "zoom"},
		{map[string]any{"op": "goto"}, "preset"},
		{map[string]any{"op": "goto", "preset": "99"}, "preset"},
		{map[string]any{"op": "set_preset", "name": " "}, "name"},
	} {
		if r := e.post(ptz, tc.body); r.status != 400 || fieldOf(t, r) != tc.field {
			t.Errorf("%v: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.field)
		}
	}
	if st := get(operator); *st.Position != at || st.Moving {
		t.Errorf("bad commands moved the head: %+v", st)
	}

	// The hold lapses: the commander takes over; letting go frees it at once.
	e.clock.Add(31 * time.Second)
	e.token = commander
	if r := e.post(ptz, map[string]any{"op": "home"}); r.status != 200 {
		t.Fatalf("the commander after the hold lapsed: %d %s", r.status, r.body)
	}
	e.token = operator
	if r := e.post(ptz, map[string]any{"op": "home"}); r.status != 409 {
		t.Errorf("the operator while the commander steers: %d %s", r.status, r.body)
	}
	e.token = commander
	if r := e.post(ptz, map[string]any{"op": "release"}); r.status != 200 || r.json(t)["controller"] != nil {
		t.Errorf("release: %d %s", r.status, r.body)
	}
	e.token = operator
	if r := e.post(ptz, map[string]any{"op": "home"}); r.status != 200 {
		t.Errorf("the operator after the release: %d %s", r.status, r.body)
	}

	// Who may: the permission, then the scope.
	e.token = leaderHere
	if r := e.do("GET", ptz, nil); r.status != 200 {
		t.Errorf("a leader of grid %d: %d %s", gridID, r.status, r.body)
	}
	for _, tc := range []struct {
		name, token string
		status      int
	}{{"GIS editor", gis, 403}, {"leader elsewhere", leaderElsewhere, 404}} {
		e.token = tc.token
		if r := e.post(ptz, map[string]any{"op": "home"}); r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
		}
	}
	// A camera not managed over ONVIF says so.
	e.token = operator
	if r := e.do("GET", fmt.Sprintf("/api/v1/cameras/%d/ptz", fixed), nil); r.status != 409 || !strings.Contains(errMessage(t, r), "not managed over ONVIF") {
		t.Errorf("a fixed camera: %d %s", r.status, r.body)
	}

	// The audit: each command once, with who; a held move once.
	e.token = adminToken
	r = e.do("GET", fmt.Sprintf("/api/v1/audit?action=camera.ptz&target_id=%d&limit=100", id), nil)
	var trail struct {
		Entries []struct {
			Actor   struct{ Name string }
			Summary struct {
				Command map[string]any
			}
		}
	}
	if err := json.Unmarshal(r.body, &trail); err != nil || r.status != 200 {
		t.Fatalf("audit: %d %s", r.status, r.body)
	}
	var ops []string
	for i := len(trail.Entries) - 1; i >= 0; i-- {
		ops = append(ops, fmt.Sprint(trail.Entries[i].Summary.Command["op"]))
	}
	want := "move stop set_preset home goto home release home"
	if strings.Join(ops, " ") != want {
		t.Errorf("audited %q, want %q", strings.Join(ops, " "), want)
	}
	if strings.Contains(string(r.body), simPassword) || strings.Contains(e.logs.String(), simPassword) {
		t.Error("the ONVIF password is in the audit or the log")
	}
}

func errMessage(t *testing.T, r response) string {
	m, _ := r.errorOf(t)["message"].(string)
	return m
}

// A camera's snapshot comes from its device's snapshot URI (HTTP Digest
// with its account) when the stream gives none — here a node without
// ffmpeg to decode a keyframe; a camera not managed over ONVIF still says
// why there is no snapshot.
func TestSnapshotFromONVIF(t *testing.T) {
	e := newONVIFEnv(t, func(d *api.Deps) {
		d.Video = video.NewManager(d.Cameras, live.Config{Idle: time.Minute}, func(live.Key, error) {})
	})
	e.token = e.tokenFor(auth.RoleOperator)
	lon, lat, _, _ := e.gridPoint()
	r := e.post("/api/v1/cameras", map[string]any{"code": "SNAP-1", "name": "球机", "location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"onvif": map[string]any{"url": e.deviceURL(2), "username": "admin", "password": simPassword}})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := int64(r.json(t)["id"].(float64))
	r = e.do("GET", fmt.Sprintf("/api/v1/cameras/%d/snapshot.jpg", id), nil)
	if r.status != 200 || r.header.Get("Content-Type") != "image/jpeg" || r.header.Get("X-Snapshot-Source") != "onvif" {
		t.Fatalf("snapshot: %d %v %.200s", r.status, r.header, r.body)
	}
	if _, err := jpeg.Decode(bytes.NewReader(r.body)); err != nil {
		t.Errorf("the snapshot is not a JPEG: %v", err)
	}
	r = e.post("/api/v1/cameras", map[string]any{"code": "SNAP-2", "name": "枪机", "location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"main_url": "rtsp://127.0.0.1:1/x"})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r = e.do("GET", fmt.Sprintf("/api/v1/cameras/%d/snapshot.jpg", int64(r.json(t)["id"].(float64))), nil)
	if r.status != 503 || !strings.Contains(errMessage(t, r), "ffmpeg") {
		t.Errorf("a camera without ONVIF on a node without ffmpeg: %d %s", r.status, r.body)
	}
}
