package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/coder/websocket"

	"gridwatch"
	"gridwatch/api"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/camera/camsim"
	"gridwatch/camera/live"
	"gridwatch/camera/pull"
	"gridwatch/camera/record"
	"gridwatch/camera/video"
	"gridwatch/camera/whep"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/events"
	"gridwatch/internal/testtool"
)

// videoEnv is a server over the demo city with simulated cameras, the video
// manager and the event stream running.
type videoEnv struct {
	*authEnv
	sim     *camsim.Sim
	video   *live.Manager
	exports *record.Exporter
	rec     *record.Recorder
	// viewings is the view log the server records viewing sessions in;
	// stopViewings stops it (ending the open HTTP sessions and writing
	// everything queued) and waits, once.
	viewings     *audit.ViewLog
	stopViewings func()
	// free is the recordings' free space the recorder sees (0: plenty).
	free atomic.Uint64
	// exportFree is the free space the exporter sees (0: plenty).
	exportFree atomic.Uint64
	// exportLimits are the exporter's limits; with manualExports its
	// worker does not run and a test makes exports with Drain.
	exportLimits  record.ExportLimits
	manualExports bool
	// viewOpt tunes the view log (withViewLog).
	viewOpt *audit.ViewLogOptions
}

// videoOpt changes a videoEnv before its server starts.
type videoOpt func(*videoEnv)

// withViewLog tunes the view log (by default rows are written every 50 ms;
// HTTP sessions end with the default gap, or when stopViewings is called).
func withViewLog(o audit.ViewLogOptions) videoOpt {
	return func(ve *videoEnv) { ve.viewOpt = &o }
}

func newVideoEnv(t *testing.T, opts ...videoOpt) *videoEnv {
	t.Helper()
	sim, err := camsim.New(camsim.Config{N: 2, Addr: "127.0.0.1:0", Username: "cam", Password: "cam-Secret-77"})
	if err != nil {
		t.Fatal(err)
	}
	var hub *events.Hub
	ve := &videoEnv{authEnv: &authEnv{}, sim: sim}
	for _, o := range opts {
		o(ve)
	}
	vopt := audit.ViewLogOptions{FlushEvery: 50 * time.Millisecond}
	if ve.viewOpt != nil {
		vopt = *ve.viewOpt
	}
	e := newEnv(t, func(d *api.Deps) {
		var loc *geo.Locator
		loc, hub = ve.wireWithHub(t, d)
		footage := record.NewStore(ve.pool)
		d.Incidents = incident.NewService(ve.pool, incident.Options{Locator: loc, OnCreated: func(ctx context.Context, ids []int64) {
			if _, err := footage.LinkIncidents(ctx, ids, record.DefaultLinkWindow()); err != nil {
				t.Errorf("link footage: %v", err)
			}
		}})
		cams := camera.NewStore(ve.pool)
		d.Cameras = cams
		recDir := t.TempDir()
		rec := record.NewRecorder(record.Config{Dir: recDir, FragmentDuration: time.Second, FileDuration: 2 * time.Second,
			FreeSpace: func(string) (uint64, error) {
				if f := ve.free.Load(); f != 0 {
					return f, nil
				}
				return 1 << 40, nil
			}}, footage)
		ve.rec = rec
		ve.video = video.NewManager(cams, live.Config{Idle: time.Minute, Record: rec.Record, FFmpeg: testtool.Require(t, "ffmpeg"),
			Pull: pull.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}},
			func(_ live.Key, err error) { t.Errorf("set status: %v", err) })
		cams.AfterChange(func(ctx context.Context) { _ = ve.video.Refresh(ctx) })
		d.Video = ve.video
		w, err := whep.New(whep.Config{Acquire: ve.video.Acquire})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		d.WHEP = w
		d.Recordings, d.RecordingsDir, d.Recorder = footage, recDir, rec
		limits := ve.exportLimits
		limits.FreeSpace = func(string) (uint64, error) {
			if f := ve.exportFree.Load(); f != 0 {
				return f, nil
			}
			return 1 << 40, nil
		}
		ve.exports = record.NewExporter(footage, rec, t.TempDir()).WithLimits(limits)
		d.Exports = ve.exports
		ve.viewings = audit.NewViewLog(ve.pool, vopt)
		d.Viewings = ve.viewings
	})
	ve.env = e
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(4)
	vctx, vcancel := context.WithCancel(ctx)
	vdone := make(chan struct{})
	go func() { defer close(vdone); _ = ve.viewings.Run(vctx) }()
	ve.stopViewings = func() { vcancel(); <-vdone }
	go func() {
		defer wg.Done()
		if !ve.manualExports {
			ve.exports.Run(ctx)
		}
	}()
	go func() { defer wg.Done(); _ = hub.Run(ctx) }()
	go func() { defer wg.Done(); _ = sim.Run(ctx) }()
	go func() { defer wg.Done(); _ = ve.video.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); ve.stopViewings() })
	awaitHub(t, hub)
	ve.importDemo()
	return ve
}

// addCamera registers camera n of the simulator at the middle of a grid
// and returns its id and grid code.
func (ve *videoEnv) addCamera(n int, code string) (int64, string) {
	return ve.addCameraRecording(n, code, false)
}

