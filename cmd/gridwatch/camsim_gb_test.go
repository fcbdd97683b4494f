package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"gridwatch/camera"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
	"gridwatch/geo"
	"gridwatch/internal/testtool"
)

// camsimRun is `gridwatch camsim` running in the background.
type camsimRun struct {
	out, log *lockedBuffer
	cancel   context.CancelFunc
	done     chan error
	stopped  sync.Once
}

func startCamsim(args []string, env map[string]string) *camsimRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &camsimRun{out: &lockedBuffer{}, log: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- runCamsim(ctx, args, envOf(env), r.out, r.log) }()
	return r
}

// lines waits for n lines of output.
func (r *camsimRun) lines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := strings.TrimSpace(r.out.String())
		if out != "" && strings.Count(out, "\n")+1 >= n {
			return strings.Split(out, "\n")
		}
		select {
		case err := <-r.done:
			t.Fatalf("camsim ended: %v\nlog: %s", err, r.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("camsim printed %q in 60 s; log: %s", out, r.log.String())
		}
	}
}

// stop interrupts it and wants it to end cleanly (once: it is deferred
// too).
func (r *camsimRun) stop(t *testing.T) {
	t.Helper()
	r.stopped.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("camsim: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("camsim did not stop within 30 s of the interrupt")
		}
	})
}

