package pull

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// The tests here pull simulated cameras over real RTSP on loopback while
// camsim misbehaves, and report recovery times on lines that start with
// "RELIABILITY:".

const simPassword = "s3cret-cam"

// startCamsim runs n simulated cameras (with credentials) until the test
// ends.
func startCamsim(t *testing.T, n int) *camsim.Sim {
	t.Helper()
	sim, err := camsim.New(camsim.Config{N: n, Addr: "127.0.0.1:0", Username: "operator7", Password: simPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testtool.Run(t, 30*time.Second, sim.Run))
	return sim
}

// countingSource is an RTSP source that notes when each opening starts.
type countingSource struct {
	RTSP
	mu    *sync.Mutex
	opens *[]time.Time
}

func (c countingSource) Open(ctx context.Context) (Session, error) {
	c.mu.Lock()
	*c.opens = append(*c.opens, time.Now())
	c.mu.Unlock()
	return c.RTSP.Open(ctx)
}

// pulled is a supervisor at work on one camera, with its states.
type pulled struct {
	s      *Supervisor
	hub    *stream.Hub
	states chan State
	mu     sync.Mutex
	opens  []time.Time
}

// supervise runs a supervisor of url (cfg's URL, Hub and OnState filled
// in) until the test ends.
func supervise(t *testing.T, url string, cfg Config) *pulled {
	t.Helper()
	p := &pulled{hub: stream.NewHub(stream.HubOptions{}), states: make(chan State, 1000)}
	cfg.URL, cfg.Hub = url, p.hub
	cfg.OnState = func(st State) {
		select {
		case p.states <- st:
		default: // a test that does not read them loses some; State() still tells
		}
	}
	cfg.Source = countingSource{RTSP: RTSP{URL: url, Client: cfg.Client, DialTimeout: cfg.DialTimeout, ReadTimeout: cfg.ReadTimeout},
		mu: &p.mu, opens: &p.opens}
	p.s = NewSupervisor(cfg)
	t.Cleanup(testtool.Run(t, 30*time.Second, p.s.Run))
	return p
}

// wait waits for a state of status want and returns it, failing the test
// after d.
func (p *pulled) wait(t *testing.T, want Status, d time.Duration) State {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case st := <-p.states:
			if st.Status == want {
				return st
			}
		case <-deadline:
			t.Fatalf("no %s state within %v; now %+v", want, d, p.s.State())
		}
	}
}

// waitReason waits for an offline state whose reason has want in it.
func (p *pulled) waitReason(t *testing.T, want string, d time.Duration) State {
	t.Helper()
	deadline := time.After(d)
	var seen []string
	for {
		select {
		case st := <-p.states:
			if st.Status == StatusOffline {
				if strings.Contains(st.Reason, want) {
					return st
				}
				seen = append(seen, st.Reason)
			}
		case <-deadline:
			t.Fatalf("no offline state with %q within %v; reasons seen %q", want, d, seen)
		}
	}
}

func (p *pulled) openings() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.opens)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// noLeaks checks, once the test and its cleanups are done, that every
// goroutine the test started has ended and that no file descriptor is
// left open (waiting a while for connections closing).
func noLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	before := openFDs(t)
	t.Cleanup(func() {
		goleak.VerifyNone(t, opt)
		deadline := time.Now().Add(10 * time.Second)
		for n := openFDs(t); n > before; n = openFDs(t) {
			if time.Now().After(deadline) {
				t.Errorf("%d file descriptors open after the test, %d before", n, before)
				return
			}
			<-time.After(20 * time.Millisecond) // fds close as the runtime gets to them: no event to wait on
		}
	})
}