func (ve *videoEnv) addCameraRecording(n int, code string, rec bool) (int64, string) {
	ve.t.Helper()
	lon, lat, _, gridCode := ve.gridPoint()
	body, _ := json.Marshal(map[string]any{"code": code, "name": "测试 " + code,
		"location": map[string]any{"type": "Point", "coordinates": []float64{lon, lat}},
		"main_url": ve.sim.URL(n, "main"), "sub_url": ve.sim.URL(n, "sub"), "record": rec})
	r := ve.do("POST", "/api/v1/cameras", body)
	if r.status != 201 {
		ve.t.Fatalf("create camera: %d %s", r.status, r.body)
	}
	return int64(r.json(ve.t)["id"].(float64)), gridCode
}

// waitRecordings waits (30 s at most) until camera id has n recordings
// indexed since since, as its recordings list shows them with the caller's
// token, and returns the range they cover: from the first one's start to the
// last one's end, and the list. Files are indexed as they close, every 2 s here.
func (ve *videoEnv) waitRecordings(id int64, since time.Time, n int) (recs []any, from, to time.Time) {
	t := ve.t
	t.Helper()
	rfc := func(tm time.Time) string { return url.QueryEscape(tm.UTC().Format(time.RFC3339Nano)) }
	for deadline := time.Now().Add(30 * time.Second); len(recs) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d recordings indexed after 30 s, want %d", len(recs), n)
		}
		<-time.After(200 * time.Millisecond)
		r := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d/recordings?from=%s&to=%s", id, rfc(since), rfc(time.Now().Add(time.Minute))), nil)
		if r.status != 200 {
			t.Fatalf("recordings: %d %s", r.status, r.body)
		}
		recs = r.json(t)["recordings"].([]any)
	}
	from, _ = time.Parse(time.RFC3339Nano, recs[0].(map[string]any)["from"].(string))
	to, _ = time.Parse(time.RFC3339Nano, recs[len(recs)-1].(map[string]any)["to"].(string))
	return recs, from, to
}

// wsURL is a ws:// URL of the test server.
func (ve *videoEnv) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(ve.srv.URL, "http") + path
}

// mseClient reads an MSE stream and checks it as a player would.
type mseClient struct {
	mime    string
	status  []string
	init    *fmp4.Init
	samples []sample
	first   time.Duration
}

type sample struct {
	dts  uint64
	sync bool
}

