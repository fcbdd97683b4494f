package api_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"gridwatch/auth"
)

// TestIntegrationSeesNoCameras: an integration token (a hotline's, and the
// Open311 api_key, which travels in URLs) posts incidents and reads them,
// and reaches no camera, no video and no footage — not even of its own
// incident.
func TestIntegrationSeesNoCameras(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	body := fmt.Sprintf(`{"code":"JS-INT-1","name":"路口","location":{"type":"Point","coordinates":[%v,%v]},"heading":0,"fov":360,"range":200,"main_url":"rtsp://127.0.0.1:1/a"}`, lon, lat)
	r := e.do("POST", "/api/v1/cameras", []byte(body))
	if r.status != 201 {
		t.Fatalf("create camera: %d %s", r.status, r.body)
	}
	camID := int64(r.json(t)["id"].(float64))
	e.token = e.tokenFor(auth.RoleIntegration)
	r = e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "int-1"))
	if r.status != 201 {
		t.Fatalf("integration posts an incident: %d %s", r.status, r.body)
	}
	incID := int64(r.json(t)["id"].(float64))
	if r := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", incID), nil); r.status != 200 {
		t.Errorf("integration reads its incident: %d %s, want 200", r.status, r.body)
	}
	for _, tc := range []struct{ name, path string }{
		{"camera list", "/api/v1/cameras"},
		{"camera", fmt.Sprintf("/api/v1/cameras/%d", camID)},
		{"live MSE", fmt.Sprintf("/api/v1/cameras/%d/live", camID)},
		{"live HLS", fmt.Sprintf("/api/v1/cameras/%d/hls/index.m3u8", camID)},
		{"camera tiles", "/tiles/cameras.json"},
		{"OGC cameras", "/ogc/collections/cameras/items"},
		{"its incident's footage", fmt.Sprintf("/api/v1/incidents/%d/footage", incID)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", tc.path, nil)
			if r.status != 403 || errCode(r) != "forbidden" {
				t.Errorf("integration GET %s: %d %s, want 403 forbidden", tc.path, r.status, r.body)
			}
		})
	}
}

// TestCameraCredentialsNeverShow plants a unique secret in each form a
// camera URL carries one (userinfo, query keys in any case, pairs in the
// path), registers and edits the cameras, and scans every answer that
// shows cameras — the API, lists, a grid's cameras, OGC API Features, the
// vector tiles, the audit log — and the server's log: the secrets appear
// nowhere.
func TestCameraCredentialsNeverShow(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, _ := e.gridPoint()
	forms := []struct{ name, url, shown string }{
		{"userinfo", "rtsp://admin:%s@192.168.1.64:554/Streaming/Channels/101", "rtsp://192.168.1.64:554/Streaming/Channels/101"},
		{"Password query", "rtsp://192.168.1.65/live?channel=1&Password=%s", "rtsp://192.168.1.65/live?channel=1"},
		{"passwd query", "rtsp://192.168.1.66/live?passwd=%s&subtype=0", "rtsp://192.168.1.66/live?subtype=0"},
		{"auth query", "rtsp://192.168.1.67/live?AUTH=%s", "rtsp://192.168.1.67/live"},
		{"token query", "rtsp://192.168.1.68/live?access_token=%s", "rtsp://192.168.1.68/live"},
		{"path pairs", "rtsp://192.168.1.69/user=admin&password=%s&channel=1&stream=0.sdp", "rtsp://192.168.1.69/channel=1&stream=0.sdp"},
		{"path pairs, Xiongmai", "rtsp://192.168.1.70:554/user=admin_password=%s_channel=1_stream=0.sdp?real_stream", "rtsp://192.168.1.70:554/channel=1_stream=0.sdp?real_stream"},
	}
	e.token = e.tokenFor(auth.RoleOperator)
	var secrets []string
	var answers []response
	for i, f := range forms {
		secret := fmt.Sprintf("Pw%dZq8xK", i)
		secrets = append(secrets, secret)
		body := fmt.Sprintf(`{"code":"CRED-%d","name":"摄像机","location":{"type":"Point","coordinates":[%v,%v]},"heading":0,"fov":90,"range":100,
			"main_url":%q,"sub_url":%q}`, i, lon, lat, fmt.Sprintf(f.url, secret), fmt.Sprintf(f.url, secret+"sub"))
		r := e.do("POST", "/api/v1/cameras", []byte(body))
		if r.status != 201 {
			t.Fatalf("%s: create: %d %s", f.name, r.status, r.body)
		}
		cam := r.json(t)
		if cam["main_url"] != f.shown || cam["sub_url"] != f.shown || cam["has_credentials"] != true {
			t.Errorf("%s: shown %v, %v, has_credentials %v; want %s and true", f.name, cam["main_url"], cam["sub_url"], cam["has_credentials"], f.shown)
		}
		id := int64(cam["id"].(float64))
		// An edit without the URL, and one sending back the URL shown,
		// keep the credentials.
		for _, patch := range []string{`{"name":"改名"}`, fmt.Sprintf(`{"main_url":%q}`, f.shown)} {
			r := e.do("PATCH", fmt.Sprintf("/api/v1/cameras/%d", id), []byte(patch))
			if r.status != 200 || r.json(t)["has_credentials"] != true {
				t.Errorf("%s: patch %s: %d %s, want the credentials kept", f.name, patch, r.status, r.body)
			}
			answers = append(answers, r)
		}
		answers = append(answers, r, e.do("GET", fmt.Sprintf("/api/v1/cameras/%d", id), nil),
			e.do("GET", fmt.Sprintf("/ogc/collections/cameras/items/%d", id), nil))
	}
	answers = append(answers,
		e.do("GET", "/api/v1/cameras", nil),
		e.do("GET", fmt.Sprintf("/api/v1/grids/%d/cameras", gridID), nil),
		e.do("GET", "/ogc/collections/cameras/items?limit=1000", nil))
	for z := 10; z <= 16; z += 3 {
		n := float64(int(1) << z)
		x := int((lon + 180) / 360 * n)
		y := int((1 - math.Log(math.Tan(lat*math.Pi/180)+1/math.Cos(lat*math.Pi/180))/math.Pi) / 2 * n)
		r := e.do("GET", fmt.Sprintf("/tiles/cameras/%d/%d/%d.mvt", z, x, y), nil)
		if r.status != 200 {
			t.Errorf("camera tile z%d: %d, want 200 with the cameras", z, r.status)
		}
		answers = append(answers, r)
	}
	e.token = adminToken
	audit := e.do("GET", "/api/v1/audit?target_type=camera", nil)
	if audit.status != 200 || !strings.Contains(string(audit.body), "camera.update") {
		t.Errorf("audit: %d %s, want the camera changes", audit.status, audit.body)
	}
	answers = append(answers, audit)
	for _, secret := range secrets {
		for _, r := range answers {
			if strings.Contains(string(r.body), secret) || strings.Contains(fmt.Sprint(r.header), secret) {
				t.Errorf("secret %s shows in an answer: %d %s", secret, r.status, r.body)
			}
		}
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("secret %s is in the server's log", secret)
		}
	}
}
