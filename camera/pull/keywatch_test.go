package pull

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

func TestKeyWatchLearnsTheGOP(t *testing.T) {
	k := keyWatch{floor: 15 * time.Second, gops: 2, ceiling: 2 * time.Minute}
	if w := k.wait(); w != 15*time.Second {
		t.Fatalf("before any keyframe: %v, want the floor", w)
	}
	// A camera that used a 12 s GOP first misses the 15 s floor once
	// or twice: the wait doubles until it is learnt.
	k.missed()
	if w := k.wait(); w != 30*time.Second {
		t.Fatalf("after a miss: %v, want 30 s", w)
	}
	at := time.Unix(1000, 0)
	k.newSession()
	for i, gop := range []time.Duration{0, 12 * time.Second, 10 * time.Second, 11 * time.Second} {
		at = at.Add(gop)
		k.key(at)
		if i == 0 && k.gop() != 0 {
			t.Fatal("one keyframe made a GOP")
		}
	}
	if g, w := k.gop(), k.wait(); g != 12*time.Second || w != 24*time.Second {
		t.Fatalf("GOPs 12, 10, 11 s: gop %v, wait %v; want 12 s and 24 s", g, w)
	}
	// A reconnect's gap is not a GOP; ordinary 1 s GOPs later push the
	// long one out of the window, and the floor holds.
	k.newSession()
	at = at.Add(time.Hour)
	for range 9 {
		k.key(at)
		at = at.Add(time.Second)
	}
	if g, w := k.gop(), k.wait(); g != time.Second || w != 15*time.Second {
		t.Fatalf("after 1 s GOPs: gop %v, wait %v; want 1 s and the 15 s floor", g, w)
	}
	// The scene goes still: the GOP stretches past the learnt wait. Each
	// miss widens it (15 s → 30 s → 60 s), so it catches up.
	for _, want := range []time.Duration{30 * time.Second, 60 * time.Second} {
		k.missed()
		if w := k.wait(); w != want {
			t.Fatalf("after a miss with a 1 s GOP known: wait %v, want %v", w, want)
		}
	}
	// A GOP beyond reason is capped.
	k.key(at.Add(10 * time.Minute))
	if w := k.wait(); w != 2*time.Minute {
		t.Fatalf("a 10 min GOP: wait %v, want the 2 min ceiling", w)
	}
}

// pacedSession delivers a clip's packets in real time, one picture every
// frame, until closed.
func pacedSession(t *testing.T, clip string, frame time.Duration, loops int) *fakeSession {
	pkts, n := packets(t, clip, 1000, 1400, loops)
	s := &fakeSession{packets: make(chan *rtp.Packet, 64), done: make(chan struct{})}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(frame)
		defer tick.Stop()
		i := 0
		for pic := 0; pic < n; pic++ {
			for ; i < len(pkts) && pkts[i].Timestamp == 1000+uint32(pic)*3600; i++ {
				select {
				case s.packets <- pkts[i]:
				case <-stop:
					return
				}
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	s.onClose = func() {
		close(stop)
		<-finished
	}
	return s
}

// A camera whose GOP is longer than the keyframe watchdog's floor settles
// after at most two reconnects: the watchdog learns its GOP and the
// session then runs on, its state showing the GOP.
func TestSupervisorLearnsLongGOP(t *testing.T) {
	// The clip's GOP is 25 pictures; at 20 ms a picture, 0.5 s: five
	// times the 100 ms floor. The wait doubles per miss (200, 400, 800
	// ms): three misses, a fourth if the machine is slow.
	const frame = 20 * time.Millisecond
	var sessions []*fakeSession
	for range 6 {
		sessions = append(sessions, pacedSession(t, camsim.ClipSub, frame, 20))
	}
	src := &fakeSource{script: sessions}
	hub := stream.NewHub(stream.HubOptions{})
	states := make(chan State, 64)
	sup := NewSupervisor(Config{
		Source: src, Hub: hub, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
		StallTimeout: time.Hour, KeyTimeout: 100 * time.Millisecond, KeyGOPs: 3,
		OnState: func(st State) { states <- st },
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx) }()
	defer func() {
		cancel()
		<-ran
	}()
	// Watch for 5 s: the misses come first, then the stream stays up
	// (a fixed 100 ms watchdog would have reconnected some 25 times).
	deadline := time.After(5 * time.Second)
	misses := 0
	for watching := true; watching; {
		select {
		case st := <-states:
			if st.Status == StatusOffline {
				if !strings.HasPrefix(st.Reason, "no keyframe for") {
					t.Fatalf("offline: %q", st.Reason)
				}
				misses++
			}
		case <-deadline:
			watching = false
		}
	}
	if misses > 4 {
		t.Errorf("%d reconnects for missing keyframes, want at most 4 before the GOP is learnt", misses)
	}
	st := sup.State()
	if st.Status != StatusOnline || st.GOP < 0.4 || st.KeyTimeout < 3*st.GOP-0.01 {
		t.Errorf("state %+v: want online with a GOP of about 0.5 s and a watchdog of 3 GOPs", st)
	}
}
