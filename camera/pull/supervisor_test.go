package pull

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"go.uber.org/goleak"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

// fakeSource is a Source whose openings follow a script: each Open takes
// the next step, a failure or a session; past the script every Open fails.
type fakeSource struct {
	mu     sync.Mutex
	script []*fakeSession // nil: this opening fails
	opens  []time.Time
}

var errRefused = errors.New("connection refused")

func (f *fakeSource) Open(ctx context.Context) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens = append(f.opens, time.Now())
	if len(f.script) == 0 {
		return nil, errRefused
	}
	s := f.script[0]
	f.script = f.script[1:]
	if s == nil {
		return nil, errRefused
	}
	return s, nil
}

func (f *fakeSource) openTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.opens...)
}

// fakeSession holds all its packets from the start; the test ends it.
type fakeSession struct {
	packets chan *rtp.Packet
	done    chan struct{}
	err     error
	closes  int
	onClose func() // called by the first Close
	mu      sync.Mutex
}

func newFakeSession(pkts []*rtp.Packet) *fakeSession {
	s := &fakeSession{packets: make(chan *rtp.Packet, len(pkts)), done: make(chan struct{})}
	for _, p := range pkts {
		s.packets <- p
	}
	return s
}

func (s *fakeSession) Format() format.Format {
	return &format.H264{PayloadTyp: 96, PacketizationMode: 1}
}
func (s *fakeSession) Packets() <-chan *rtp.Packet { return s.packets }
func (s *fakeSession) Done() <-chan struct{}       { return s.done }
func (s *fakeSession) Err() error                  { return s.err }
func (s *fakeSession) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	if s.onClose != nil && s.closes == 1 {
		s.onClose()
	}
}

// end makes the session end by itself with err.
func (s *fakeSession) end(err error) {
	s.err = err
	close(s.done)
}

// nextState waits for the supervisor's next reported state.
func nextState(t *testing.T, states <-chan State) State {
	t.Helper()
	select {
	case st := <-states:
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("no state change within 10 s")
		return State{}
	}
}

// TestSupervisorWithFakeSource drives the supervisor through failures, a
// session and its end: the states it reports, the reconnect count, the
// growing backoff and that every session it opened is closed.
func TestSupervisorWithFakeSource(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pkts, n := packets(t, camsim.ClipSub, 1000, 1400, 1)
	first, second := newFakeSession(pkts), newFakeSession(pkts)
	src := &fakeSource{script: []*fakeSession{nil, nil, first, nil, second}}
	// The viewer may fall behind on a loaded machine: a queue for the whole
	// clip, so that it skips nothing and counts every picture.
	hub := stream.NewHub(stream.HubOptions{Queue: 2*n + 10})
	viewer := hub.Subscribe()
	defer viewer.Close()
	states := make(chan State, 16)
	const minBackoff = 20 * time.Millisecond
	sup := NewSupervisor(Config{
		Source: src, Hub: hub, MinBackoff: minBackoff, MaxBackoff: 4 * minBackoff,
		// The sessions end when the test says: a stall (no picture after the
		// script's last) must not end one first on a loaded machine.
		StallTimeout: time.Hour, KeyTimeout: time.Hour,
		OnState: func(st State) { states <- st },
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx) }()

	// Two refused openings: offline, with the reason.
	if st := nextState(t, states); st.Status != StatusOffline || st.Reason != errRefused.Error() {
		t.Fatalf("after a refused opening: %s %q, want offline %q", st.Status, st.Reason, errRefused)
	}
	// The third opening plays: online from the first picture.
	st := nextState(t, states)
	if st.Status != StatusOnline || st.Reason != "" {
		t.Fatalf("after the session opened: %s %q, want online", st.Status, st.Reason)
	}
	if st.Reconnects != 2 || st.Width != 320 || st.Height != 180 || st.Codec == "" {
		t.Errorf("online state %+v: want 2 reconnects and the clip's 320x180 video", st)
	}
	var got []*stream.AccessUnit
	for len(got) < n {
		aus, err := viewer.Next(ctx, nil)
		if err != nil {
			t.Fatalf("viewer: %v after %d of %d pictures", err, len(got), n)
		}
		got = append(got, aus...)
	}
	if !got[0].Key {
		t.Error("the hub's first picture is not a keyframe")
	}

	// The camera drops the session: offline with its reason, then one
	// more refusal, then the second session plays on the same timeline.
	first.end(errors.New("the camera went away"))
	if st := nextState(t, states); st.Status != StatusOffline || st.Reason != "the camera went away" {
		t.Fatalf("after the session ended: %s %q", st.Status, st.Reason)
	}
	if st := nextState(t, states); st.Status != StatusOffline || st.Reason != errRefused.Error() {
		t.Fatalf("after a refusal: %s %q", st.Status, st.Reason)
	}
	if st := nextState(t, states); st.Status != StatusOnline || st.Reconnects != 4 {
		t.Fatalf("after the second session opened: %s, %d reconnects, want online after 4", st.Status, st.Reconnects)
	}
	aus, err := viewer.Next(ctx, nil)
	if err != nil || len(aus) == 0 || aus[0].DTS <= got[len(got)-1].DTS {
		t.Fatalf("second session: %d pictures (%v); the timeline must run on", len(aus), err)
	}

	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v, want nil once stopped", err)
	}
	if first.closes != 1 || second.closes != 1 {
		t.Errorf("sessions closed %d and %d times, want once each", first.closes, second.closes)
	}
	// Each wait is the backoff with ±50 % jitter, doubling per failure up
	// to the maximum; after the first session it starts over only when
	// that session was up for more than 10 s, which it was not.
	opens := src.openTimes()
	for i, want := range []time.Duration{minBackoff, 2 * minBackoff, 4 * minBackoff, 4 * minBackoff} {
		if gap := opens[i+1].Sub(opens[i]); gap < want/2 {
			t.Errorf("wait before opening %d: %s, want at least %s", i+2, gap, want/2)
		}
	}
}
