package gb28181

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"gridwatch"
	"gridwatch/camera/record"
	"gridwatch/camera/stream"
)

// Fetches bring a device's recording into gridwatch's own footage: the
// parts of a range the footage index does not hold are played back from
// the device (faster than real time where the device can) and recorded
// at the device's times, so they show on the timeline, play, link to
// incidents and export like any footage — an export can then take what
// the device held.
type Fetches struct {
	Playbacks *Playbacks
	Footage   *record.Store
	// Record records a hub as camera's footage (record.Recorder.Record).
	Record func(ctx context.Context, camera int64, hub *stream.Hub) error
	// Scale is the playback speed asked of the device (default 4).
	Scale  float64
	Logger *slog.Logger

	mu   sync.Mutex
	runs map[int64]*Fetch
	wg   sync.WaitGroup
	ctx  context.Context
}

// Fetch is one camera's fetch, as the API shows it.
type Fetch struct {
	Camera int64     `json:"camera_id"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// Ranges are the parts not held by gridwatch, fetched in order; Done
	// is how far the fetch has come (device time).
	Ranges  [][2]time.Time `json:"ranges"`
	Done    time.Time      `json:"done_until"`
	Running bool           `json:"running"`
	Error   string         `json:"error,omitempty"`
	Started time.Time      `json:"started"`
	Ended   *time.Time     `json:"ended,omitempty"`
}

// maxFetch bounds one fetch's range.
const maxFetch = 6 * time.Hour

// Run keeps the fetches until ctx ends.
func (f *Fetches) Run(ctx context.Context) error {
	f.mu.Lock()
	f.ctx = ctx
	if f.runs == nil {
		f.runs = map[int64]*Fetch{}
	}
	f.mu.Unlock()
	<-ctx.Done()
	f.wg.Wait()
	return nil
}

// Get is camera's latest fetch.
func (f *Fetches) Get(camera int64) (Fetch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[camera]
	if r == nil {
		return Fetch{}, gridwatch.Errorf(gridwatch.ENotFound, "no fetch from the device of camera %d", camera)
	}
	return *r, nil
}

// Start fetches camera's recording from from to to from its device.
func (f *Fetches) Start(ctx context.Context, camera int64, device, channel string, from, to time.Time) (Fetch, error) {
	if !to.After(from) || to.Sub(from) > maxFetch {
		return Fetch{}, gridwatch.Errorf(gridwatch.EInvalid, "to: the range must be after from and at most %s", maxFetch).WithDetails(map[string]any{"field": "to"})
	}
	if to.After(time.Now()) {
		return Fetch{}, gridwatch.Errorf(gridwatch.EInvalid, "to: %s is in the future", to.Format(time.RFC3339)).WithDetails(map[string]any{"field": "to"})
	}
	recs, _, err := f.Footage.List(ctx, camera, from, to)
	if err != nil {
		return Fetch{}, err
	}
	// Only what the device holds: a range it did not record would be
	// dated from its first picture, wrongly.
	held, err := f.Playbacks.Server.Records(ctx, device, channel, from, to)
	if err != nil {
		return Fetch{}, err
	}
	ranges := intersect(missing(recs, from, to), held)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx == nil {
		return Fetch{}, gridwatch.Errorf(gridwatch.EUnavailable, "fetching from devices is not running")
	}
	if r := f.runs[camera]; r != nil && r.Running {
		return Fetch{}, gridwatch.Errorf(gridwatch.EConflict, "camera %d is fetching %s to %s from its device already", camera, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	now := time.Now()
	r := &Fetch{Camera: camera, From: from, To: to, Ranges: ranges, Done: from, Running: len(ranges) > 0, Started: now}
	if len(ranges) == 0 {
		r.Ended = &now
	}
	f.runs[camera] = r
	if len(ranges) > 0 {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			err := f.run(f.ctx, r, device, channel)
			f.mu.Lock()
			defer f.mu.Unlock()
			end := time.Now()
			r.Running, r.Ended = false, &end
			if err != nil {
				r.Error = err.Error()
			}
		}()
	}
	return *r, nil
}

// missing is what of [from, to) the recordings do not cover, in order;
// pieces under a second are left alone.
func missing(recs []record.Recording, from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	at := from
	for _, r := range recs { // List returns them by start
		if r.Start.After(at) {
			out = append(out, [2]time.Time{at, minTime(r.Start, to)})
		}
		if r.End.After(at) {
			at = r.End
		}
		if !at.Before(to) {
			break
		}
	}
	if at.Before(to) {
		out = append(out, [2]time.Time{at, to})
	}
	kept := out[:0]
	for _, p := range out {
		if p[1].Sub(p[0]) >= time.Second {
			kept = append(kept, p)
		}
	}
	return kept
}

// intersect is the parts of the ranges the device's recordings cover, in
// order (one playback each), pieces under a second left alone.
func intersect(ranges [][2]time.Time, held []DeviceRecording) [][2]time.Time {
	var out [][2]time.Time
	for _, rg := range ranges {
		for _, h := range held {
			a, b := maxTime(rg[0], h.From), minTime(rg[1], h.To)
			if b.Sub(a) >= time.Second {
				out = append(out, [2]time.Time{a, b})
			}
		}
	}
	slices.SortFunc(out, func(x, y [2]time.Time) int { return x[0].Compare(y[0]) })
	// Recordings that overlap (a device listing a time and an alarm
	// recording of the same minutes) are fetched once.
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && !r[0].After(merged[n-1][1]) {
			merged[n-1][1] = maxTime(merged[n-1][1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (f *Fetches) run(ctx context.Context, r *Fetch, device, channel string) error {
	for _, rg := range r.Ranges {
		if err := f.fetch(ctx, r, device, channel, rg[0], rg[1]); err != nil {
			return err
		}
	}
	return nil
}

// fetch plays one range back and records it at the device's times.
func (f *Fetches) fetch(ctx context.Context, r *Fetch, device, channel string, from, to time.Time) error {
	pb, err := f.Playbacks.start(ctx, r.Camera, device, channel, from, to, "", true)
	if err != nil {
		return err
	}
	defer f.Playbacks.Stop(pb.ID)
	hub, _, release, err := f.Playbacks.Acquire(pb.ID)
	if err != nil {
		return err
	}
	defer release()
	scale := f.Scale
	if scale == 0 {
		scale = 4
	}
	retimed := stream.NewHub(stream.HubOptions{})
	defer retimed.Close()
	v := hub.SubscribeAV()
	defer v.Close()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	recorded := make(chan error, 1)
	go func() { recorded <- f.Record(rctx, r.Camera, retimed) }()
	sped := false
	var first int64 = -1
	// A jump in the device's times (a file boundary restarting them)
	// is placed one picture on, not as a gap or a step back.
	var shift, last, step int64 = 0, -1, stream.ClockRate / 25
	f.mu.Lock()
	r.Done = from
	f.mu.Unlock()
	publish := func(c *stream.AccessUnit) {
		retimed.Publish(c)
		if c.Audio == nil {
			f.mu.Lock()
			r.Done = c.Received
			f.mu.Unlock()
		}
	}
	// The first pictures, held until it is known whether sound comes
	// with them (settled).
	var early []*stream.AccessUnit
	settled := false
	flush := func() {
		for _, c := range early {
			publish(c)
		}
		early, settled = nil, true
	}
	var batch []*stream.AccessUnit
	for {
		nctx, cancel := context.WithTimeout(ctx, time.Minute)
		batch, err = v.Next(nctx, batch[:0])
		cancel()
		if err != nil {
			st, _ := f.Playbacks.Get(pb.ID)
			flush()
			stop()
			rerr := <-recorded
			if st.Failure != "" && to.Sub(f.done(r)) <= 1500*time.Millisecond {
				// The device closed the stream at its end before saying so.
				return rerr
			}
			if st.Failure != "" {
				return fmt.Errorf("%s %s into the range", st.Failure, f.done(r).Sub(from).Round(time.Second))
			}
			if st.Ended {
				// The device says it played it all: it must have.
				if short := to.Sub(f.done(r)); rerr == nil && short > 1500*time.Millisecond {
					return fmt.Errorf("the device ended the recording %s before the range's end", short.Round(100*time.Millisecond))
				}
				return rerr
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the device stopped sending %s into the range: %v", f.done(r).Sub(from).Round(time.Second), err)
		}
		if !sped && scale != 1 {
			// Faster than real time, when the device can.
			if _, err := f.Playbacks.Control(ctx, pb.ID, Command{Op: "speed", Scale: scale}); err == nil {
				sped = true
			} else {
				sped, scale = true, 1
			}
		}
		for _, au := range batch {
			if first < 0 {
				if au.Audio != nil {
					continue
				}
				first = au.DTS
				// Without sound announced (the playback's hub is told
				// before its first picture), none to wait for.
				settled = hub.Audio() == nil
			}
			c := &stream.AccessUnit{DTS: au.DTS, PTS: au.PTS, Duration: au.Duration, NALUs: au.NALUs, Key: au.Key, Params: au.Params, Payload: au.Payload}
			at := c.DTS - first
			if au.Audio != nil {
				at = au.DTS*stream.ClockRate/int64(au.Audio.ClockRate()) - first
				// Frames carry their hub's track.
				retimed.SetAudio(au.Audio)
				c.Audio = retimed.Audio()
			} else {
				if last >= 0 {
					if d := at + shift - last; d <= 0 || d > 5*stream.ClockRate {
						shift = last + step - at
					} else {
						step = d
					}
				}
				last = at + shift
			}
			at += shift
			c.Received = from.Add(time.Duration(at) * time.Second / stream.ClockRate)
			if !c.Received.Before(to) {
				flush()
				stop()
				return <-recorded
			}
			if !settled {
				// The recorder decides at a keyframe whether a file has a
				// sound track, and the sound may come a little after the
				// first picture: the pictures wait (a fetch is not live)
				// until it comes, or a second of them has none.
				switch {
				case au.Audio != nil:
					settled = true
				case len(early) > 0 && c.Received.Sub(early[0].Received) >= time.Second:
					settled = true
				default:
					early = append(early, c)
					continue
				}
				flush()
			}
			publish(c)
		}
	}
}

func (f *Fetches) done(r *Fetch) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return r.Done
}
