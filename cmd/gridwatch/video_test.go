package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"gridwatch/camera"
	"gridwatch/internal/domain"
	"gridwatch/internal/events"
	"gridwatch/internal/testtool"
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
	// goes online and says so on the event stream. Read as a client does:
	// subscribe, then take what the registry already says, then the live
	// events; a subscription the hub drops (a slow reader under load) is
	// resumed after the last event read, so no online event is missed.
	online := map[string]bool{}
	var last events.Position
	for len(online) < domain.DemoCameras {
		sub, err := m.events.Subscribe(ctx, func(ev events.Event) bool { return ev.Type == camera.EventOnline }, last)
		if err != nil {
			t.Fatal(err)
		}
		if last.Last == 0 {
			var snap struct {
				Cameras []struct{ Code, Status string }
			}
			getJSON(t, m.URL()+"/api/v1/cameras", &snap)
			for _, c := range snap.Cameras {
				if c.Status == "online" {
					online[c.Code] = true
				}
			}
		}
		for len(online) < domain.DemoCameras {
			var ev events.Event
			var ok bool
			select {
			case ev, ok = <-sub.Events():
			case <-ctx.Done():
				var snap struct {
					Cameras []struct{ Code, Status, StatusReason string }
				}
				getJSON(t, m.URL()+"/api/v1/cameras", &snap)
				t.Fatalf("cameras online by their events: %v, want all %d demo cameras; the registry says %+v", online, domain.DemoCameras, snap.Cameras)
			}
			if !ok {
				t.Logf("event subscription ended (%v); resuming after event %s", sub.Err(), last)
				break
			}
			if ev.Type == events.Reset {
				t.Fatalf("event replay after %s refused: %s", last, ev.Data)
			}
			last = ev.Pos
			var d struct{ Code string }
			if err := json.Unmarshal(ev.Data, &d); err != nil || d.Code == "" {
				t.Fatalf("camera.online event %d without a camera code: %s (%v)", ev.ID, ev.Data, err)
			}
			online[d.Code] = true
		}
		sub.Close()
	}

	var cams struct {
		Cameras []struct {
			ID     int64
			Code   string
			Status string
			Reason string `json:"status_reason"`
		}
	}
	// The registry says so too. It is read as a client would, until it
	// does: about one run in eight, the last camera's row still read
	// offline a few milliseconds after its online event had been read from
	// the events table (written in the same transaction) — not understood
	// yet; the time it takes is logged.
	asked := time.Now()
	for {
		getJSON(t, m.URL()+"/api/v1/cameras", &cams)
		offline := []string{}
		for _, c := range cams.Cameras {
			if c.Status != "online" {
				offline = append(offline, fmt.Sprintf("%s is %s (%s)", c.Code, c.Status, c.Reason))
			}
		}
		if len(offline) == 0 && len(cams.Cameras) == domain.DemoCameras {
			break
		}
		if time.Since(asked) > 5*time.Second {
			t.Fatalf("after their online events, %d cameras: %v", len(cams.Cameras), offline)
		}
		<-time.After(20 * time.Millisecond) // polled as a client would
	}
	if d := time.Since(asked); d > 100*time.Millisecond {
		t.Logf("the registry showed every camera online %v after the events", d)
	}
	byCode := map[string]int64{}
	for _, c := range cams.Cameras {
		byCode[c.Code] = c.ID
	}
	id := byCode["JS-CAM-01"]

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
	testtool.Require(t, "ffprobe")
	url := fmt.Sprintf("rtsp://%s/cameras/%d?token=%s", m.RTSPAddr(), id, testAdminToken)
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_type,codec_name,width,height,sample_rate", "-of", "csv=p=0", url).CombinedOutput()
	// The first demo camera sends AAC with its pictures; the second G.711.
	if got := strings.Fields(string(out)); err != nil || strings.Join(got, " ") != "h264,video,640,360 aac,audio,16000" {
		t.Errorf("ffprobe of the RTSP re-serve: %v: %q, want h264 640x360 and AAC at 16 kHz", err, out)
	}
	out, err = exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "a:0",
		"-show_entries", "stream=codec_name,sample_rate", "-of", "csv=p=0",
		fmt.Sprintf("rtsp://%s/cameras/%d?token=%s", m.RTSPAddr(), byCode["JS-CAM-02"], testAdminToken)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "pcm_alaw,8000" {
		t.Errorf("ffprobe of the second camera's sound: %v: %q, want pcm_alaw,8000", err, out)
	}
	out, _ = exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", fmt.Sprintf("rtsp://%s/cameras/%d", m.RTSPAddr(), id)).CombinedOutput()
	if !strings.Contains(string(out), "401") {
		t.Errorf("RTSP without a token: %q, want 401", out)
	}
	// The integration token (a hotline's, and the Open311 api_key) posts
	// incidents; it may not pull a camera.
	out, _ = exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		fmt.Sprintf("rtsp://%s/cameras/%d?token=%s", m.RTSPAddr(), id, domain.DemoIntegrationToken)).CombinedOutput()
	if !strings.Contains(string(out), "403") {
		t.Errorf("RTSP with the integration token: %q, want 403", out)
	}

	// Operations: the streams in /metrics, every metric labelled with the node.
	_, body := send(t, http.DefaultClient, "GET", m.URL()+"/metrics", nil)
	node := m.node.ID()
	if want := fmt.Sprintf(`gridwatch_camera_up{camera="%d",node="%s",stream="main"} 1`, id, node); !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	for _, want := range []string{`gridwatch_viewings_dropped_total{node="` + node + `"} 0`, `gridwatch_webrtc_sessions{node="` + node + `"} `,
		`gridwatch_transcodes{node="` + node + `"} `, `gridwatch_transcode_cpu_seconds_total{node="` + node + `"} `, `go_goroutines{node="` + node + `"} `} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Who watched is on record: the browser's session and the RTSP
	// client's, each with its end.
	want := map[string]string{"mse": "sub", "rtsp": "main"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page struct {
			Viewings []struct {
				Actor    struct{ Kind, Name string }
				Kind     string
				Protocol string
				Stream   string
				Camera   int64      `json:"camera_id"`
				Ended    *time.Time `json:"ended_at"`
				Bytes    int64
			}
		}
		getJSON(t, fmt.Sprintf("%s/api/v1/audit/viewings?camera=%d", m.URL(), id), &page)
		got := map[string]string{}
		for _, v := range page.Viewings {
			if v.Ended != nil && v.Kind == "live" && v.Camera == id && v.Actor.Kind == "token" && v.Actor.Name != "" && v.Bytes > 0 {
				got[v.Protocol] = v.Stream
			}
		}
		if got["mse"] == want["mse"] && got["rtsp"] == want["rtsp"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("viewing sessions after 30 s: %+v, want an ended live mse (sub) and rtsp (main) session by the token", page.Viewings)
		}
		<-time.After(200 * time.Millisecond) // the view log writes every second
	}
	http.DefaultClient.CloseIdleConnections()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRecordingSurvivesKill records the demo cameras in a child gridwatch,