// percentile returns the p-th percentile (0..1) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// A camera whose RTSP server answers slowly, with garbage, or closes the
// connection after DESCRIBE: the stream is offline with a reason that
// says what went wrong (and no password), retried with growing waits, and
// online again soon after the fault clears. Nothing of the failed
// attempts is left running or open. Both client libraries.
func TestRTSPServerFaults(t *testing.T) {
	for _, tc := range []struct {
		client Client
		fault  camsim.Fault
		reason string // in the offline reason
	}{
		{ClientGortsplib, camsim.FaultSlow, "did not answer DESCRIBE within"},
		{ClientGortsplib, camsim.FaultGarbage, "DESCRIBE: the camera closed the connection"},
		{ClientGortsplib, camsim.FaultDescribeClose, "SETUP: the camera closed the connection"},
		{ClientVDK, camsim.FaultSlow, "did not finish the RTSP handshake"},
		{ClientVDK, camsim.FaultGarbage, "closed the connection during the RTSP handshake"},
		{ClientVDK, camsim.FaultDescribeClose, "closed the connection during the RTSP handshake"},
	} {
		t.Run(string(tc.client)+"/"+string(tc.fault), func(t *testing.T) {
			noLeaks(t)
			sim := startCamsim(t, 1)
			sim.SetFault(1, tc.fault)
			cfg := Config{Client: tc.client, DialTimeout: time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: 800 * time.Millisecond}
			if tc.fault == camsim.FaultSlow {
				// Each request answered SlowDelay late, bounded by DialTimeout.
				cfg.DialTimeout = camsim.SlowDelay / 3
			}
			p := supervise(t, sim.URL(1, camsim.StreamSub), cfg)
			var recovery []time.Duration
			const reps = 5
			for rep := range reps {
				// The reason the fault gives (after the one of the dropped
				// session, in the repetitions).
				st := p.waitReason(t, tc.reason, 30*time.Second)
				if strings.Contains(st.Reason, simPassword) {
					t.Fatalf("offline reason %q has the password", st.Reason)
				}
				if rep == 0 {
					t.Logf("%s: offline: %s", tc.fault, st.Reason)
				}
				// Retried, with growing waits between the attempts.
				n0 := len(p.openings())
				deadline := time.Now().Add(30 * time.Second)
				for len(p.openings()) < n0+3 {
					if time.Now().After(deadline) {
						t.Fatalf("%d openings in 30 s, want retries", len(p.openings())-n0)
					}
					<-time.After(20 * time.Millisecond) // polled: the openings have no event
				}
				if st := p.s.State(); st.Status != StatusOffline {
					t.Fatalf("state %+v while the fault is on", st)
				}
				sim.SetFault(1, camsim.FaultNone)
				cleared := time.Now()
				p.wait(t, StatusOnline, 30*time.Second)
				recovery = append(recovery, time.Since(cleared))
				if rep < reps-1 {
					sim.SetFault(1, camsim.FaultDisconnect) // drop the session, then refuse as the fault says
					sim.SetFault(1, tc.fault)
				}
			}
			opens := p.openings()
			gaps := make([]time.Duration, 0, len(opens))
			for i := 1; i < len(opens); i++ {
				gaps = append(gaps, opens[i].Sub(opens[i-1]))
			}
			if g := percentile(gaps, 0.95); g < cfg.MinBackoff/2 {
				t.Errorf("openings %v apart (p95): no backoff", g)
			}
			t.Logf("RELIABILITY: rtsp fault %s (%s): online again after the fault cleared: p50 %v, p95 %v, max %v (%d repetitions, backoff %v..%v)",
				tc.fault, tc.client, percentile(recovery, 0.5).Round(time.Millisecond), percentile(recovery, 0.95).Round(time.Millisecond),
				slices.Max(recovery).Round(time.Millisecond), reps, cfg.MinBackoff, cfg.MaxBackoff)
		})
	}
}

// A camera that sends no keyframe for a while: its pictures are kept
// while they decode (the session goes on until the keyframe watchdog
// gives up), the stream is then offline with a reason about keyframes, and
// is reopened at the pace of the watchdog, not in a loop; a viewer that
// joins meanwhile gets nothing until a keyframe; once the fault clears,
// pictures come again from a keyframe. Both client libraries.
func TestNoKeyframes(t *testing.T) {
	for _, client := range []Client{ClientGortsplib, ClientVDK} {
		t.Run(string(client), func(t *testing.T) { noKeyframes(t, client) })
	}
}

