package gb28181_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/camera/camsim/gbsim"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/camera/onvifcam"
	"gridwatch/camera/pull"
	"gridwatch/camera/record"
	"gridwatch/camera/stream"
	"gridwatch/incident"
	"gridwatch/internal/domain"
	"gridwatch/internal/testdb"
	"gridwatch/internal/testtool"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

const (
	platformID = "34020000002000000001"
	nvrID      = "32010600001180000001"
	password   = "platform-secret"
)

// chanID is the ID of channel n of the test NVR.
func chanID(n int) string { return fmt.Sprintf("320106000013100000%02d", n) }

// rig is a platform on a real database with the demo city's grids, and
// what it tells.
type rig struct {
	t       *testing.T
	pool    *pgxpool.Pool
	d       *domain.Domain
	store   *gb28181.Store
	srv     *gb28181.Server
	alarms  *gb28181.Alarms
	places  []domain.DemoPlace
	mu      sync.Mutex
	devices map[string]bool
	change  chan struct{} // a device or catalog changed
	filed   chan filedAlarm
}

type filedAlarm struct {
	alarm    gb28181.Alarm
	incident int64
	err      error
}

var cheapHash = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}

func newRig(t *testing.T, tune func(*gb28181.Config)) *rig {
	t.Helper()
	pool := testdb.New(t)
	d := domain.New(pool, domain.Options{Auth: auth.Options{Hash: cheapHash}})
	ctx := context.Background()
	if err := d.SeedDemo(ctx, domain.DemoOptions{}); err != nil {
		t.Fatal(err)
	}
	places, err := domain.DemoNVRPlaces(4)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, pool: pool, d: d, places: places, devices: map[string]bool{}, change: make(chan struct{}, 1), filed: make(chan filedAlarm, 16)}
	r.store = gb28181.NewStore(pool, d.Cameras, "node-a")
	r.alarms = &gb28181.Alarms{Store: r.store, Incidents: d.Incidents, OnFiled: func(a gb28181.Alarm, inc int64, err error) {
		r.filed <- filedAlarm{a, inc, err}
	}}
	cfg := gb28181.Config{Addr: "127.0.0.1:0", ID: platformID, Password: password, Store: r.store,
		Keepalive: time.Second, MissedKeepalives: 3, Timeout: 10 * time.Second, OnAlarm: r.alarms.Handle,
		OnDevice: func(id string, on bool) {
			r.mu.Lock()
			r.devices[id] = on
			r.mu.Unlock()
			r.kick()
		},
		OnCatalog: func(string) { r.kick() },
	}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := gb28181.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	stop := testtool.Run(t, 15*time.Second, srv.Run)
	t.Cleanup(stop)
	return r
}

func (r *rig) kick() {
	select {
	case r.change <- struct{}{}:
	default:
	}
}