// TestCamsimGB28181 runs `gridwatch camsim --gb28181` against the real
// platform of `gridwatch serve` (the demo city, the password from the
// environment): its devices register, their channels become cameras in the
// grids they were spread over (or stay unplaced with --gb-no-position), a
// channel streams with its sound when invited, the password is never
// printed, and an interrupt unregisters them.
func TestCamsimGB28181(t *testing.T) {
	const secret = "camsim-gb-secret"
	m := startMain(t, dataDir(t), true, "--gb28181-addr", "127.0.0.1:0", "--gb28181-password", secret)
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	city, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var grids []string
	for _, f := range city {
		if f.Level == geo.LevelGrid {
			grids = append(grids, f.Code)
		}
	}

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			<-time.After(100 * time.Millisecond) // polled as a client would: the rows announce nothing
		}
	}
	device := func(id string) gb28181.Device {
		t.Helper()
		d, err := m.gbStore.Device(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	known := func(id string) bool { _, err := m.gbStore.Device(ctx, id); return err == nil }

	t.Run("udp-gb2312-audio", func(t *testing.T) {
		r := startCamsim([]string{"--gb28181", m.gb.Addr(), "--gb-devices", "2", "--gb-channels", "3",
			"--gb-device-id", "32010600001180000101", "--gb-keepalive", "1s", "--audio"},
			map[string]string{"GRIDWATCH_CAMSIM_GB_PASSWORD": secret})
		defer r.stop(t)
		lines := r.lines(t, 2)
		want := []string{
			"32010600001180000101 32010600001310010101 32010600001310010102 32010600001310010103",
			"32010600001180000102 32010600001310010201 32010600001310010202 32010600001310010203",
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("camsim printed\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		for i, line := range lines {
			f := strings.Fields(line)
			id := f[0]
			waitFor("the catalog of "+id, func() bool { return known(id) && device(id).Cameras == 3 })
			d := device(id)
			if !d.Online || d.Transport != "udp" || d.Unplaced != 0 || d.Model != "camsim" && d.Model != "" {
				t.Errorf("device %s: %+v", id, d)
			}
			chs, err := m.gbStore.Channels(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for j, ch := range chs {
				if ch.Camera == nil {
					t.Fatalf("channel %s has no camera", ch.ID)
				}
				cam, err := m.domain.Cameras.Get(ctx, *ch.Camera, camera.Viewer{})
				if err != nil {
					t.Fatal(err)
				}
				// Channel k of all (k from 0) is in grid k mod G.
				if wantGrid := grids[(i*3+j)%len(grids)]; cam.Grid == nil || cam.Grid.Code != wantGrid {
					t.Errorf("camera of %s in grid %v, want %s", ch.ID, cam.Grid, wantGrid)
				}
			}
		}
		// A channel streams when invited, with its G.711 sound.
		hub := stream.NewHub(stream.HubOptions{})
		sub := hub.Subscribe()
		defer sub.Close()
		f := strings.Fields(lines[0])
		sup := pull.NewSupervisor(pull.Config{Hub: hub, Source: gb28181.Source{Server: m.gb, Device: f[0], Channel: f[1]}})
		stopPull := testtool.Run(t, 15*time.Second, sup.Run)
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		aus, err := sub.Next(pctx, nil)
		cancel()
		if err != nil || len(aus) == 0 || !aus[0].Key {
			t.Fatalf("first pictures of %s: %d, %v", f[1], len(aus), err)
		}
		if st := sup.State(); !strings.Contains(st.Audio, "G.711") {
			t.Errorf("stream state %+v: want G.711 sound", st)
		}
		stopPull()

		r.stop(t)
		for _, line := range lines {
			id := strings.Fields(line)[0]
			waitFor(id+" unregistered", func() bool { return !device(id).Online })
			if d := device(id); d.OfflineReason != "it unregistered" {
				t.Errorf("device %s offline: %q", id, d.OfflineReason)
			}
		}
		if strings.Contains(r.out.String()+r.log.String(), secret) {
			t.Error("camsim printed the password")
		}
	})

	t.Run("alarms", func(t *testing.T) {
		r := startCamsim([]string{"--gb28181", m.gb.Addr(), "--gb-password", secret, "--gb-device-id", "32010600001180000301",
			"--gb-channels", "1", "--gb-alarm-every", "200ms"}, nil)
		defer r.stop(t)
		id := strings.Fields(r.lines(t, 1)[0])[0]
		waitFor("the catalog of "+id, func() bool { return known(id) && device(id).Cameras == 1 })
		// The channel's motion alarms become cases, in its grid.
		var list struct {
			Incidents []struct {
				Title, Source, Category string
				Grid                    *struct{ Code string }
			}
		}
		waitFor("an alarm's incident", func() bool {
			getJSON(t, m.URL()+"/api/v1/incidents?category=0601", &list)
			return len(list.Incidents) > 0
		})
		inc := list.Incidents[0]
		if !strings.Contains(inc.Title, "motion") || inc.Source != "camera" || inc.Grid == nil {
			t.Errorf("alarm incident %+v", inc)
		}
	})

	t.Run("tcp-utf8-no-position", func(t *testing.T) {
		r := startCamsim([]string{"--gb28181", m.gb.Addr(), "--gb-password", secret, "--gb-transport", "TCP", "--gb-charset", "utf-8",
			"--gb-device-id", "32010600001180000201", "--gb-channels", "2", "--gb-no-position"}, nil)
		defer r.stop(t)
		lines := r.lines(t, 1)
		if want := "32010600001180000201 32010600001310020101 32010600001310020102"; len(lines) != 1 || lines[0] != want {
			t.Fatalf("camsim printed %q, want %q", lines, want)
		}
		id := "32010600001180000201"
		waitFor("the catalog of "+id, func() bool { return known(id) && device(id).Unplaced == 2 })
		if d := device(id); !d.Online || d.Transport != "tcp" || d.Cameras != 0 {
			t.Errorf("device %s: %+v", id, d)
		}
		if strings.Contains(r.out.String()+r.log.String(), secret) {
			t.Error("camsim printed the password")
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		err := runCamsim(ctx, []string{"--gb28181", m.gb.Addr(), "--gb-password", "wrong", "--gb-device-id", "32010600001180000301",
			"--gb-devices", "3"}, envOf(nil), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "REGISTER") || !strings.Contains(err.Error(), "3201060000118000030") {
			t.Errorf("wrong password: %v, want the refusal with the device", err)
		}
	})
}

// TestCamsimGBFlags: bad flags are refused with an error naming the flag,
// before anything is started, and -h never shows the password.
func TestCamsimGBFlags(t *testing.T) {
	gb := []string{"--gb28181", "127.0.0.1:5060"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gb28181", "nowhere"}, "--gb28181 \"nowhere\""},
		{[]string{"--gb28181", "127.0.0.1:0"}, "port must be 1..65535"},
		{append(gb, "--gb-server-id", "3402"), "--gb-server-id"},
		{append(gb, "--gb-device-id", "3201060000118000000x"), "--gb-device-id"},
		{append(gb, "--gb-devices", "0"), "--gb-devices 0"},
		{append(gb, "--gb-device-id", "32010600001180009999", "--gb-devices", "2"), "within 9999"},
		{append(gb, "--gb-channels", "100"), "--gb-channels 100: want 0..99"},
		{append(gb, "--gb-transport", "sctp"), "--gb-transport \"sctp\": want udp or tcp"},
		{append(gb, "--gb-charset", "latin1"), "--gb-charset \"latin1\": want GB2312 or UTF-8"},
		{append(gb, "--gb-keepalive", "10ms"), "--gb-keepalive 10ms"},
		{append(gb, "--gb-local-ip", "here"), "--gb-local-ip"},
		{append(gb, "-n", "3"), "-n set the RTSP cameras"},
		{append(gb, "--password", "x"), "--password set the RTSP cameras"},
		{[]string{"--gb-devices", "3"}, "--gb-devices need --gb28181"},
		{[]string{"--gb-keepalive", "soon"}, "invalid value"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := runCamsim(ctx, tc.args, envOf(nil), io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("camsim %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	var help strings.Builder
	err := runCamsim(context.Background(), []string{"-h"}, envOf(map[string]string{"GRIDWATCH_CAMSIM_GB_PASSWORD": "s3cret"}), io.Discard, &help)
	if !errors.Is(err, flag.ErrHelp) || strings.Contains(help.String(), "s3cret") || !strings.Contains(help.String(), "--gb28181 SERVER_ADDR") {
		t.Errorf("-h: %v\n%s", err, help.String())
	}
}

// TestCamsimGBIDsAndPlaces: the IDs follow the documented pattern, and the
// positions of many channels are all distinct and inside the grid each is
// meant for.
func TestCamsimGBIDsAndPlaces(t *testing.T) {
	if got := gbDeviceID(gbDefaultDevID, 999); got != "32010600001180001000" {
		t.Errorf("device 1000: %s", got)
	}
	if got := gbChannelID("32010600001180001000", 99); got != "32010600001310100099" {
		t.Errorf("channel 99 of device 1000: %s", got)
	}
	const n = 2000
	places, err := gbPlaces(n)
	if err != nil {
		t.Fatal(err)
	}
	city, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rings [][][2]float64
	for _, f := range city {
		if f.Level == geo.LevelGrid {
			var ring [][2]float64
			for _, c := range f.Geometry.Polygon(0).Coords()[0] {
				ring = append(ring, [2]float64{c[0], c[1]})
			}
			rings = append(rings, ring)
		}
	}
	seen := map[[2]float64]bool{}
	for k, p := range places {
		if !inRing(rings[k%len(rings)], p) {
			t.Errorf("place %d %v is outside its grid", k, p)
		}
		if seen[p] {
			t.Errorf("place %d %v twice", k, p)
		}
		seen[p] = true
	}
}
