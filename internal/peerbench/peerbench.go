// Package peerbench measures what relaying live video costs gridwatch and
// its two open-source peers, go2rtc and MediaMTX, under the same load, one
// server after another in one run (`make bench-peers`).
//
// The cameras (package camsim: H.264 640x360, 25 fps, 1 s GOP, 0.5 Mbit/s)
// and the viewers run in the benchmark's process; each server runs in its
// own, and only that process is measured, from /proc: CPU time (user +
// system) over a steady window, resident memory, context switches and
// write-class system calls. Every viewer speaks the same few lines of RTSP
// over TCP (Player), so no server is favoured by its own client.
//
// Nothing of the peers is in this repository: make bench-peers builds them
// from source snapshots kept elsewhere (PEERS_SRC) and hands the binaries
// over in GRIDWATCH_PEERS_BIN.
package peerbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Load is a number of cameras, each watched by a number of viewers.
type Load struct{ Cameras, Viewers int }

func (l Load) String() string { return fmt.Sprintf("%dx%d", l.Cameras, l.Viewers) }

// Viewer is one viewer of a camera, whatever it plays over.
type Viewer interface {
	// Run reads until the viewer is closed or its stream fails.
	Run() error
	// FirstKeyframe is closed once the first keyframe has arrived whole.
	FirstKeyframe() <-chan struct{}
	// Count is the pictures received so far.
	Count() int64
	Close() error
}

// The protocols viewers play over.
const (
	ProtoRTSP = "rtsp" // interleaved TCP (Player)
	ProtoMSE  = "mse"  // fMP4 over a WebSocket, as browsers play (DialMSE)
)

// Options tune a measurement; zero values take the defaults.
type Options struct {
	// Protocol is ProtoRTSP (the default) or ProtoMSE; a server without MSE
	// cannot be measured over it.
	Protocol string
	Warmup   time.Duration // after every viewer has its first picture (default 5 s)
	Window   time.Duration // the steady window measured (default 20 s)
	Joins    int           // late joiners timed after the window (default 20)
	FPS      float64       // the cameras' frame rate (default 25)
	// OnWindow, when set, runs in its own goroutine as the steady window
	// starts (to profile the server over it, say).
	OnWindow func(s *Server, window time.Duration)
}

// Result is one server under one load.
type Result struct {
	Server   string
	Load     Load
	Protocol string
	Cores    float64 // CPU time per second of the steady window
	RSS      int64   // the largest resident set seen in the window, bytes
	CtxSw    float64 // context switches per second
	// WritesPerPicture is write system calls per picture delivered to a
	// viewer.
	WritesPerPicture float64
	// FPS is the pictures each viewer received per second, on average:
	// a server that fell behind, or dropped viewers, shows here.
	FPS float64
	// Joins are the late joiners' times from dialling to the end of their
	// first keyframe, sorted.
	Joins []time.Duration
	// Runs is how many measurements Merge made this of; CoresRange and
	// RSSRange their lowest and highest cores and RSS.
	Runs       int
	CoresRange [2]float64
	RSSRange   [2]int64
}

// Merge makes one result of several runs of a server under a load: the
// median of each figure (cores, RSS, … each on its own), the ranges of
// cores and RSS, and every late joiner.
func Merge(runs []Result) Result {
	if len(runs) == 0 {
		return Result{}
	}
	median := func(f func(Result) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	m := Result{Server: runs[0].Server, Load: runs[0].Load, Protocol: runs[0].Protocol, Runs: len(runs)}
	m.Cores = median(func(r Result) float64 { return r.Cores })
	m.RSS = int64(median(func(r Result) float64 { return float64(r.RSS) }))
	m.CtxSw = median(func(r Result) float64 { return r.CtxSw })
	m.WritesPerPicture = median(func(r Result) float64 { return r.WritesPerPicture })
	m.FPS = median(func(r Result) float64 { return r.FPS })
	m.CoresRange = [2]float64{runs[0].Cores, runs[0].Cores}
	m.RSSRange = [2]int64{runs[0].RSS, runs[0].RSS}
	for _, r := range runs {
		m.CoresRange = [2]float64{min(m.CoresRange[0], r.Cores), max(m.CoresRange[1], r.Cores)}
		m.RSSRange = [2]int64{min(m.RSSRange[0], r.RSS), max(m.RSSRange[1], r.RSS)}
		m.Joins = append(m.Joins, r.Joins...)
	}
	slices.Sort(m.Joins)
	return m
}

// JoinP returns the q-quantile (0..1) of the late joiners' times.
func (r Result) JoinP(q float64) time.Duration {
	if len(r.Joins) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Joins)) + 0.5)
	return r.Joins[min(max(i-1, 0), len(r.Joins)-1)]
}

