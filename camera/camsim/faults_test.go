package camsim

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"gridwatch/camera/internal/rtsptest"
	"gridwatch/camera/stream"
)

func TestFaultNames(t *testing.T) {
	seen := map[Fault]bool{}
	for _, f := range Faults() {
		if f == FaultNone || !f.Valid() || seen[f] {
			t.Errorf("fault %q listed twice, empty or not valid", f)
		}
		seen[f] = true
		if err := (Config{N: 1, Addr: "127.0.0.1:0", Fault: f}).Validate(); err != nil {
			t.Errorf("Config with fault %q: %v", f, err)
		}
	}
	for _, f := range []Fault{"describe_close", "TSJUMP", "resize "} {
		if f.Valid() {
			t.Errorf("%q is valid, want not", f)
		}
	}
}

// sizeOf returns the size the SPS in front of a keyframe says, or 0x0.
func sizeOf(t *testing.T, au rtsptest.AU) (int, int) {
	t.Helper()
	var sps, pps []byte
	for _, n := range au.NALUs {
		switch stream.H264.ParamSet(n) {
		case "sps":
			sps = n
		case "pps":
			pps = n
		}
	}
	if sps == nil {
		return 0, 0
	}
	p, err := stream.NewParams(sps, pps)
	if err != nil {
		t.Fatalf("SPS: %v", err)
	}
	return p.Width, p.Height
}

// nextKey reads pictures until a keyframe, failing after max of them.
func nextKey(t *testing.T, p *rtsptest.Player, max int) rtsptest.AU {
	t.Helper()
	for range max {
		if au := p.Next(t); stream.H264.IsKey(au.NALUs) {
			return au
		}
	}
	t.Fatalf("no keyframe in %d pictures", max)
	return rtsptest.AU{}
}

// FaultResize switches the main stream to 320x180 at an IDR that carries
// the new SPS, and back when cleared; the sub stream the other way.
func TestFaultResize(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{})
	main := rtsptest.Play(t, s.URL(1, StreamMain))
	sub := rtsptest.Play(t, s.URL(1, StreamSub))
	if w, h := sizeOf(t, nextKey(t, main, 2*clipGOP)); w != 640 || h != 360 {
		t.Fatalf("main before: %dx%d", w, h)
	}
	nextKey(t, sub, 2*clipGOP)
	s.SetFault(1, FaultResize)
	// Within two GOPs the keyframes are of the other size; every picture
	// before the first such keyframe is of the old clip (a switch at an IDR).
	for _, tc := range []struct {
		p    *rtsptest.Player
		w, h int
	}{{main, 320, 180}, {sub, 640, 360}} {
		found := false
		for range 3 {
			if w, h := sizeOf(t, nextKey(t, tc.p, 2*clipGOP)); w == tc.w && h == tc.h {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %dx%d keyframe after FaultResize", tc.w, tc.h)
		}
	}
	s.SetFault(1, FaultNone)
	found := false
	for range 3 {
		if w, _ := sizeOf(t, nextKey(t, main, 2*clipGOP)); w == 640 {
			found = true
			break
		}
	}
	if !found {
		t.Error("main stream not back to 640x360 after the fault cleared")
	}
}

// The timestamp faults move the RTP clock once, when they begin.
func TestFaultTimestamps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault Fault
		check func(prev, next uint32) bool
		want  string
	}{
		{FaultTSJump, func(prev, next uint32) bool { return next-prev == tsJumpTicks+ticksPerFrame }, "10 min forward"},
		{FaultTSBack, func(prev, next uint32) bool { return prev-next == tsBackTicks-ticksPerFrame }, "30 s back"},
		{FaultTSWrap, func(_, next uint32) bool { return next == uint32(1<<32-tsWrapLead) }, "2 s before the wrap"},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			t.Parallel()
			s := startSim(t, Config{})
			p := rtsptest.Play(t, s.URL(1, StreamMain))
			prev := p.Next(t).TS
			s.SetFault(1, tc.fault)
			// Some pictures may be in flight when the fault is set: the jump
			// is the one step that is not a picture interval.
			jumps := 0
			for range 3 * clipGOP {
				next := p.Next(t).TS
				if next-prev != ticksPerFrame {
					jumps++
					if !tc.check(prev, next) {
						t.Errorf("jump from %d to %d, want %s", prev, next, tc.want)
					}
				}
				prev = next
			}
			if jumps != 1 {
				t.Errorf("%d jumps, want 1", jumps)
			}
			if tc.fault == FaultTSWrap && prev > 1<<31 {
				t.Errorf("timestamp %d after 3 s: did not wrap", prev)
			}
		})
	}
}

