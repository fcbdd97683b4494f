package api_test

import (
	"fmt"
	"strings"
	"testing"

	"gridwatch/auth"
)

func TestCamerasOverHTTP(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, code := e.gridPoint()
	operator, commander := e.tokenFor(auth.RoleOperator), e.tokenFor(auth.RoleCommander)
	e.token = operator
	body := fmt.Sprintf(`{"code":"JS-0001","name":"经八路口东","location":{"type":"Point","coordinates":[%v,%v]},"heading":90,"fov":70,"range":120,
		"main_url":"rtsp://admin:Hik12345@192.168.1.64:554/Streaming/Channels/101","sub_url":"rtsp://admin:Hik12345@192.168.1.64:554/Streaming/Channels/102","record":true}`, lon, lat)
	r := e.do("POST", "/api/v1/cameras", []byte(body))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	cam := r.json(t)
	if strings.Contains(string(r.body), "Hik12345") || cam["main_url"] != "rtsp://192.168.1.64:554/Streaming/Channels/101" || cam["has_credentials"] != true {
		t.Errorf("response shows credentials or lost the URL: %s", r.body)
	}
	if cam["grid"].(map[string]any)["code"] != code || cam["status"] != "offline" || cam["view_cone"].(map[string]any)["type"] != "Polygon" {
		t.Errorf("camera %s", r.body)
	}
	id := int64(cam["id"].(float64))
	if l := e.do("GET", fmt.Sprintf("/api/v1/grids/%d/cameras", gridID), nil).json(t)["cameras"].([]any); len(l) != 1 {
		t.Errorf("grid cameras: %d", len(l))
	}
	r = e.do("PATCH", fmt.Sprintf("/api/v1/cameras/%d", id), []byte(`{"heading":180,"version":1}`))
	if r.status != 200 || r.json(t)["heading"].(float64) != 180 {
		t.Errorf("patch: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/cameras", []byte(strings.Replace(body, `"heading":90`, `"heading":-5`, 1))); r.status != 400 || r.errorOf(t)["details"].(map[string]any)["field"] != "heading" {
		t.Errorf("bad heading: %d %s", r.status, r.body)
	}
	// A commander sees cameras but may not register them.
	e.token = commander
	if r := e.do("GET", fmt.Sprintf("/api/v1/cameras/%d", id), nil); r.status != 200 {
		t.Errorf("commander get: %d", r.status)
	}
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/cameras/%d", id), nil); r.status != 403 {
		t.Errorf("commander delete: %d", r.status)
	}
	// Credentials never reach the log, nor the audit trail.
	e.token = adminToken
	audit := e.do("GET", "/api/v1/audit?action=camera.", nil)
	for _, where := range []string{e.logs.String(), string(audit.body)} {
		if strings.Contains(where, "Hik12345") {
			t.Error("a camera password reached the log or the audit trail")
		}
	}
	if !strings.Contains(string(audit.body), "camera.create") {
		t.Errorf("no audit entry for the camera: %s", audit.body)
	}
}