func readMSE(t *testing.T, ctx context.Context, url string, hdr http.Header, want int) (*mseClient, error) {
	t.Helper()
	start := time.Now()
	c, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		if res != nil {
			return nil, fmt.Errorf("dial: %d: %w", res.StatusCode, err)
		}
		return nil, err
	}
	defer c.CloseNow()
	c.SetReadLimit(16 << 20)
	mc := &mseClient{}
	for len(mc.samples) < want {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return mc, err
		}
		if typ == websocket.MessageText {
			var m live.MSEMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("text message %q: %v", b, err)
			}
			switch m.Type {
			case "codec":
				mc.mime = m.Mime
				mc.init = nil
			case "status":
				mc.status = append(mc.status, string(m.State.Status))
			}
			continue
		}
		if mc.init == nil {
			mc.init = &fmp4.Init{}
			if err := mc.init.Unmarshal(bytes.NewReader(b)); err != nil {
				t.Fatalf("init segment: %v", err)
			}
			continue
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(b); err != nil {
			t.Fatalf("fragment: %v", err)
		}
		if mc.first == 0 {
			mc.first = time.Since(start)
		}
		for _, p := range parts {
			for _, tr := range p.Tracks {
				dts := tr.BaseTime
				for _, s := range tr.Samples {
					mc.samples = append(mc.samples, sample{dts, !s.IsNonSyncSample})
					dts += uint64(s.Duration)
				}
			}
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	return mc, nil
}

func TestLiveVideoOverWebSocket(t *testing.T) {
	ve := newVideoEnv(t)
	id, gridCode := ve.addCamera(1, "CAM-WS-1")
	operator := ve.tokenFor(auth.RoleOperator)
	sse := ve.openStream(operator, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hdr := http.Header{"Authorization": {"Bearer " + operator}}

	mc, err := readMSE(t, ctx, ve.wsURL(fmt.Sprintf("/api/v1/cameras/%d/live?stream=main", id)), hdr, 50)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mc.mime, `video/mp4; codecs="avc1.`) {
		t.Errorf("mime %q", mc.mime)
	}
	if tr := mc.init.Tracks; len(tr) != 1 || tr[0].Codec.(*fmp4.CodecH264) == nil {
		t.Fatalf("init tracks %+v", tr)
	}
	if !mc.samples[0].sync {
		t.Error("the first sample is not a keyframe")
	}
	syncs := 0
	for i, s := range mc.samples {
		if i > 0 && s.dts <= mc.samples[i-1].dts {
			t.Fatalf("sample %d: decode time %d after %d", i, s.dts, mc.samples[i-1].dts)
		}
		if s.sync {
			syncs++
		}
	}
	if syncs < 1 || syncs > 3 {
		t.Errorf("%d sync samples in 50 pictures at one keyframe a second", syncs)
	}

	// The camera went online: the event reached the stream, the registry
	// has it, and the camera shows its live stream's state.
	for {
		ev := sse.nextEvent()
		if ev.event == camera.EventOnline {
			if d := eventData(t, ev); d["code"] != "CAM-WS-1" || d["status"] != "online" {
				t.Errorf("event data %v", d)
			}
			break
		}
	}
	cam := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d", id), nil).json(t)
	streams, _ := cam["streams"].(map[string]any)
	if cam["status"] != "online" || streams == nil || streams["main"].(map[string]any)["width"].(float64) != 640 {
		t.Errorf("camera after watching: %v", cam)
	}

	// A stream that is not main, sub or h264 (the transcode) is refused,
	// naming the parameter.
	if r := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d/hls/index.m3u8?stream=hevc", id), nil); r.status != 400 || !strings.Contains(string(r.body), "h264") {
		t.Errorf("stream=hevc: %d %s", r.status, r.body)
	}

	// A media player puts its token in the URL; it never reaches the log.
	mc, err = readMSE(t, ctx, ve.wsURL(fmt.Sprintf("/api/v1/cameras/%d/live?stream=sub&token=%s", id, operator)), nil, 5)
	if err != nil {
		t.Fatalf("token in the URL: %v", err)
	}
	if !mc.samples[0].sync {
		t.Error("sub stream: first sample not a keyframe")
	}
	t.Logf("late joiner on the sub stream: first picture after %v", mc.first)
	if strings.Contains(ve.logs.String(), operator) || strings.Contains(ve.logs.String(), "cam-Secret-77") {
		t.Error("a token or a camera password reached the log")
	}

	// Who may watch: a GIS editor may not; a grid leader outside the
	// camera's grid does not see it; a page on another site may not use
	// a browser's credentials.
	for _, tc := range []struct {
		name   string
		hdr    http.Header
		status int
	}{
		{"gis editor", http.Header{"Authorization": {"Bearer " + ve.tokenFor(auth.RoleGISEditor)}}, 403},
		{"leader elsewhere", http.Header{"Authorization": {"Bearer " + ve.tokenFor(auth.RoleGridLeader, otherCommunity(gridCode))}}, 404},
		{"leader of the grid", http.Header{"Authorization": {"Bearer " + ve.tokenFor(auth.RoleGridLeader, gridCode)}}, 0},
		{"anonymous", nil, 401},
		{"cross-site", http.Header{"Authorization": {"Bearer " + operator}, "Origin": {"https://evil.example"}}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMSE(t, ctx, ve.wsURL(fmt.Sprintf("/api/v1/cameras/%d/live", id)), tc.hdr, 1)
			if tc.status == 0 {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("dial: %d", tc.status)) {
				t.Errorf("got %v, want HTTP %d", err, tc.status)
			}
		})
	}

	// Disabling the camera ends its viewers.
	r := ve.do("PATCH", fmt.Sprintf("/api/v1/cameras/%d", id), []byte(`{"enabled":false}`))
	if r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if _, ok := ve.video.State(id, live.Main); ok {
		t.Error("a disabled camera's stream still runs")
	}
	if _, err := readMSE(t, ctx, ve.wsURL(fmt.Sprintf("/api/v1/cameras/%d/live", id)), hdr, 1); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("disabled camera: %v, want 409", err)
	}
}

// otherCommunity is a community code of the demo city other than the one
// gridCode belongs to.
func otherCommunity(gridCode string) string {
	for _, c := range []string{"410105001001", "410105002001"} {
		if !strings.HasPrefix(gridCode, c) {
			return c
		}
	}
	return ""
}

func TestCameraOfflineEvent(t *testing.T) {
	ve := newVideoEnv(t)
	id, _ := ve.addCamera(2, "CAM-DROP")
	sse := ve.openStream(adminToken, "")
	_, release, err := ve.video.Acquire(context.Background(), id, live.Main)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	want := func(typ string) map[string]any {
		t.Helper()
		for {
			if ev := sse.nextEvent(); ev.event == typ {
				return eventData(t, ev)
			}
		}
	}
	want(camera.EventOnline)
	ve.sim.SetFault(2, camsim.FaultDisconnect)
	d := want(camera.EventOffline)
	if d["reason"] == "" || strings.Contains(fmt.Sprint(d), "cam-Secret-77") {
		t.Errorf("offline event %v: want a reason, without the camera's password", d)
	}
	cam := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d", id), nil).json(t)
	if cam["status"] != "offline" || cam["status_reason"] == "" || cam["status_since"] == nil {
		t.Errorf("camera while offline: %v", cam)
	}
	ve.sim.SetFault(2, camsim.FaultNone)
	want(camera.EventOnline)
}

