package live

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
)

// Conn is the message connection an MSE viewer is served over: a WebSocket.
type Conn interface {
	WriteText(ctx context.Context, msg []byte) error
	WriteBinary(ctx context.Context, msg []byte) error
}

// MSEMessage is a text message of the MSE protocol. A "codec" message
// comes before every initialisation segment (the first, and again when the
// camera's parameters change): Mime is what to give
// MediaSource.addSourceBuffer. A "status" message says where the camera
// stands, at the start and on every change.
type MSEMessage struct {
	Type   string `json:"type"`
	Mime   string `json:"mime,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	// Audio names the audio track the fragments carry ("AAC 16 kHz
	// mono"; G.711 goes as FLAC, mime "flac").
	Audio string      `json:"audio,omitempty"`
	State *pull.State `json:"state,omitempty"`
}

// MSEOptions are what a viewer asked for.
type MSEOptions struct {
	// Audio: the viewer plays audio, so the camera's AAC or Opus goes into
	// the fragments (a browser whose MediaSource refuses the combined type
	// asks without it).
	Audio bool
	// WriteTimeout bounds one write (0: the package's WriteTimeout).
	WriteTimeout time.Duration
}

// statusEvery is how often an unchanged status is repeated.
const statusEvery = 5 * time.Second

// WriteTimeout bounds one write to a viewer. A viewer that cannot take a
// message in this time is gone.
const WriteTimeout = 10 * time.Second

// ServeMSE streams a hub to one MSE viewer until ctx ends or the stream
// does: text messages (MSEMessage), then binary ones, an initialisation
// segment and fragments (moof+mdat), one picture per fragment, with as many
// fragments per message as were pending: a viewer that keeps up gets one
// message per picture, and the cached group of pictures at the start comes
// as one message. state reports the stream's state for status messages.
func ServeMSE(ctx context.Context, hub *stream.Hub, conn Conn, state func() (pull.State, bool), opts MSEOptions) error {
	v := hub.Subscribe()
	if opts.Audio {
		v = hub.SubscribeAV()
	}
	defer v.Close()
	ctx, cancel := context.WithCancel(ctx)

	// A write that takes longer than WriteTimeout ends the viewer: one
	// timer, set again for each write and stopped after it, cancels ctx.
	// A context with a deadline a write was an eighth of the MSE relay's
	// CPU at 500 viewers.
	writeTimeout := cmp.Or(opts.WriteTimeout, WriteTimeout)
	var wmu sync.Mutex
	var stalled atomic.Bool
	watchdog := time.AfterFunc(time.Hour, func() { stalled.Store(true); cancel() })
	watchdog.Stop()
	defer watchdog.Stop()
	write := func(text bool, msg []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		watchdog.Reset(writeTimeout)
		defer watchdog.Stop()
		var err error
		if text {
			err = conn.WriteText(ctx, msg)
		} else {
			err = conn.WriteBinary(ctx, msg)
		}
		if err != nil && stalled.Load() {
			return fmt.Errorf("live: a write to the viewer took over %v: %w", writeTimeout, err)
		}
		return err
	}
	sendState := func(st pull.State) error {
		b, _ := json.Marshal(MSEMessage{Type: "status", State: &st})
		return write(true, b)
	}

	// Status messages come from a poll: the supervisor's state changes
	// rarely and a viewer needs to hear of it within a second or so. The
	// state is also repeated every statusEvery, so a player can tell a
	// camera that is offline from a connection that died.
	statusErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last pull.State
		var sent time.Time
		have := false
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			st, ok := state()
			if ok && (!have || st.Status != last.Status || st.Reason != last.Reason || time.Since(sent) >= statusEvery) {
				sent = time.Now()
				if err := sendState(st); err != nil {
					statusErr <- err
					cancel()
					return
				}
				last, have = st, true
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	// The status goroutine ends with ctx: cancel first, then wait.
	defer func() { cancel(); wg.Wait() }()

	var (
		cur   *stream.Params
		audio *stream.Audio // in the current init segment
		batch []*stream.AccessUnit
		buf   []byte
		err   error
	)
	for {
		batch, err = v.Next(ctx, batch)
		if err != nil {
			select {
			case serr := <-statusErr:
				return serr
			default:
			}
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil
			}
			return err
		}
		buf = buf[:0]
		for _, au := range batch {
			if au.Audio != nil && (cur == nil || au.Audio != audio) {
				continue // not in the current init segment (yet)
			}
			// A new init segment at new parameters, or at a keyframe where
			// the sound started or stopped coming (see Hub.LiveAudio).
			var want *stream.Audio
			if au.Audio == nil && opts.Audio && (au.Key || au.Params != cur) {
				want = hub.LiveAudio()
			}
			if au.Audio == nil && (au.Params != cur || au.Key && want != audio) {
				if len(buf) > 0 {
					if err := write(false, buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
				cur, audio = au.Params, want
				if err := sendInit(write, cur, audio); err != nil {
					return err
				}
			}
			frag, err := au.Fragment()
			if err != nil {
				return err
			}
			buf = append(buf, frag...)
		}
		if len(buf) > 0 {
			if err := write(false, buf); err != nil {
				return err
			}
		}
		// The GOP burst at the start (or a backlog) can be megabytes: do
		// not keep that much per viewer for the rest of its stream.
		if cap(buf) > 256<<10 {
			buf = nil
		}
		clear(batch)
	}
}

func sendInit(write func(bool, []byte) error, p *stream.Params, a *stream.Audio) error {
	init, err := stream.InitSegment(p, a)
	if err != nil {
		return err
	}
	msg := MSEMessage{Type: "codec", Mime: fmt.Sprintf(`video/mp4; codecs="%s"`, p.Codec), Width: p.Width, Height: p.Height}
	if a != nil {
		msg.Mime = fmt.Sprintf(`video/mp4; codecs="%s,%s"`, p.Codec, a.MIME)
		msg.Audio = a.String()
	}
	b, _ := json.Marshal(msg)
	if err := write(true, b); err != nil {
		return err
	}
	return write(false, init)
}