// FaultNoKey leaves every keyframe out while it is on: the pictures keep
// coming, none of them an IDR or a parameter set; cleared, keyframes
// come back.
func TestFaultNoKey(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{})
	p := rtsptest.Play(t, s.URL(1, StreamMain))
	nextKey(t, p, 2*clipGOP)
	s.SetFault(1, FaultNoKey)
	// A keyframe already sent may still be on its way: skip a few pictures.
	for range 5 {
		p.Next(t)
	}
	prev := p.Next(t).TS
	gaps := 0
	for range 3 * clipGOP {
		au := p.Next(t)
		for _, n := range au.NALUs {
			if stream.H264.ParamSet(n) != "" || stream.H264.IsKey([][]byte{n}) {
				t.Fatalf("picture at %d carries a keyframe or a parameter set in FaultNoKey", au.TS)
			}
		}
		if au.TS-prev == 2*ticksPerFrame {
			gaps++ // the keyframe's interval, left out
		}
		prev = au.TS
	}
	if gaps < 2 || gaps > 4 {
		t.Errorf("%d missing picture intervals in 3 s, want one a second", gaps)
	}
	s.SetFault(1, FaultNone)
	nextKey(t, p, 2*clipGOP)
}

// FaultSlow answers each request SlowDelay late; a session opened that
// way plays.
func TestFaultSlow(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{Fault: FaultSlow})
	start := time.Now()
	p := rtsptest.Play(t, s.URL(1, StreamMain))
	// DESCRIBE, SETUP and PLAY, each SlowDelay late.
	if took := time.Since(start); took < 3*SlowDelay {
		t.Errorf("DESCRIBE, SETUP and PLAY took %v, want at least %v", took, 3*SlowDelay)
	}
	p.AccessUnits(t, 1)
	s.SetFault(1, FaultNone)
	start = time.Now()
	rtsptest.Play(t, s.URL(1, StreamMain)).AccessUnits(t, 1)
	t.Logf("healthy again: played in %v", time.Since(start))
}

// FaultGarbage answers DESCRIBE with bytes a client cannot read as RTSP;
// FaultDescribeClose answers it and closes the connection before SETUP.
// Sessions already playing are not touched; cleared, both serve again.
func TestFaultGarbageAndDescribeClose(t *testing.T) {
	t.Parallel()
	for _, f := range []Fault{FaultGarbage, FaultDescribeClose} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			s := startSim(t, Config{})
			playing := rtsptest.Play(t, s.URL(1, StreamMain))
			playing.Next(t)
			s.SetFault(1, f)
			u, err := base.ParseURL(s.URL(1, StreamMain))
			if err != nil {
				t.Fatal(err)
			}
			tcp := gortsplib.TransportTCP
			c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: waitLong}
			if err := c.Start2(); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			desc, _, err := c.Describe(u)
			switch f {
			case FaultGarbage:
				if err == nil || rtsptest.StatusOf(err) != 0 {
					t.Fatalf("DESCRIBE answered with garbage: %v, want a protocol error", err)
				}
				t.Logf("client error: %v", err)
			case FaultDescribeClose:
				if err != nil {
					t.Fatalf("DESCRIBE: %v", err)
				}
				_, err = c.Setup(desc.BaseURL, desc.Medias[0], 0, 0)
				if err == nil {
					t.Fatal("SETUP after DESCRIBE succeeded, want the connection closed")
				}
				t.Logf("client error: %v", err)
			}
			playing.Drain()
			playing.Next(t)
			s.SetFault(1, FaultNone)
			rtsptest.Play(t, s.URL(1, StreamMain)).AccessUnits(t, 1)
		})
	}
}