// TestRecordingDiskFull: a full recordings disk shows in the status and
// reaches every dashboard that may play footage, a grid leader's too (the
// disk is not any grid's), and its end does as well.
func TestRecordingDiskFull(t *testing.T) {
	ve := newVideoEnv(t)
	_, _, _, code := ve.gridPoint()
	leader := ve.tokenFor(auth.RoleGridLeader, code)
	sse := ve.openStream(leader, "")
	status := func() map[string]any {
		t.Helper()
		r := ve.do("GET", "/api/v1/recording/status", nil)
		if r.status != 200 {
			t.Fatalf("status: %d %s", r.status, r.body)
		}
		return r.json(t)
	}
	if st := status(); st["state"] != "ok" || st["min_free_bytes"].(float64) != record.DefaultMinFreeBytes {
		t.Errorf("status %v", st)
	}
	want := func(typ string) map[string]any {
		t.Helper()
		for {
			if ev := sse.nextEvent(); ev.event == typ {
				return eventData(t, ev)
			}
		}
	}
	ve.free.Store(10 << 20)
	ve.rec.CheckDisk(context.Background())
	if d := want(record.EventDiskFull); d["state"] != "disk_full" || d["free_bytes"].(float64) != 10<<20 {
		t.Errorf("disk_full event %v", d)
	}
	if st := status(); st["state"] != "disk_full" || st["since"] == nil || !strings.Contains(st["message"].(string), "10 MiB free") {
		t.Errorf("status while full %v", st)
	}
	ve.free.Store(0)
	ve.rec.CheckDisk(context.Background())
	want(record.EventResumed)
	if st := status(); st["state"] != "ok" {
		t.Errorf("status after %v", st)
	}
	// Who may not play footage does not see it.
	ve.token = ve.tokenFor(auth.RoleGISEditor)
	if r := ve.do("GET", "/api/v1/recording/status", nil); r.status != 403 {
		t.Errorf("a GIS editor read the recording status: %d", r.status)
	}
}

func TestLiveHLSReadByFFprobe(t *testing.T) {
	testtool.Require(t, "ffprobe")
	ve := newVideoEnv(t)
	id, _ := ve.addCamera(1, "CAM-HLS")
	token := ve.tokenFor(auth.RoleCommander)
	url := fmt.Sprintf("%s/api/v1/cameras/%d/hls/index.m3u8?token=%s", ve.srv.URL, id, token)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-read_intervals", "%+3",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	var probe struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Width  int
			Height int
			Frames string `json:"nb_read_frames"`
		}
	}
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 1 {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	s := probe.Streams[0]
	var frames int
	fmt.Sscan(s.Frames, &frames)
	if s.Codec != "h264" || s.Width != 640 || s.Height != 360 || frames < 25 {
		t.Errorf("ffprobe: %+v, want h264 640x360 with frames", s)
	}
	// Playlist URIs carry the token on, since players do not.
	r := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d/hls/index.m3u8?stream=sub", id), nil)
	if r.status != 200 || !strings.Contains(string(r.body), "#EXT-X-MAP:URI=\"init-1.mp4?stream=sub\"") {
		t.Errorf("playlist: %d %s", r.status, r.body)
	}
	// Names that are no segment are no file (404), never a 500.
	for _, name := range []string{"seg-999999.m4s", "seg-abc.m4s", "seg-99999999999.m4s", "seg-.m4s", "seg--1.m4s", "init-abc.mp4", "init-99999999999.mp4", "index.m3u"} {
		if r := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d/hls/%s", id, name), nil); r.status != 404 {
			t.Errorf("%s: %d %s, want 404", name, r.status, r.body)
		}
	}
	if strings.Contains(ve.logs.String(), token) {
		t.Error("the URL token reached the log")
	}
}

// TestRevokedTokenEndsLiveVideo revokes the token of a viewer while it
// watches: its stream closes at the next check.
func TestRevokedTokenEndsLiveVideo(t *testing.T) {
	ve := newVideoEnv(t)
	id, _ := ve.addCamera(1, "CAM-REVOKE")
	r := ve.do("POST", "/api/v1/tokens", []byte(`{"name":"wall display","role":"operator"}`))
	if r.status != 201 {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	tok := r.json(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, ve.wsURL(fmt.Sprintf("/api/v1/cameras/%d/live?stream=sub", id)),
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok["secret"].(string)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(16 << 20)
	for binary := 0; binary < 2; {
		typ, _, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("before revoking: %v", err)
		}
		if typ == websocket.MessageBinary {
			binary++
		}
	}
	if r := ve.do("DELETE", fmt.Sprintf("/api/v1/tokens/%v", tok["token"].(map[string]any)["id"]), nil); r.status != 204 && r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Errorf("stream ended with %v, want a policy-violation close", err)
			}
			return
		}
	}
}