// wait waits for cond, re-checking it at each change the platform tells.
func (r *rig) wait(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond) // database writes tell nothing
	defer tick.Stop()
	for !cond() {
		select {
		case <-r.change:
		case <-tick.C:
		case <-deadline.C:
			r.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// nvr is the test NVR's configuration: four channels at the demo places
// (the first a PTZ dome), a fifth without a position.
func (r *rig) nvr(tune func(*gbsim.Config)) gbsim.Config {
	var chans []gbsim.Channel
	for i, p := range r.places {
		chans = append(chans, gbsim.Channel{ID: chanID(i + 1), Name: p.Name + " 监控点", Lon: p.Lon, Lat: p.Lat, PTZ: i == 0})
	}
	chans = append(chans, gbsim.Channel{ID: chanID(5), Name: "无位置通道", NoPosition: true})
	c := gbsim.Config{Server: r.srv.Addr(), ServerID: platformID, DeviceID: nvrID, Password: password, Channels: chans,
		Keepalive: 300 * time.Millisecond, Name: "测试 NVR", Manufacturer: "Gridwatch", Model: "SIM-NVR"}
	if tune != nil {
		tune(&c)
	}
	return c
}

func (r *rig) start(cfg gbsim.Config) *gbsim.Device {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dev, err := gbsim.Start(ctx, cfg)
	if err != nil {
		r.t.Fatalf("device %s: %v", cfg.DeviceID, err)
	}
	r.t.Cleanup(func() { _ = dev.Close() })
	return dev
}

func (r *rig) device(id string) gb28181.Device {
	r.t.Helper()
	d, err := r.store.Device(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

func (r *rig) channels(id string) map[string]gb28181.Channel {
	r.t.Helper()
	chs, err := r.store.Channels(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]gb28181.Channel{}
	for _, c := range chs {
		out[c.ID] = c
	}
	return out
}

// TestRegisterCatalogKeepalive: a device registers with digest
// authentication, its catalog's channels become cameras in the grids
// their positions fall in (the one without a position stays unplaced),
// and a device whose keepalives stop goes offline, then back.
func TestRegisterCatalogKeepalive(t *testing.T) {
	for _, tc := range []struct {
		name, transport, charset string
	}{{"udp-gb2312", "udp", "GB2312"}, {"tcp-utf8", "tcp", "UTF-8"}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			dev := r.start(r.nvr(func(c *gbsim.Config) { c.Transport, c.Charset = tc.transport, tc.charset }))
			r.wait("the catalog", func() bool { return len(r.channels(nvrID)) == 5 && r.device(nvrID).Cameras == 4 })
			d := r.device(nvrID)
			if !d.Online || d.Transport != tc.transport || d.Node == nil || *d.Node != "node-a" || d.Unplaced != 1 {
				t.Fatalf("device after registering: %+v", d)
			}
			r.wait("the device info", func() bool { return r.device(nvrID).Name == "测试 NVR" })
			if d := r.device(nvrID); d.Manufacturer != "Gridwatch" || d.Model != "SIM-NVR" {
				t.Errorf("device info: %+v", d)
			}
			chs := r.channels(nvrID)
			for i, p := range r.places {
				ch := chs[chanID(i+1)]
				if ch.Camera == nil {
					t.Fatalf("channel %s has no camera", ch.ID)
				}
				cam, err := r.d.Cameras.Get(context.Background(), *ch.Camera, camera.Viewer{})
				if err != nil {
					t.Fatal(err)
				}
				if cam.Grid == nil || cam.Grid.Code != p.Grid {
					t.Errorf("camera of %s is in grid %v, want %s", ch.ID, cam.Grid, p.Grid)
				}
				if cam.Code != ch.ID || !strings.Contains(cam.Name, "监控点") || cam.MainURL != gb28181.URL(nvrID, ch.ID) {
					t.Errorf("camera of %s: code %s name %q url %s", ch.ID, cam.Code, cam.Name, cam.MainURL)
				}
			}
			if un := chs[chanID(5)]; !un.Unplaced || un.Camera != nil || un.Lon != nil {
				t.Errorf("channel without a position: %+v", un)
			}

			// Keepalives stop: offline with the reason; they resume: the
			// device registers again and is back.
			dev.PauseKeepalive(true)
			r.wait("the device offline", func() bool { return !r.device(nvrID).Online })
			if d := r.device(nvrID); !strings.Contains(d.OfflineReason, "keepalive") {
				t.Errorf("offline reason %q", d.OfflineReason)
			}
			dev.PauseKeepalive(false)
			r.wait("the device back online", func() bool { return r.device(nvrID).Online })

			// Unregistering takes it offline at once.
			if err := dev.Close(); err != nil {
				t.Fatal(err)
			}
			r.wait("the device unregistered", func() bool { return !r.device(nvrID).Online })
			if d := r.device(nvrID); d.OfflineReason != "it unregistered" {
				t.Errorf("offline reason %q", d.OfflineReason)
			}
		})
	}
}

// TestRegisterRefused: a wrong password is refused, and stores nothing;
// a device's own password replaces the platform's.
func TestRegisterRefused(t *testing.T) {
	r := newRig(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := gbsim.Start(ctx, r.nvr(func(c *gbsim.Config) { c.Password = "wrong" })); err == nil {
		t.Fatal("a wrong password registered")
	}
	if _, err := r.store.Device(ctx, nvrID); err == nil {
		t.Error("a refused device was stored")
	}
	own := "its-own"
	if _, err := r.store.Configure(ctx, nvrID, gb28181.DeviceSpec{Password: &own}); err != nil {
		t.Fatal(err)
	}
	if _, err := gbsim.Start(ctx, r.nvr(nil)); err == nil {
		t.Fatal("the platform's password still registered a device that has its own")
	}
	dev := r.start(r.nvr(func(c *gbsim.Config) { c.Password = own }))
	defer dev.Close()
	r.wait("online", func() bool { return r.device(nvrID).Online })
	if d := r.device(nvrID); !d.HasPassword {
		t.Errorf("device %+v", d)
	}
}

// TestCatalogChanges: a channel added or removed on the device reaches the
// registry through the catalog subscription; a removed channel is marked
// gone, its camera kept. Placing the unplaced channel makes it a camera.
func TestCatalogChanges(t *testing.T) {
	r := newRig(t, nil)
	dev := r.start(r.nvr(nil))
	r.wait("the catalog", func() bool { return r.device(nvrID).Cameras == 4 })
	// The platform subscribes after reading the catalog: a change made
	// before its SUBSCRIBE arrives would reach nobody (the next full read
	// would find it, not the NOTIFY this test is about).
	r.wait("the catalog subscription", dev.Subscribed)
	p := r.places[1]
	if err := dev.AddChannel(gbsim.Channel{ID: chanID(6), Name: "新增通道", Lon: p.Lon + 0.0001, Lat: p.Lat}); err != nil {
		t.Fatal(err)
	}
	r.wait("the added channel", func() bool { return r.channels(nvrID)[chanID(6)].Camera != nil })
	if err := dev.RemoveChannel(chanID(2)); err != nil {
		t.Fatal(err)
	}
	r.wait("the removed channel gone", func() bool { return r.channels(nvrID)[chanID(2)].Gone })
	if ch := r.channels(nvrID)[chanID(2)]; ch.Camera == nil {
		t.Error("a gone channel lost its camera")
	}
	// A full catalog read on demand agrees, and counts what it found.
	res, err := r.srv.SyncCatalog(context.Background(), nvrID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Channels != 5 || res.Unplaced != 1 {
		t.Errorf("catalog read: %+v", res)
	}
	// Placing the unplaced channel: a camera in its grid.
	id, err := r.store.Place(context.Background(), chanID(5), r.places[3].Lon, r.places[3].Lat, "wgs84")
	if err != nil {
		t.Fatal(err)
	}
	cam, err := r.d.Cameras.Get(context.Background(), id, camera.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if cam.Grid == nil || cam.Grid.Code != r.places[3].Grid {
		t.Errorf("placed camera in %v", cam.Grid)
	}
	if _, err := r.store.Place(context.Background(), chanID(5), 118, 32, "wgs84"); err == nil {
		t.Error("a channel was placed twice")
	}
}

// TestLive: a channel's live stream over UDP (with loss and reordering),
// TCP passive and TCP active reaches a hub as whole pictures starting at a
// keyframe; the device's stream ends (BYE) when the session closes.
func TestLive(t *testing.T) {
	r := newRig(t, nil)
	dev := r.start(r.nvr(func(c *gbsim.Config) { c.Audio = true }))
	r.wait("the catalog", func() bool { return r.device(nvrID).Cameras == 4 })
	for _, tc := range []struct {
		transport string
		loss      int
		reorder   bool
	}{{gb28181.UDP, 0, false}, {gb28181.UDP, 97, true}, {gb28181.TCPPassive, 0, false}, {gb28181.TCPActive, 0, false}} {
		t.Run(fmt.Sprintf("%s-loss%d-reorder%v", tc.transport, tc.loss, tc.reorder), func(t *testing.T) {
			dev.SetLoss(tc.loss)
			dev.SetReorder(tc.reorder)
			hub := stream.NewHub(stream.HubOptions{})
			sub := hub.Subscribe()
			defer sub.Close()
			sup := pull.NewSupervisor(pull.Config{Hub: hub, Source: gb28181.Source{Server: r.srv, Device: nvrID, Channel: chanID(1), Transport: tc.transport}})
			stop := testtool.Run(t, 15*time.Second, sup.Run)
			pictures, keys := 0, 0
			var last int64 = -1
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var buf []*stream.AccessUnit
			for pictures < 60 {
				aus, err := sub.Next(ctx, buf[:0])
				if err != nil {
					t.Fatalf("%d pictures, then %v", pictures, err)
				}
				buf = aus
				for _, au := range aus {
					if pictures == 0 && !au.Key {
						t.Fatal("the first picture is not a keyframe")
					}
					if au.DTS <= last {
						t.Fatalf("DTS went from %d to %d", last, au.DTS)
					}
					last = au.DTS
					pictures++
					if au.Key {
						keys++
					}
				}
			}
			st := sup.State()
			if st.Status != pull.StatusOnline || !strings.HasPrefix(st.Codec, "avc1") || !strings.Contains(st.Audio, "G.711") {
				t.Errorf("state %+v", st)
			}
			if keys < 2 {
				t.Errorf("%d keyframes in 60 pictures", keys)
			}
			stop()
			r.wait("the device's stream ended", func() bool { return dev.Streams() == 0 })
		})
	}
}

// TestPTZAndRecords: a PTZ command through the registry's PTZ service
// reaches the dome as a PTZCmd (audited, under control); the device's
// recordings are listed.
func TestPTZAndRecords(t *testing.T) {
	r := newRig(t, nil)
	now := time.Now().Truncate(time.Second)
	dev := r.start(r.nvr(func(c *gbsim.Config) {
		c.Records = []gbsim.Record{{Channel: chanID(1), Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour), Type: "time"},
			{Channel: chanID(1), Start: now.Add(-30 * time.Minute), End: now.Add(-20 * time.Minute), Type: "alarm"},
			{Channel: chanID(2), Start: now.Add(-30 * time.Minute), End: now.Add(-20 * time.Minute), Type: "time"}}
	}))
	r.wait("the catalog", func() bool { return r.device(nvrID).Cameras == 4 })
	cam := *r.channels(nvrID)[chanID(1)].Camera
	svc := onvifcam.New(r.pool, r.d.Cameras, onvifcam.Options{Driver: &gb28181.PTZDriver{Server: r.srv, MoveTimeout: 300 * time.Millisecond}})
	ctx := context.Background()
	if _, err := svc.Do(ctx, cam, onvifcam.Command{Op: "move", Pan: 0.5, Tilt: -1}); err != nil {
		t.Fatal(err)
	}
	got, n := dev.LastPTZ(chanID(1))
	if n != 1 || got.Pan != 1 || got.Tilt != -1 || got.PanSpeed != 128 || got.TiltSpeed != 255 {
		t.Errorf("the dome got %+v (%d commands)", got, n)
	}
	// Not repeated: the move is stopped by the platform.
	r.wait("the move stopped", func() bool {
		got, n := dev.LastPTZ(chanID(1))
		return n == 2 && got.Stop
	})
	if _, err := svc.Do(ctx, cam, onvifcam.Command{Op: "goto", Preset: "3"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := dev.LastPTZ(chanID(1)); got.Preset != 3 || got.PresetOp != manscdp.PresetCall {
		t.Errorf("goto preset: %+v", got)
	}
	if _, err := svc.Do(ctx, cam, onvifcam.Command{Op: "goto", Preset: "home"}); err == nil {
		t.Error("a preset that is not a number was sent")
	}
	fixed := *r.channels(nvrID)[chanID(2)].Camera
	if _, err := svc.Do(ctx, fixed, onvifcam.Command{Op: "stop"}); err == nil {
		t.Error("a fixed camera was steered")
	}
	recs, err := r.srv.Records(ctx, nvrID, chanID(1), now.Add(-3*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !recs[0].From.Equal(now.Add(-2*time.Hour)) || !recs[1].To.Equal(now.Add(-20*time.Minute)) || recs[1].Type != "alarm" {
		t.Errorf("device recordings %+v", recs)
	}
}

// TestAlarm: a device's alarm becomes one incident in the channel's grid,
// with the channel's footage linked; the same alarm again makes none.
func TestAlarm(t *testing.T) {
	r := newRig(t, nil)
	dev := r.start(r.nvr(nil))
	r.wait("the catalog", func() bool { return r.device(nvrID).Cameras == 4 })
	at := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	if err := dev.Alarm(chanID(2), 2, 5, at, "移动侦测报警"); err != nil {
		t.Fatal(err)
	}
	var f filedAlarm
	select {
	case f = <-r.filed:
	case <-time.After(30 * time.Second):
		t.Fatal("no alarm handled")
	}
	if f.err != nil || f.incident == 0 {
		t.Fatalf("alarm: incident %d, %v", f.incident, f.err)
	}
	inc, err := r.d.Incidents.Get(context.Background(), f.incident, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if inc.Grid == nil || inc.Grid.Code != r.places[1].Grid || inc.Category != "0601" || !strings.Contains(inc.Title, "motion") || inc.Source != "camera" {
		t.Errorf("incident %+v", inc)
	}
	links, err := r.d.Footage.Links(context.Background(), f.incident)
	if err != nil {
		t.Fatal(err)
	}
	cam := *r.channels(nvrID)[chanID(2)].Camera
	found := false
	for _, l := range links {
		found = found || l.CameraID == cam
	}
	if !found {
		t.Errorf("the channel's camera %d is not linked: %+v", cam, links)
	}
	if err := dev.Alarm(chanID(2), 2, 5, at, "移动侦测报警"); err != nil {
		t.Fatal(err)
	}
	select {
	case f = <-r.filed:
		if f.incident != 0 {
			t.Errorf("a repeated alarm made incident %d", f.incident)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the repeated alarm was not handled")
	}
	// A device whose clock is a day ahead: its alarm is not lost for it,
	// but dated when it came (a report may not be dated ahead).
	sent := time.Now()
	if err := dev.Alarm(chanID(2), 2, 5, sent.Add(24*time.Hour).Truncate(time.Second), "移动侦测报警"); err != nil {
		t.Fatal(err)
	}
	select {
	case f = <-r.filed:
	case <-time.After(30 * time.Second):
		t.Fatal("the alarm of a device a day ahead was not handled")
	}
	if f.err != nil || f.incident == 0 {
		t.Fatalf("alarm of a device a day ahead: incident %d, %v", f.incident, f.err)
	}
	if inc, err = r.d.Incidents.Get(context.Background(), f.incident, incident.Viewer{}); err != nil {
		t.Fatal(err)
	}
	if d := inc.ReportedAt.Sub(sent); d < -time.Minute || d > time.Minute {
		t.Errorf("the alarm of a device a day ahead is dated %v, %v after it was sent; want its receipt", inc.ReportedAt, d)
	}
}

// pictures reads n pictures from a hub, failing after wait.
func pictures(t *testing.T, hub *stream.Hub, n int, wait time.Duration) []*stream.AccessUnit {
	t.Helper()
	sub := hub.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []*stream.AccessUnit
	for len(out) < n {
		aus, err := sub.Next(ctx, nil)
		if err != nil {
			t.Fatalf("%d of %d pictures, then %v", len(out), n, err)
		}
		out = append(out, aus...)
	}
	return out
}

// TestPlayback: a device's recording is played from its start, paused,
// resumed, moved and sped up over INFO; a short range ends by itself
// when the device says so.
func TestPlayback(t *testing.T) {
	r := newRig(t, nil)
	now := time.Now().Truncate(time.Second)
	dev := r.start(r.nvr(func(c *gbsim.Config) {
		c.Records = []gbsim.Record{{Channel: chanID(1), Start: now.Add(-time.Hour), End: now, Type: "time"}}
	}))
	r.wait("the catalog", func() bool { return r.device(nvrID).Cameras == 4 })
	cam := *r.channels(nvrID)[chanID(1)].Camera
	pbs := &gb28181.Playbacks{Server: r.srv}
	t.Cleanup(testtool.Run(t, 15*time.Second, pbs.Run))
	ctx := context.Background()
	var pb *gb28181.Playback
	var err error
	r.wait("playback running", func() bool {
		pb, err = pbs.Start(ctx, cam, nvrID, chanID(1), now.Add(-time.Hour), now.Add(-50*time.Minute), gb28181.TCPPassive)
		return err == nil
	})
	hub, _, release, err := pbs.Acquire(pb.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if aus := pictures(t, hub, 10, 30*time.Second); !aus[0].Key {
		t.Error("the playback does not start at a keyframe")
	}
	for _, c := range []gb28181.Command{{Op: "pause"}, {Op: "resume"}, {Op: "seek", At: 120}, {Op: "speed", Scale: 2}} {
		st, err := pbs.Control(ctx, pb.ID, c)
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		if c.Op == "pause" && !st.Paused || c.Op == "speed" && st.Scale != 2 {
			t.Errorf("%s: state %+v", c.Op, st)
		}
	}
	pictures(t, hub, 10, 30*time.Second)
	for _, bad := range []gb28181.Command{{Op: "rewind"}, {Op: "seek", At: 3601}, {Op: "speed", Scale: 100}} {
		if _, err := pbs.Control(ctx, pb.ID, bad); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
	if err := pbs.Stop(pb.ID); err != nil {
		t.Fatal(err)
	}
	r.wait("the device's stream ended", func() bool { return dev.Streams() == 0 })

	// Two seconds of recording: the device says it is over.
	short, err := pbs.Start(ctx, cam, nvrID, chanID(1), now.Add(-time.Hour), now.Add(-time.Hour+2*time.Second), gb28181.UDP)
	if err != nil {
		t.Fatal(err)
	}
	r.wait("the short playback ended", func() bool {
		st, err := pbs.Get(short.ID)
		return err == nil && st.Ended
	})
	if _, err := pbs.Start(ctx, cam, nvrID, chanID(1), now, now.Add(-time.Minute), gb28181.UDP); err == nil {
		t.Error("a backwards range was played")
	}
}

// TestFetch: a device's recording of a range gridwatch did not record is
// fetched (played back faster than real time) into gridwatch's footage at
// the device's times; fetching it again finds nothing missing.
func TestFetch(t *testing.T) {
	r := newRig(t, nil)
	now := time.Now().Truncate(time.Second)
	r.start(r.nvr(func(c *gbsim.Config) {
		c.Records = []gbsim.Record{{Channel: chanID(1), Start: now.Add(-time.Hour), End: now, Type: "time"}}
		c.Audio = true
	}))
	r.wait("the catalog", func() bool { return r.device(nvrID).Cameras == 4 })
	cam := *r.channels(nvrID)[chanID(1)].Camera
	dir := t.TempDir()
	rec := record.NewRecorder(record.Config{Dir: dir, FragmentDuration: time.Second, FileDuration: 10 * time.Second, Node: "node-a"}, r.d.Footage)
	pbs := &gb28181.Playbacks{Server: r.srv}
	t.Cleanup(testtool.Run(t, 15*time.Second, pbs.Run))
	fx := &gb28181.Fetches{Playbacks: pbs, Footage: r.d.Footage, Record: rec.Record}
	t.Cleanup(testtool.Run(t, 30*time.Second, fx.Run))
	ctx := context.Background()
	from, to := now.Add(-50*time.Minute), now.Add(-50*time.Minute+20*time.Second)
	var f gb28181.Fetch
	var err error
	r.wait("the fetch started", func() bool {
		f, err = fx.Start(ctx, cam, nvrID, chanID(1), from, to)
		return err == nil
	})
	if len(f.Ranges) != 1 || !f.Running {
		t.Fatalf("fetch %+v", f)
	}
	r.wait("the fetch done", func() bool {
		f, _ = fx.Get(cam)
		return !f.Running
	})
	if f.Error != "" {
		t.Fatalf("fetch failed: %s", f.Error)
	}
	recs, _, err := r.d.Footage.List(ctx, cam, from.Add(-time.Minute), to.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || recs[0].Start.Sub(from).Abs() > time.Second || to.Sub(recs[len(recs)-1].End) > 2*time.Second {
		t.Fatalf("fetched footage %v to %v: %+v", from, to, recs)
	}
	// The recording has sound from its start: every file has the sound
	// track, the first too (its keyframe may come before any sound), or
	// an export of the range would join files of two kinds.
	for _, rec := range recs {
		head := make([]byte, rec.InitSize)
		fh, err := os.Open(filepath.Join(dir, rec.Path))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadFull(fh, head)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		init, _, err := stream.ParseInit(head)
		if err != nil {
			t.Fatal(err)
		}
		if len(init.Tracks) != 2 {
			t.Errorf("fetched file %s to %s has %d tracks, not pictures and sound (files: %d)", rec.Start.Format("15:04:05.000"), rec.End.Format("15:04:05.000"), len(init.Tracks), len(recs))
		}
	}
	f, err = fx.Start(ctx, cam, nvrID, chanID(1), from, to)
	if err != nil || f.Running || len(f.Ranges) != 0 {
		t.Errorf("fetching what is held again: %+v %v", f, err)
	}
	if _, err := fx.Start(ctx, cam, nvrID, chanID(1), now, now.Add(time.Hour)); err == nil {
		t.Error("a fetch of the future was started")
	}
}

// TestRegistrationExpires: a device that stops refreshing its registration
// goes offline when it expires, keepalives or not, and is back when it
// registers again.
func TestRegistrationExpires(t *testing.T) {
	r := newRig(t, func(c *gb28181.Config) { c.Keepalive, c.MissedKeepalives = 10*time.Second, 3 })
	dev := r.start(r.nvr(func(c *gbsim.Config) { c.Expires = 2 * time.Second }))
	r.wait("online", func() bool { return r.device(nvrID).Online })
	if d := r.device(nvrID); d.ExpiresAt == nil || d.ExpiresAt.Sub(*d.RegisteredAt) != 2*time.Second {
		t.Fatalf("registration: %+v", d)
	}
	dev.PauseRegistration(true)
	r.wait("the registration expired", func() bool { return !r.device(nvrID).Online })
	if d := r.device(nvrID); d.OfflineReason != "its registration expired" {
		t.Errorf("offline reason %q", d.OfflineReason)
	}
	dev.PauseRegistration(false)
	r.wait("registered again", func() bool { return r.device(nvrID).Online })
}