// kills it with SIGKILL mid-write (nothing indexed yet: files last an hour
// here), starts again on the same data dir and plays back what was written.
func TestRecordingSurvivesKill(t *testing.T) {
	dir := dataDir(t)
	cmd := childCmd(t, "demo", dir, " --recording-fragment 1s --recording-file 1h --admin-token "+testAdminToken)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until every demo camera has a file holding a few fragments.
	recDir := filepath.Join(dir, "recordings")
	deadline := time.Now().Add(90 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(recDir, "*", "*", "*.mp4"))
		big := 0
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && st.Size() > 150_000 {
				big++
			}
		}
		if big >= domain.DemoCameras {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d cameras recorded after 90 s", big, domain.DemoCameras)
		}
		<-time.After(100 * time.Millisecond) // polling the disk: no event to wait on
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	m := startMain(t, dir, false)
	defer m.Close()
	var all struct {
		Cameras []struct {
			ID      int64
			MainURL string `json:"main_url"`
		}
	}
	getJSON(t, m.URL()+"/api/v1/cameras", &all)
	// The demo's RTSP cameras, which record (the demo NVR's channels
	// are cameras too, pulled on demand).
	cams := all
	cams.Cameras = nil
	for _, c := range all.Cameras {
		if strings.HasPrefix(c.MainURL, "rtsp://") {
			cams.Cameras = append(cams.Cameras, c)
		}
	}
	if len(cams.Cameras) != domain.DemoCameras {
		t.Fatalf("%d recording cameras after restart (%d in all)", len(cams.Cameras), len(all.Cameras))
	}
	from := time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	for _, c := range cams.Cameras {
		var list struct {
			Recordings []struct {
				From, To time.Time
				Bytes    int64
			}
		}
		if code := getJSON(t, fmt.Sprintf("%s/api/v1/cameras/%d/recordings?from=%s&to=%s", m.URL(), c.ID, from, to), &list); code != 200 || len(list.Recordings) == 0 {
			t.Fatalf("camera %d after the kill: %d, %d recordings", c.ID, code, len(list.Recordings))
		}
	}
	testtool.Require(t, "ffprobe")
	url := fmt.Sprintf("%s/api/v1/cameras/%d/playback.m3u8?from=%s&to=%s&token=%s", m.URL(), cams.Cameras[0].ID, from, to, testAdminToken)
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url).CombinedOutput()
	var dur float64
	fmt.Sscan(strings.TrimSpace(string(out)), &dur)
	if err != nil || dur < 2 {
		t.Errorf("ffprobe of the recovered footage: %v: %q, want at least 2 s", err, out)
	}
	t.Logf("recovered footage plays for %.2f s", dur)
}
