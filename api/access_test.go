package api_test

import (
	"fmt"
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
