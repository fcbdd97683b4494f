package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"gridwatch/camera"
	"gridwatch/internal/events"
)

// TestDemoVideoEndToEnd runs the demo as `make run` does, simulated cameras
// and all, and reads its video the ways its users do: the demo cameras come
// online (an event), a browser's WebSocket gets fMP4, ffprobe reads the
// RTSP re-serve, and /metrics shows the streams.
func TestDemoVideoEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m := startMain(t, dataDir(t), true)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The demo cameras record, so they are pulled from the start: each
	// goes online and says so on the event stream.
	sub, err := m.events.Subscribe(ctx, func(ev events.Event) bool { return ev.Type == camera.EventOnline }, 1)
	if err != nil {
		t.Fatal(err)
	}
	online := map[string]bool{}
	for len(online) < demoCameras {
		select {
		case ev := <-sub.Events():
			var d struct{ Code string }
			_ = json.Unmarshal(ev.Data, &d)
			online[d.Code] = true
		case <-ctx.Done():
			t.Fatalf("cameras online: %v, want all %d demo cameras", online, demoCameras)
		}
	}
	sub.Close()

	var cams struct {
		Cameras []struct {
			ID     int64
			Code   string
			Status string
			Reason string `json:"status_reason"`
		}
	}
	getJSON(t, m.URL()+"/api/v1/cameras", &cams)
	for _, c := range cams.Cameras {
		if c.Status != "online" {
			t.Errorf("camera %s is %s (%s) after its online event", c.Code, c.Status, c.Reason)
		}
	}
	id := cams.Cameras[0].ID

	// A browser's view: the WebSocket MSE stream.
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws%s/api/v1/cameras/%d/live?stream=sub&token=%s", strings.TrimPrefix(m.URL(), "http"), id, testAdminToken), nil)
	if err != nil {
		t.Fatalf("live: %v", err)
	}
	ws.SetReadLimit(16 << 20)
	binary := 0
	for binary < 3 {
		typ, _, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("live: %v", err)
		}
		if typ == websocket.MessageBinary {
			binary++
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// Another video system's view: the RTSP re-serve, read by ffprobe.
	if _, err := exec.LookPath("ffprobe"); err != nil {
		skipOrFail(t, "ffprobe not installed (`make test` installs it)")
	}
	url := fmt.Sprintf("rtsp://%s/cameras/%d?token=%s", m.RTSPAddr(), id, testAdminToken)
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "h264,640,360" {
		t.Errorf("ffprobe of the RTSP re-serve: %v: %q, want h264,640,360", err, out)
	}
	out, _ = exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", fmt.Sprintf("rtsp://%s/cameras/%d", m.RTSPAddr(), id)).CombinedOutput()
	if !strings.Contains(string(out), "401") {
		t.Errorf("RTSP without a token: %q, want 401", out)
	}

	// Operations: the streams in /metrics.
	req, _ := http.NewRequestWithContext(ctx, "GET", m.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf(`gridwatch_camera_up{camera="%d",stream="main"} 1`, id); !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