// TestRecordingsOverHTTP records a camera, finds its footage in the index
// and plays it back: ffprobe reads the HLS VOD over HTTP, byte ranges and
// all.
func TestRecordingsOverHTTP(t *testing.T) {
	ve := newVideoEnv(t)
	start := time.Now().Add(-time.Second)
	id, gridCode := ve.addCameraRecording(1, "CAM-REC", true)
	operator := ve.tokenFor(auth.RoleOperator)
	ve.token = operator
	q := func(from, to time.Time) string {
		return "from=" + url.QueryEscape(from.Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339Nano))
	}
	recs, from, to := ve.waitRecordings(id, start, 3)
	first := recs[0].(map[string]any)

	// Exactly the indexed range: the last file may still be growing, and a
	// wider range would take in fragments indexed after the list was read.
	pl := fmt.Sprintf("%s/api/v1/cameras/%d/playback.m3u8?%s&token=%s", ve.srv.URL, id, q(from, to), operator)
	probe := testtool.FFprobe(t, "-show_entries", "format=duration:stream=codec_name,width", pl)
	if len(probe.Streams) == 0 {
		t.Fatalf("ffprobe: %s", probe.Out)
	}
	dur := probe.Seconds()
	want := to.Sub(from).Seconds()
	if probe.Streams[0].CodecName != "h264" || probe.Streams[0].Width != 640 || dur < want-1 || dur > want+1 {
		t.Errorf("ffprobe: %s: %.2f s, want h264 640 wide, %.2f s within 1 s", probe.Out, dur, want)
	}
	t.Logf("%d files indexed, playback %.2f s (index says %.2f s)", len(recs), dur, want)

	// A byte range of a file, as players ask.
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/recordings/%v/file.mp4", ve.srv.URL, first["id"]), nil)
	req.Header.Set("Authorization", "Bearer "+operator)
	req.Header.Set("Range", "bytes=0-99")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 206 || res.ContentLength != 100 {
		t.Errorf("range request: %d, %d bytes", res.StatusCode, res.ContentLength)
	}

	// Bad ranges are named; footage outside a leader's grids does not exist for them.
	for _, tc := range []struct {
		query, want string
	}{
		{q(to, from), "not after"},
		{q(from, from.Add(40*24*time.Hour)), "at most 31 days"},
		{"from=yesterday&to=today", "RFC 3339"},
	} {
		r := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d/recordings?%s", id, tc.query), nil)
		if r.status != 400 || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", tc.query, r.status, r.body, tc.want)
		}
	}
	if r := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d/playback.m3u8?%s", id, q(to.Add(time.Hour), to.Add(2*time.Hour))), nil); r.status != 404 {
		t.Errorf("playback of a range without footage: %d %s", r.status, r.body)
	}
	ve.token = adminToken
	ve.token = ve.tokenFor(auth.RoleGridLeader, otherCommunity(gridCode))
	if r := ve.do("GET", fmt.Sprintf("/api/v1/recordings/%v/file.mp4", first["id"]), nil); r.status != 404 {
		t.Errorf("a leader elsewhere fetched the file: %d", r.status)
	}
	if r := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d/recordings?%s", id, q(from, to)), nil); r.status != 404 {
		t.Errorf("a leader elsewhere listed the recordings: %d", r.status)
	}
}