// Measure plays every camera of s to ld.Viewers viewers, waits for each to
// have its first picture, then measures s's process over the window; then
// times o.Joins late joiners, one at a time, at random points of the GOP.
func Measure(ctx context.Context, s *Server, ld Load, o Options) (Result, error) {
	if o.Warmup == 0 {
		o.Warmup = 5 * time.Second
	}
	if o.Window == 0 {
		o.Window = 20 * time.Second
	}
	if o.Joins == 0 {
		o.Joins = 20
	}
	if o.FPS == 0 {
		o.FPS = 25
	}
	if o.Protocol == "" {
		o.Protocol = ProtoRTSP
	}
	res := Result{Server: s.Name, Load: ld, Protocol: o.Protocol}
	dial := func(ctx context.Context, cam int) (Viewer, error) {
		switch o.Protocol {
		case ProtoRTSP:
			return Dial(ctx, s.URL(cam), s.User, s.Password)
		case ProtoMSE:
			if s.MSE == nil {
				return nil, fmt.Errorf("%s has no MSE", s.Name)
			}
			return DialMSE(ctx, s.MSE, cam)
		}
		return nil, fmt.Errorf("no protocol %q", o.Protocol)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu      sync.Mutex
		players []Viewer
		runErr  error
		wg      sync.WaitGroup
	)
	defer func() {
		for _, p := range players {
			p.Close()
		}
		wg.Wait()
	}()
	// Connect the viewers a camera at a time, in parallel within a camera,
	// as a wall of screens does.
	for cam := 1; cam <= ld.Cameras; cam++ {
		for range ld.Viewers {
			hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
			p, err := dial(hctx, cam)
			hcancel()
			if err != nil {
				return res, fmt.Errorf("%s camera %d: %w", s.Name, cam, err)
			}
			players = append(players, p)
			wg.Go(func() {
				err := p.Run()
				if ctx.Err() == nil {
					mu.Lock()
					runErr = cmpErr(runErr, fmt.Errorf("%s camera %d: a viewer's stream ended: %v", s.Name, cam, err))
					mu.Unlock()
					cancel()
				}
			})
		}
	}
	for _, p := range players {
		select {
		case <-p.FirstKeyframe():
		case <-time.After(30 * time.Second):
			return res, fmt.Errorf("%s: a viewer had no keyframe in 30 s", s.Name)
		case <-ctx.Done():
			return res, firstErr(&mu, &runErr, ctx)
		}
	}
	select {
	case <-time.After(o.Warmup):
	case <-ctx.Done():
		return res, firstErr(&mu, &runErr, ctx)
	}

	pictures := func() (n int64) {
		for _, p := range players {
			n += p.Count()
		}
		return n
	}
	s0, err := Take(s.Pid())
	if err != nil {
		return res, err
	}
	p0 := pictures()
	if o.OnWindow != nil {
		var hook sync.WaitGroup
		hook.Go(func() { o.OnWindow(s, o.Window) })
		defer hook.Wait()
	}
	maxRSS := s0.RSS
	tick := time.NewTicker(time.Second)
	end := time.After(o.Window)
	var s1 Sample
loop:
	for {
		select {
		case <-tick.C:
			s, err := Take(s.Pid())
			if err != nil {
				tick.Stop()
				return res, err
			}
			maxRSS = max(maxRSS, s.RSS)
		case <-end:
			break loop
		case <-ctx.Done():
			tick.Stop()
			return res, firstErr(&mu, &runErr, ctx)
		}
	}
	tick.Stop()
	if s1, err = Take(s.Pid()); err != nil {
		return res, err
	}
	p1 := pictures()
	wall := s1.At.Sub(s0.At).Seconds()
	res.Cores = (s1.CPU - s0.CPU).Seconds() / wall
	res.RSS = max(maxRSS, s1.RSS)
	res.CtxSw = float64(s1.CtxSw-s0.CtxSw) / wall
	if d := p1 - p0; d > 0 {
		res.WritesPerPicture = float64(s1.Writes-s0.Writes) / float64(d)
	}
	res.FPS = float64(p1-p0) / wall / float64(len(players))

	// Late joiners, with the load still on: a random wait of up to one GOP
	// between them, so that they land anywhere in it.
	rng := rand.New(rand.NewPCG(uint64(ld.Cameras), uint64(ld.Viewers)))
	for i := range o.Joins {
		select {
		case <-time.After(time.Duration(rng.Float64() * float64(time.Second))):
		case <-ctx.Done():
			return res, firstErr(&mu, &runErr, ctx)
		}
		jctx, jcancel := context.WithTimeout(ctx, 30*time.Second)
		d, err := join(jctx, func(ctx context.Context) (Viewer, error) { return dial(ctx, 1+i%ld.Cameras) })
		jcancel()
		if err != nil {
			return res, fmt.Errorf("%s: late joiner %d: %w", s.Name, i+1, err)
		}
		res.Joins = append(res.Joins, d)
	}
	slices.Sort(res.Joins)
	if err := firstErr(&mu, &runErr, ctx); err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	return res, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func firstErr(mu *sync.Mutex, runErr *error, ctx context.Context) error {
	mu.Lock()
	defer mu.Unlock()
	if *runErr != nil {
		return *runErr
	}
	return ctx.Err()
}