func noKeyframes(t *testing.T, client Client) {
	noLeaks(t)
	sim := startCamsim(t, 1)
	const keyTimeout = 3 * time.Second
	p := supervise(t, sim.URL(1, camsim.StreamSub), Config{Client: client, KeyTimeout: keyTimeout, MaxKeyTimeout: keyTimeout,
		StallTimeout: 500 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	p.wait(t, StatusOnline, 30*time.Second)
	sim.SetFault(1, camsim.FaultNoKey)
	faultAt := time.Now()
	st := p.wait(t, StatusOffline, 30*time.Second)
	if !strings.Contains(st.Reason, "keyframe") {
		t.Errorf("offline reason %q, want one about keyframes", st.Reason)
	}
	// A viewer that joins while no keyframe comes waits for one.
	v := p.hub.Subscribe()
	defer v.Close()
	// The fault lasts a few key timeouts: in a minute the same would hold.
	const faultFor = 4 * keyTimeout
	n0 := len(p.openings())
	<-time.After(faultFor - time.Since(faultAt)) // the fault's length is the point of the test
	reopened := len(p.openings()) - n0
	// Each reopened session waits keyTimeout for a keyframe (the stall
	// timer does not cut it short: pictures come): not more than one
	// opening a keyTimeout, plus the backoff.
	if max := int(faultFor/keyTimeout) + 1; reopened > max {
		t.Errorf("%d openings in %v without keyframes, want at most %d", reopened, faultFor, max)
	}
	if got, err := v.TryNext(nil); err != nil || len(got) > 0 {
		t.Errorf("a viewer that joined without a keyframe got %d pictures (%v)", len(got), err)
	}
	sim.SetFault(1, camsim.FaultNone)
	cleared := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := v.Next(ctx, nil)
	if err != nil {
		t.Fatalf("no picture after the fault cleared: %v", err)
	}
	if !got[0].Key {
		t.Error("the first picture after the fault is not a keyframe")
	}
	p.wait(t, StatusOnline, 30*time.Second)
	t.Logf("RELIABILITY: nokey (%s): pictures again %v after the fault cleared; %d openings in %v without keyframes (key timeout %v)",
		client, time.Since(cleared).Round(time.Millisecond), reopened, faultFor, keyTimeout)
}

// A reconnect storm: 100 cameras dropped at once, refusing for a while,
// then back. Every supervisor comes back; the dials are spread by the
// backoff's jitter instead of coming all at once, and the process keeps
// answering meanwhile. Both client libraries.
func TestReconnectStorm(t *testing.T) {
	for _, client := range []Client{ClientGortsplib, ClientVDK} {
		t.Run(string(client), func(t *testing.T) { reconnectStorm(t, client) })
	}
}

func reconnectStorm(t *testing.T, client Client) {
	noLeaks(t)
	const n = 100
	sim := startCamsim(t, n)
	cfg := Config{Client: client, MinBackoff: 500 * time.Millisecond, MaxBackoff: 4 * time.Second}
	ps := make([]*pulled, n)
	for i := range ps {
		ps[i] = supervise(t, sim.URL(i+1, camsim.StreamSub), cfg)
	}
	for _, p := range ps {
		p.wait(t, StatusOnline, 60*time.Second)
	}

	// Something unrelated the process does: answer HTTP on loopback.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	probeCtx, stopProbe := context.WithCancel(context.Background())
	var latencies []time.Duration
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-probeCtx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			res, err := srv.Client().Get(srv.URL)
			if err != nil {
				continue
			}
			res.Body.Close()
			latencies = append(latencies, time.Since(start))
		}
	}()

	opensBefore := make([]int, n)
	for i, p := range ps {
		opensBefore[i] = len(p.openings())
	}
	stormAt := time.Now()
	for i := 1; i <= n; i++ {
		sim.SetFault(i, camsim.FaultDisconnect)
	}
	for _, p := range ps {
		p.wait(t, StatusOffline, 30*time.Second)
	}
	// Refusing for 3 s: several rounds of retries.
	<-time.After(3*time.Second - time.Since(stormAt)) // the outage's length is the point of the test
	for i := 1; i <= n; i++ {
		sim.SetFault(i, camsim.FaultNone)
	}
	cleared := time.Now()
	recovery := make([]time.Duration, n)
	for i, p := range ps {
		p.wait(t, StatusOnline, 60*time.Second)
		// Waits run in order, so read when each came back from its state.
		recovery[i] = p.s.State().Since.Sub(cleared)
	}
	stopProbe()
	<-probed

	// The dials of the storm, in windows of 100 ms.
	windows := map[int64]int{}
	var first, last time.Time
	total := 0
	for i, p := range ps {
		for _, at := range p.openings()[opensBefore[i]:] {
			w := int64(at.Sub(stormAt) / (100 * time.Millisecond))
			windows[w]++
			total++
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
	}
	peak := 0
	for _, c := range windows {
		peak = max(peak, c)
	}
	t.Logf("RELIABILITY: reconnect storm of %d cameras (%s; 3 s refused, backoff %v..%v ±50%%): back online after the fault cleared: p50 %v, p95 %v, max %v",
		n, client, cfg.MinBackoff, cfg.MaxBackoff, percentile(recovery, 0.5).Round(time.Millisecond),
		percentile(recovery, 0.95).Round(time.Millisecond), slices.Max(recovery).Round(time.Millisecond))
	t.Logf("RELIABILITY: reconnect storm: %d dials over %v in %d windows of 100 ms, at most %d in one",
		total, last.Sub(first).Round(time.Millisecond), len(windows), peak)
	if len(latencies) > 0 {
		t.Logf("RELIABILITY: reconnect storm: HTTP on loopback meanwhile: p50 %v, p99 %v, max %v (%d requests)",
			percentile(latencies, 0.5).Round(time.Microsecond), percentile(latencies, 0.99).Round(time.Microsecond),
			slices.Max(latencies).Round(time.Microsecond), len(latencies))
	}
	// Without jitter each round of retries falls in a window or two (the
	// storm's dials fill about 16 windows, its HTTP p99 grows tenfold);
	// with ±50 % they spread over each round's whole wait: 0.25..0.75 s,
	// 0.5..1.5 s, 1..3 s, 2..6 s, some 50 windows.
	if len(windows) < 30 || peak > n*3/4 {
		t.Errorf("the storm's dials fill %d windows of 100 ms, at most %d in one: the retries are not spread", len(windows), peak)
	}
	if len(latencies) < 10 {
		t.Errorf("only %d HTTP requests answered during the storm", len(latencies))
	} else if p99 := percentile(latencies, 0.99); p99 > 2*time.Second {
		t.Errorf("HTTP p99 %v during the storm: the process did not stay responsive", p99)
	}
}