// TestIncidentFootageLinks files incidents around a camera: one inside its
// view cone and one near it in its grid get its footage linked (around the
// reported time); one far away does not. Operators link and unlink by hand.
func TestIncidentFootageLinks(t *testing.T) {
	ve := newVideoEnv(t)
	camID, _ := ve.addCamera(1, "CAM-LINK") // heading 0: it looks north, 100 m
	cam := ve.do("GET", fmt.Sprintf("/api/v1/cameras/%d", camID), nil).json(t)
	loc := cam["location"].(map[string]any)["coordinates"].([]any)
	lon, lat := loc[0].(float64), loc[1].(float64)
	const m = 1.0 / 111_000 // about a metre of latitude
	file := func(dlat float64, ext string) int64 {
		t.Helper()
		r := ve.do("POST", "/api/v1/incidents", incidentBody(lon, lat+dlat, ext))
		if r.status != 201 {
			t.Fatalf("report: %d %s", r.status, r.body)
		}
		return int64(r.json(t)["id"].(float64))
	}
	links := func(id int64) []any {
		t.Helper()
		r := ve.do("GET", fmt.Sprintf("/api/v1/incidents/%d/footage", id), nil)
		if r.status != 200 {
			t.Fatalf("footage: %d %s", r.status, r.body)
		}
		return r.json(t)["footage"].([]any)
	}
	seen := file(50*m, "in-cone")
	behind := file(-40*m, "behind-in-grid")
	far := file(0.05, "far-away")
	if l := links(seen); len(l) != 1 || l[0].(map[string]any)["camera_code"] != "CAM-LINK" || l[0].(map[string]any)["camera_name"] != "测试 CAM-LINK" || l[0].(map[string]any)["source"] != "auto" {
		t.Errorf("in the cone: %v", l)
	} else {
		from, _ := time.Parse(time.RFC3339Nano, l[0].(map[string]any)["from"].(string))
		to, _ := time.Parse(time.RFC3339Nano, l[0].(map[string]any)["to"].(string))
		if to.Sub(from) != 7*time.Minute {
			t.Errorf("window %v–%v, want 2 min before to 5 after", from, to)
		}
	}
	if l := links(behind); len(l) != 1 {
		t.Errorf("near, in its grid, no cone covering: %d links, want 1", len(l))
	}
	if l := links(far); len(l) != 0 {
		t.Errorf("far away: %v", l)
	}
	// A bulk upload links its incidents the same way.
	var bulk []string
	for i, dlat := range []float64{60 * m, 0.05} {
		bulk = append(bulk, fmt.Sprintf(`{"source":"sensor","external_id":"bulk-link-%d","category":"0404","title":"积水","location":{"type":"Point","coordinates":[%v,%v]}}`, i, lon, lat+dlat))
	}
	bulkIDs := ve.bulkLines(bulk)
	if len(bulkIDs) != 2 {
		t.Fatalf("bulk created %v, want 2 incidents", bulkIDs)
	}
	if l := links(bulkIDs[0]); len(l) != 1 || l[0].(map[string]any)["camera_code"] != "CAM-LINK" {
		t.Errorf("bulk incident in the cone: %v", l)
	}
	if l := links(bulkIDs[1]); len(l) != 0 {
		t.Errorf("bulk incident far away: %v", l)
	}
	// By hand: link, refuse a reversed range, unlink.
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"camera_id":%d,"from":%q,"to":%q}`, camID, now.Add(-time.Minute).Format(time.RFC3339), now.Format(time.RFC3339))
	r := ve.do("POST", fmt.Sprintf("/api/v1/incidents/%d/footage", far), []byte(body))
	if r.status != 201 || r.json(t)["source"] != "manual" {
		t.Fatalf("link: %d %s", r.status, r.body)
	}
	linkID := int64(r.json(t)["id"].(float64))
	bad := fmt.Sprintf(`{"camera_id":%d,"from":%q,"to":%q}`, camID, now.Format(time.RFC3339), now.Add(-time.Minute).Format(time.RFC3339))
	if r := ve.do("POST", fmt.Sprintf("/api/v1/incidents/%d/footage", far), []byte(bad)); r.status != 400 {
		t.Errorf("reversed range: %d %s", r.status, r.body)
	}
	if r := ve.do("DELETE", fmt.Sprintf("/api/v1/incidents/%d/footage/%d", far, linkID), nil); r.status != 204 {
		t.Errorf("unlink: %d %s", r.status, r.body)
	}
	if l := links(far); len(l) != 0 {
		t.Errorf("after unlink: %v", l)
	}
}

// TestFootageTags: operators tag footage; tags are found by camera, grid,
// label and time; only the author or an admin edits or deletes one.
func TestFootageTags(t *testing.T) {
	ve := newVideoEnv(t)
	camID, gridCode := ve.addCamera(1, "CAM-TAG")
	alice, bob := ve.tokenFor(auth.RoleOperator), ve.tokenFor(auth.RoleOperator)
	leaderElsewhere := ve.tokenFor(auth.RoleGridLeader, otherCommunity(gridCode))
	leaderHere := ve.tokenFor(auth.RoleGridLeader, gridCode)
	now := time.Now().UTC().Truncate(time.Second)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	ve.token = alice
	r := ve.do("POST", "/api/v1/tags", []byte(fmt.Sprintf(`{"camera_id":%d,"from":%q,"to":%q,"label":"占道经营","note":"三轮车摊位"}`, camID, ts(-2*time.Minute), ts(-time.Minute))))
	if r.status != 201 {
		t.Fatalf("tag: %d %s", r.status, r.body)
	}
	tag := r.json(t)
	tagID := int64(tag["id"].(float64))
	if tag["editable"] != true {
		t.Errorf("the author's own new tag is not editable to them: %v", tag)
	}
	for _, tc := range []struct{ body, want string }{
		{fmt.Sprintf(`{"camera_id":%d,"from":%q,"to":%q,"label":" "}`, camID, ts(-time.Minute), ts(0)), "label"},
		{fmt.Sprintf(`{"camera_id":%d,"from":%q,"to":%q,"label":"x"}`, camID, ts(0), ts(-time.Minute)), "not after"},
		{fmt.Sprintf(`{"from":%q,"to":%q,"label":"x"}`, ts(-time.Minute), ts(0)), "camera_id"},
	} {
		if r := ve.do("POST", "/api/v1/tags", []byte(tc.body)); r.status != 400 || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, r.status, r.body, tc.want)
		}
	}
	q := fmt.Sprintf("/api/v1/tags?camera=%d&label=%s&from=%s&to=%s", camID, url.QueryEscape("占道经营"), url.QueryEscape(ts(-90*time.Second)), url.QueryEscape(ts(0)))
	for _, tc := range []struct {
		token string
		n     int
	}{{bob, 1}, {leaderHere, 1}, {leaderElsewhere, 0}} {
		ve.token = tc.token
		if l := ve.do("GET", q, nil).json(t)["tags"].([]any); len(l) != tc.n {
			t.Errorf("search: %d tags, want %d", len(l), tc.n)
		}
	}
	ve.token = alice
	if l := ve.do("GET", fmt.Sprintf("/api/v1/tags?camera=%d&from=%s&to=%s", camID, url.QueryEscape(ts(-time.Hour)), url.QueryEscape(ts(-30*time.Minute))), nil).json(t)["tags"].([]any); len(l) != 0 {
		t.Errorf("another time: %d tags", len(l))
	}
	ve.token = bob
	if l := ve.do("GET", q, nil).json(t)["tags"].([]any); len(l) != 1 || l[0].(map[string]any)["editable"] != false {
		t.Errorf("another operator is offered to edit: %v", l)
	}
	if r := ve.do("PATCH", fmt.Sprintf("/api/v1/tags/%d", tagID), []byte(`{"note":"bob was here"}`)); r.status != 403 {
		t.Errorf("another operator edits: %d %s", r.status, r.body)
	}
	ve.token = adminToken
	if r := ve.do("PATCH", fmt.Sprintf("/api/v1/tags/%d", tagID), []byte(`{"label":"已处理"}`)); r.status != 200 || r.json(t)["label"] != "已处理" || r.json(t)["author"] != tag["author"] {
		t.Errorf("admin edits: %d %s", r.status, r.body)
	}
	ve.token = leaderElsewhere
	if r := ve.do("DELETE", fmt.Sprintf("/api/v1/tags/%d", tagID), nil); r.status != 404 {
		t.Errorf("outside the scope: %d", r.status)
	}
	ve.token = alice
	if r := ve.do("DELETE", fmt.Sprintf("/api/v1/tags/%d", tagID), nil); r.status != 204 {
		t.Errorf("the author deletes: %d %s", r.status, r.body)
	}
}

// TestEvidenceExport exports recorded footage for an incident: the MP4
// plays (ffprobe), its SHA-256 matches the manifest, and verify notices a
// changed file.
func TestEvidenceExport(t *testing.T) {
	ve := newVideoEnv(t)
	start := time.Now().Add(-time.Second)
	camID, _ := ve.addCameraRecording(1, "CAM-EXP", true)
	lon, lat, _, _ := ve.gridPoint()
	inc := ve.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "export-case"))
	if inc.status != 201 {
		t.Fatalf("incident: %d %s", inc.status, inc.body)
	}
	incID := int64(inc.json(t)["id"].(float64))
	_, from, to := ve.waitRecordings(camID, start, 3)
	body := func(f, t time.Time) []byte {
		return []byte(fmt.Sprintf(`{"camera_id":%d,"from":%q,"to":%q,"incident_id":%d}`, camID, f.UTC().Format(time.RFC3339Nano), t.UTC().Format(time.RFC3339Nano), incID))
	}
	if r := ve.do("POST", "/api/v1/exports", body(to, from)); r.status != 400 {
		t.Errorf("reversed range: %d %s", r.status, r.body)
	}
	if r := ve.do("POST", "/api/v1/exports", body(to.Add(time.Hour), to.Add(2*time.Hour))); r.status != 404 || !strings.Contains(string(r.body), "no footage") {
		t.Errorf("range without footage: %d %s", r.status, r.body)
	}
	r := ve.do("POST", "/api/v1/exports", body(from, to))
	if r.status != 202 {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	id := int64(r.json(t)["id"].(float64))
	var e map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; {
		e = ve.do("GET", fmt.Sprintf("/api/v1/exports/%d", id), nil).json(t)
		if e["status"] == "done" || e["status"] == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("export still %v after 30 s", e["status"])
		}
		<-time.After(50 * time.Millisecond) // the export runs in the background; its state is polled as a client would
	}
	if e["status"] != "done" || e["manifest"].(map[string]any)["camera_code"] != "CAM-EXP" || e["manifest"].(map[string]any)["incident_id"].(float64) != float64(incID) {
		t.Fatalf("export: %v", e)
	}
	file := ve.do("GET", fmt.Sprintf("/api/v1/exports/%d/file", id), nil)
	sum := sha256.Sum256(file.body)
	if file.status != 200 || hex.EncodeToString(sum[:]) != e["sha256"] || file.header.Get("X-Content-SHA256") != e["sha256"] {
		t.Errorf("download: %d, %d bytes, hash %x vs %v", file.status, len(file.body), sum, e["sha256"])
	}
	mp4 := filepath.Join(t.TempDir(), "export.mp4")
	if err := os.WriteFile(mp4, file.body, 0o644); err != nil {
		t.Fatal(err)
	}
	ffprobe := testtool.Require(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "csv=p=0", mp4).CombinedOutput()
	var codec string
	var dur float64
	fields := strings.Fields(strings.ReplaceAll(string(out), ",", " "))
	if len(fields) >= 2 {
		codec = fields[0]
		fmt.Sscan(fields[len(fields)-1], &dur)
	}
	if err != nil || codec != "h264" || dur < to.Sub(from).Seconds()-1 || dur > to.Sub(from).Seconds()+1 {
		t.Errorf("ffprobe of the export: %v %q: want h264 of about %.1f s", err, out, to.Sub(from).Seconds())
	}
	if v := ve.do("GET", fmt.Sprintf("/api/v1/exports/%d/verify", id), nil).json(t); v["ok"] != true {
		t.Errorf("verify: %v", v)
	}
	// The incident's page lists its exports.
	fx := ve.do("GET", fmt.Sprintf("/api/v1/incidents/%d/footage", incID), nil).json(t)
	if xs, _ := fx["exports"].([]any); len(xs) != 1 || xs[0].(map[string]any)["id"].(float64) != float64(id) || xs[0].(map[string]any)["sha256"] != e["sha256"] {
		t.Errorf("the incident's exports: %v", fx["exports"])
	}
	// Someone changes the file: verify says so.
	path := ve.exports.Path(id)
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if v := ve.do("GET", fmt.Sprintf("/api/v1/exports/%d/verify", id), nil).json(t); v["ok"] != false {
		t.Errorf("verify after tampering: %v", v)
	}
}

// TestExportLimitsAPI: identical requests get the first export (200, not a
// second copy); a range over --export-max-range is a 400 naming it; a user
// with too many exports waiting gets a 429 with Retry-After; a disk without
// room a 507; only admins hold and delete exports (audited), a held export
// cannot be deleted, and a deleted one's file is gone.
func TestExportLimitsAPI(t *testing.T) {
	ve := newVideoEnv(t, func(ve *videoEnv) {
		ve.exportLimits = record.ExportLimits{MaxRange: time.Minute, MaxPending: 1}
		ve.manualExports = true
	})
	start := time.Now()
	camID, _ := ve.addCameraRecording(1, "CAM-LIM", true)
	operator := ve.tokenFor(auth.RoleOperator)
	admin := ve.token
	rfc := func(tm time.Time) string { return tm.UTC().Format(time.RFC3339Nano) }
	_, from, to := ve.waitRecordings(camID, start.Add(-time.Minute), 2)
	body := func(f, t time.Time) []byte {
		return []byte(fmt.Sprintf(`{"camera_id":%d,"from":%q,"to":%q}`, camID, rfc(f), rfc(t)))
	}
	ctx := context.Background()
	errOf := func(r response) (code string, details map[string]any) {
		e, _ := r.json(t)["error"].(map[string]any)
		code, _ = e["code"].(string)
		details, _ = e["details"].(map[string]any)
		return code, details
	}

	ve.token = operator
	first := ve.do("POST", "/api/v1/exports", body(from, to))
	if first.status != 202 {
		t.Fatalf("export: %d %s", first.status, first.body)
	}
	id := int64(first.json(t)["id"].(float64))
	cases := []struct {
		name       string
		body       []byte
		status     int
		code       string
		limit      string
		retryAfter string
	}{
		{"over the range limit", body(from, from.Add(61*time.Second)), 400, gridwatch.EInvalid, "export-max-range", ""},
		{"a second export while one waits", body(from, to.Add(-500*time.Millisecond)), 429, gridwatch.EThrottled, "export-max-pending", "30"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ve.do("POST", "/api/v1/exports", tc.body)
			code, d := errOf(r)
			if r.status != tc.status || code != tc.code || d["limit"] != tc.limit || r.header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("got %d %s (Retry-After %q); want %d %s naming %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"), tc.status, tc.code, tc.limit, tc.retryAfter)
			}
		})
	}
	// The same request again, waiting or done: the same export.
	for _, step := range []string{"queued", "done"} {
		r := ve.do("POST", "/api/v1/exports", body(from, to))
		if r.status != 200 || int64(r.json(t)["id"].(float64)) != id || r.json(t)["existing"] != true {
			t.Errorf("%s: the same request again: %d %s; want 200 with export %d", step, r.status, r.body, id)
		}
		ve.exports.Drain(ctx)
	}
	ve.exportFree.Store(1 << 20)
	r := ve.do("POST", "/api/v1/exports", body(from, to.Add(-time.Second)))
	if code, d := errOf(r); r.status != 507 || code != gridwatch.ENoSpace || d["free_bytes"] != float64(1<<20) {
		t.Errorf("no room: %d %s; want 507 %s with free_bytes", r.status, r.body, gridwatch.ENoSpace)
	}
	ve.exportFree.Store(0)

	// Hold and delete: admins only.
	path := fmt.Sprintf("/api/v1/exports/%d", id)
	if r := ve.do("PUT", path+"/hold", []byte(`{"held":true}`)); r.status != 403 {
		t.Errorf("operator holds: %d; want 403", r.status)
	}
	if r := ve.do("DELETE", path, nil); r.status != 403 {
		t.Errorf("operator deletes: %d; want 403", r.status)
	}
	ve.token = admin
	steps := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"hold", "PUT", path + "/hold", `{"held":true}`, 200, ""},
		{"delete while held", "DELETE", path, "", 409, gridwatch.EConflict},
		{"hold without held", "PUT", path + "/hold", `{}`, 400, gridwatch.EInvalid},
		{"release", "PUT", path + "/hold", `{"held":false}`, 200, ""},
		{"delete", "DELETE", path, "", 204, ""},
		{"get after delete", "GET", path, "", 404, gridwatch.ENotFound},
		{"delete again", "DELETE", path, "", 404, gridwatch.ENotFound},
	}
	for _, st := range steps {
		var b []byte
		if st.body != "" {
			b = []byte(st.body)
		}
		r := ve.do(st.method, st.path, b)
		code := ""
		if r.status >= 400 {
			code, _ = errOf(r)
		}
		if r.status != st.status || code != st.code {
			t.Errorf("%s: %d %s; want %d %s", st.name, r.status, r.body, st.status, st.code)
		}
		if st.name == "hold" && r.json(t)["held"] != true {
			t.Errorf("hold: %s; want held true", r.body)
		}
	}
	if _, err := os.Stat(ve.exports.Path(id)); !os.IsNotExist(err) {
		t.Errorf("the deleted export's file: %v; want it gone", err)
	}
	var who string
	if err := ve.pool.QueryRow(ctx, `SELECT actor_name FROM audit_log WHERE action = 'export.delete' AND target_id = $1`, strconv.FormatInt(id, 10)).Scan(&who); err != nil || who == "" {
		t.Errorf("audit of the delete: %q, %v; want the admin's name", who, err)
	}
}
