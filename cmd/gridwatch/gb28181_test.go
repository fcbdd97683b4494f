package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gridwatch/internal/testtool"
)

// gbDevice is a device as GET /api/v1/gb28181/devices shows it.
type gbDevice struct {
	ID       string `json:"id"`
	Online   bool   `json:"online"`
	Channels int    `json:"channels"`
	Cameras  int    `json:"cameras"`
	Unplaced int    `json:"unplaced"`
}

// waitDemoNVR waits until the demo NVR is online with its catalog read,
// polling as a client would (the catalog is read after registering).
func waitDemoNVR(t *testing.T, url string) gbDevice {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var list struct{ Devices []gbDevice }
		getJSON(t, url+"/api/v1/gb28181/devices", &list)
		for _, d := range list.Devices {
			if d.ID == demoNVRID && d.Online && d.Cameras == demoNVRChannels && d.Unplaced == 1 {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo NVR did not come up with its catalog: %+v", list.Devices)
		}
		<-time.After(100 * time.Millisecond) // polled as a client would
	}
}

// TestGB28181EndToEnd: in the demo, the simulated NVR registers with the
// platform; its channels are cameras in their grids, re-served over RTSP
// (ffprobe reads the H.264 and the G.711 of a channel), steered through
// the PTZ API, their device recordings listed and played through
// gridwatch; the channel without a position is placed through the API.
func TestGB28181EndToEnd(t *testing.T) {
	m := startMainWith(t, dataDir(t), true, func(m *Main) { m.DemoNVR = true })
	defer m.Close()
	url := m.URL()
	d := waitDemoNVR(t, url)
	if d.Channels != demoNVRChannels+1 {
		t.Errorf("demo NVR: %+v", d)
	}
	var detail struct {
		Channels []struct {
			ID       string `json:"id"`
			CameraID *int64 `json:"camera_id"`
			PTZType  int    `json:"ptz_type"`
			Unplaced bool   `json:"unplaced"`
		}
	}
	if st := getJSON(t, url+"/api/v1/gb28181/devices/"+demoNVRID, &detail); st != 200 {
		t.Fatalf("device: %d", st)
	}
	var dome, fixed int64
	var unplaced string
	for _, c := range detail.Channels {
		switch {
		case c.Unplaced:
			unplaced = c.ID
		case c.PTZType == 1:
			dome = *c.CameraID
		default:
			fixed = *c.CameraID
		}
	}
	if dome == 0 || fixed == 0 || unplaced == "" {
		t.Fatalf("channels: %+v", detail.Channels)
	}
	var cam struct {
		Code    string `json:"code"`
		MainURL string `json:"main_url"`
		Grid    *struct{ Code string }
	}
	getJSON(t, fmt.Sprintf("%s/api/v1/cameras/%d", url, fixed), &cam)
	if cam.Grid == nil || !strings.HasPrefix(cam.MainURL, "gb28181://"+demoNVRID+"/") {
		t.Errorf("camera of a channel: %+v", cam)
	}

	// ffprobe, an independent client, through the RTSP re-serve.
	p := testtool.FFprobe(t, "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name,width,height",
		fmt.Sprintf("rtsp://%s/cameras/%d?token=%s", m.RTSPAddr(), fixed, testAdminToken))
	codecs := map[string]bool{}
	for _, s := range p.Streams {
		codecs[s.CodecName] = true
	}
	if !codecs["h264"] || !codecs["pcm_alaw"] {
		t.Errorf("ffprobe of a GB channel: %s", p.Out)
	}

	// PTZ: the dome moves; the fixed camera has no head.
	if st, b := send(t, http.DefaultClient, "POST", fmt.Sprintf("%s/api/v1/cameras/%d/ptz", url, dome), []byte(`{"op":"move","pan":0.5}`)); st != 200 {
		t.Errorf("PTZ move of the dome: %d %s", st, b)
	}
	if st, b := send(t, http.DefaultClient, "POST", fmt.Sprintf("%s/api/v1/cameras/%d/ptz", url, dome), []byte(`{"op":"goto","preset":"x"}`)); st != 400 {
		t.Errorf("PTZ goto a preset that is no number: %d %s", st, b)
	}
	if st, b := send(t, http.DefaultClient, "POST", fmt.Sprintf("%s/api/v1/cameras/%d/ptz", url, fixed), []byte(`{"op":"stop"}`)); st != 409 {
		t.Errorf("PTZ of a fixed camera: %d %s", st, b)
	}

	// The device's own recordings, and one played through gridwatch.
	to := time.Now().Truncate(time.Second)
	from := to.Add(-time.Hour)
	q := fmt.Sprintf("from=%s&to=%s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	var recs struct{ Recordings []json.RawMessage }
	if st := getJSON(t, fmt.Sprintf("%s/api/v1/cameras/%d/device-recordings?%s", url, fixed, q), &recs); st != 200 {
		t.Errorf("device recordings: %d", st)
	}
	var pb struct {
		ID     string `json:"id"`
		Camera int64  `json:"camera_id"`
	}
	body := fmt.Sprintf(`{"from":%q,"to":%q}`, from.Format(time.RFC3339), from.Add(10*time.Minute).Format(time.RFC3339))
	if st := doJSON(t, http.DefaultClient, "POST", fmt.Sprintf("%s/api/v1/cameras/%d/device-playback", url, fixed), []byte(body), &pb); st != 201 || pb.ID == "" {
		t.Fatalf("device playback: %d %+v", st, pb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws%s/api/v1/device-playbacks/%s/live?token=%s", strings.TrimPrefix(url, "http"), pb.ID, testAdminToken), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(16 << 20)
	binaries := 0
	for binaries < 5 {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("device playback over MSE: %d messages, then %v", binaries, err)
		}
		if typ == websocket.MessageBinary && len(b) > 0 {
			binaries++
		}
	}
	if st, b := send(t, http.DefaultClient, "POST", url+"/api/v1/device-playbacks/"+pb.ID+"/control", []byte(`{"op":"pause"}`)); st != 200 {
		t.Errorf("pause: %d %s", st, b)
	}
	if st, b := send(t, http.DefaultClient, "POST", url+"/api/v1/device-playbacks/"+pb.ID+"/control", []byte(`{"op":"speed","scale":99}`)); st != 400 {
		t.Errorf("speed 99: %d %s", st, b)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	if st, _ := send(t, http.DefaultClient, "DELETE", url+"/api/v1/device-playbacks/"+pb.ID, nil); st != 204 {
		t.Errorf("stop playback: %d", st)
	}
	if st, _ := send(t, http.DefaultClient, "GET", url+"/api/v1/device-playbacks/"+pb.ID, nil); st != 404 {
		t.Errorf("a stopped playback: %d", st)
	}

	// What the device holds of a range gridwatch did not record is
	// fetched into gridwatch's footage, then exported like any footage.
	fFrom, fTo := from.Add(5*time.Minute), from.Add(5*time.Minute+8*time.Second)
	body = fmt.Sprintf(`{"from":%q,"to":%q}`, fFrom.Format(time.RFC3339), fTo.Format(time.RFC3339))
	var fetch struct {
		Running bool   `json:"running"`
		Error   string `json:"error"`
		Ranges  [][2]time.Time
	}
	if st := doJSON(t, http.DefaultClient, "POST", fmt.Sprintf("%s/api/v1/cameras/%d/device-fetch", url, fixed), []byte(body), &fetch); st != 202 || len(fetch.Ranges) != 1 {
		t.Fatalf("fetch: %d %+v", st, fetch)
	}
	for deadline := time.Now().Add(90 * time.Second); fetch.Running; {
		if time.Now().After(deadline) {
			t.Fatalf("fetch still running: %+v", fetch)
		}
		<-time.After(100 * time.Millisecond) // polled as the dashboard does
		getJSON(t, fmt.Sprintf("%s/api/v1/cameras/%d/device-fetch", url, fixed), &fetch)
	}
	if fetch.Error != "" {
		t.Fatalf("fetch failed: %s", fetch.Error)
	}
	exp, _ := json.Marshal(map[string]any{"camera_id": fixed, "from": fFrom, "to": fTo})
	var e struct {
		ID     int64   `json:"id"`
		Status string  `json:"status"`
		Error  *string `json:"error"`
	}
	if st := doJSON(t, http.DefaultClient, "POST", url+"/api/v1/exports", exp, &e); st != 202 && st != 201 && st != 200 {
		t.Fatalf("export of fetched footage: %d %+v", st, e)
	}
	for deadline := time.Now().Add(60 * time.Second); e.Status != "done"; {
		if e.Status == "failed" || time.Now().After(deadline) {
			why := "no error given"
			if e.Error != nil {
				why = *e.Error
			}
			t.Fatalf("export %d of fetched footage: %s (%s)", e.ID, e.Status, why)
		}
		<-time.After(100 * time.Millisecond) // polled as the dashboard does
		getJSON(t, fmt.Sprintf("%s/api/v1/exports/%d", url, e.ID), &e)
	}
	st, clip := send(t, http.DefaultClient, "GET", fmt.Sprintf("%s/api/v1/exports/%d/file", url, e.ID), nil)
	path := filepath.Join(t.TempDir(), "device.mp4")
	if err := os.WriteFile(path, clip, 0o600); err != nil || st != 200 {
		t.Fatalf("export file: %d %v", st, err)
	}
	probe := testtool.FFprobe(t, "-show_entries", "format=duration:stream=codec_name", path)
	if len(probe.Streams) == 0 || probe.Streams[0].CodecName != "h264" || probe.Seconds() < 6 {
		t.Errorf("export of fetched footage: %s", probe.Out)
	}

	// The channel without a position is placed: a camera.
	var placed struct {
		ID   int64 `json:"id"`
		Grid *struct{ Code string }
	}
	var c1 struct {
		Location struct{ Coordinates [2]float64 }
	}
	getJSON(t, fmt.Sprintf("%s/api/v1/cameras/%d", url, fixed), &c1)
	loc := fmt.Sprintf(`{"location":{"type":"Point","coordinates":[%v,%v]}}`, c1.Location.Coordinates[0]+0.0002, c1.Location.Coordinates[1])
	if st := doJSON(t, http.DefaultClient, "POST", url+"/api/v1/gb28181/channels/"+unplaced+"/place", []byte(loc), &placed); st != 201 || placed.Grid == nil {
		t.Errorf("place: %d %+v", st, placed)
	}
	if st, b := send(t, http.DefaultClient, "POST", url+"/api/v1/gb28181/channels/"+unplaced+"/place", []byte(loc)); st != 409 {
		t.Errorf("placed twice: %d %s", st, b)
	}
	if st, b := send(t, http.DefaultClient, "POST", url+"/api/v1/gb28181/channels/123/place", []byte(loc)); st != 400 || !strings.Contains(string(b), "20-digit") {
		t.Errorf("a bad channel ID: %d %s", st, b)
	}
	// A device's own password is kept, never shown.
	if st, b := send(t, http.DefaultClient, "PUT", url+"/api/v1/gb28181/devices/32010600001180000009", []byte(`{"password":"s3cret-pw"}`)); st != 200 || strings.Contains(string(b), "s3cret") || !strings.Contains(string(b), `"has_password":true`) {
		t.Errorf("provision: %d %s", st, b)
	}
}
