package stream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed ends a viewer whose hub has closed (the camera was stopped).
var ErrClosed = errors.New("stream: closed")

// ErrSlow ends a viewer that fell behind too often: skipping to the next
// keyframe did not let it keep up.
var ErrSlow = errors.New("stream: viewer too slow")

// HubOptions bound what a hub holds. Zero values take the defaults.
type HubOptions struct {
	// Queue is how many pictures a viewer may have pending (default 50, two
	// seconds at 25 fps). A viewer whose queue is full skips to the next
	// keyframe.
	Queue int
	// MaxSkips is how many skips in a row drop a viewer (default 4).
	MaxSkips int
	// MaxGOP and MaxGOPBytes bound the cache of the latest group of
	// pictures (defaults 300 pictures, 8 MiB). A longer GOP is not cached:
	// a new viewer then waits for the next keyframe.
	MaxGOP      int
	MaxGOPBytes int
}

func (o *HubOptions) defaults() {
	if o.Queue <= 0 {
		o.Queue = 50
	}
	if o.MaxSkips <= 0 {
		o.MaxSkips = 4
	}
	if o.MaxGOP <= 0 {
		o.MaxGOP = 300
	}
	if o.MaxGOPBytes <= 0 {
		o.MaxGOPBytes = 8 << 20
	}
}

// Hub fans one camera stream out to its viewers. Publish never blocks: each
// viewer has a bounded queue, and a viewer that cannot keep up skips ahead to
// the next keyframe (or is dropped), so it never delays the camera or the
// other viewers. The hub keeps the latest group of pictures, so a new viewer
// starts at once from the last keyframe instead of waiting for the next one.
type Hub struct {
	opts HubOptions

	mu       sync.Mutex
	gop      []*AccessUnit // from the latest keyframe, audio frames included
	gopBytes int
	// gopPictures counts the pictures in gop (MaxGOP bounds them; the
	// audio frames between them come along).
	gopPictures int
	viewers     map[*Viewer]struct{}
	params      *Params
	audio       *Audio
	// audioSet is when SetAudio last announced sound; lastAudio when the
	// latest audio frame came (see LiveAudio).
	audioSet, lastAudio time.Time
	lastKey             time.Time
	key                 *AccessUnit // the latest keyframe, cached GOP or not
	lastAU              time.Time
	closed              bool
	changed             chan struct{} // closed and replaced when the viewer count changes
	ready               chan struct{} // closed at the first picture

	frames, bytes, skips, drops atomic.Int64
	audioFrames, audioBytes     atomic.Int64
}

// NewHub makes an empty hub.
func NewHub(opts HubOptions) *Hub {
	opts.defaults()
	return &Hub{opts: opts, viewers: map[*Viewer]struct{}{}, changed: make(chan struct{}), ready: make(chan struct{})}
}

// Publish hands a picture or an audio frame to every viewer. au must not
// change afterwards.
func (h *Hub) Publish(au *AccessUnit) {
	if au.Audio != nil {
		h.publishAudio(au)
		return
	}
	size := au.Size()
	h.frames.Add(1)
	h.bytes.Add(int64(size))

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.params == nil {
		close(h.ready)
	}
	h.params = au.Params
	h.lastAU = au.Received
	if au.Key {
		h.lastKey = au.Received
		h.key = au
		clear(h.gop)
		h.gop = append(h.gop[:0], au)
		h.gopBytes = size
		h.gopPictures = 1
	} else if len(h.gop) > 0 {
		if h.gopPictures >= h.opts.MaxGOP || h.gopBytes+size > h.opts.MaxGOPBytes {
			clear(h.gop)
			h.gop = h.gop[:0]
			h.gopBytes, h.gopPictures = 0, 0
		} else {
			h.gop = append(h.gop, au)
			h.gopBytes += size
			h.gopPictures++
		}
	}
	for v := range h.viewers {
		switch v.push(au, h.opts.MaxSkips) {
		case pushSkipped:
			h.skips.Add(1)
		case pushDropped:
			h.drops.Add(1)
			h.removeLocked(v)
		}
	}
}

// publishAudio hands an audio frame to the viewers that take audio. It is
// kept with the cached group of pictures (a new viewer hears from the
// keyframe it starts at) when there is one.
func (h *Hub) publishAudio(au *AccessUnit) {
	size := len(au.Payload)
	h.audioFrames.Add(1)
	h.audioBytes.Add(int64(size))

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.lastAudio = au.Received
	if len(h.gop) > 0 {
		if h.gopBytes+size > h.opts.MaxGOPBytes || len(h.gop) >= h.opts.MaxGOP*entriesPerPicture {
			clear(h.gop)
			h.gop = h.gop[:0]
			h.gopBytes, h.gopPictures = 0, 0
		} else {
			h.gop = append(h.gop, au)
			h.gopBytes += size
		}
	}
	for v := range h.viewers {
		if !v.audio {
			continue
		}
		switch v.push(au, h.opts.MaxSkips) {
		case pushSkipped:
			h.skips.Add(1)
		case pushDropped:
			h.drops.Add(1)
			h.removeLocked(v)
		}
	}
}

// entriesPerPicture bounds the entries a cache or queue holds per picture
// it may hold, audio frames included: G.711 in 10 ms packets sends four
// between two pictures at 25 fps. Pictures alone are bounded as before
// (MaxGOP, Queue), so a camera without sound behaves as it always did.
const entriesPerPicture = 6

// SetAudio says which audio track the stream carries from now on (nil: none).
// The puller calls it when a session opens, before the session's first
// frame; an equal track keeps the pointer consumers compare.
func (h *Hub) SetAudio(a *Audio) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.audio.Equal(a) {
		h.audio = a
	}
	h.audioSet = time.Now()
}

// LiveAudio is the stream's audio track when sound is actually coming: a
// frame within liveAudio of the latest picture, or the sound announced less
// than audioGrace ago (it starts a little after the pictures). A camera
// that announces sound but sends none (or stops) must not be given an audio
// track: a browser's MediaSource buffers what both tracks hold, so an empty
// one stops the pictures. Consumers that start an MP4 at a keyframe ask it.
//
// Recency is judged on the frames' own times (Received), not the clock: a
// hub fed a recording faster than real time, with the times it was
// recorded at (a device's footage fetched), has sound as long as its
// frames do, however the feeding runs.
func (h *Hub) LiveAudio() *Audio {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.lastAU
	if now.IsZero() {
		now = time.Now()
	}
	if h.audio == nil || now.Sub(h.lastAudio) > liveAudio && time.Since(h.audioSet) > audioGrace {
		return nil
	}
	return h.audio
}

// How recent sound must be to count as coming (see LiveAudio).
const (
	liveAudio  = 2 * time.Second
	audioGrace = 3 * time.Second
)

// Audio is the stream's audio track, nil when it has none.
func (h *Hub) Audio() *Audio {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.audio
}

// Subscribe adds a viewer of the pictures only. Its first pictures are the
// cached group of pictures, from the latest keyframe; without one it starts
// at the next.
func (h *Hub) Subscribe() *Viewer { return h.subscribe(false) }

// SubscribeAV adds a viewer of the pictures and the audio frames, in the
// order they arrived. Like a picture, an audio frame is dropped while the
// viewer waits for a keyframe.
func (h *Hub) SubscribeAV() *Viewer { return h.subscribe(true) }

// SubscribeNotify adds a viewer (of the pictures, and of the audio frames
// too with audio) that signals notify, a channel of capacity 1 other
// viewers may share, whenever it has something new. One goroutine can then
// serve many viewers: woken once, it takes what each has with TryNext.
func (h *Hub) SubscribeNotify(audio bool, notify chan struct{}) *Viewer {
	return h.subscribeWith(audio, notify)
}

func (h *Hub) subscribe(audio bool) *Viewer { return h.subscribeWith(audio, make(chan struct{}, 1)) }

func (h *Hub) subscribeWith(audio bool, notify chan struct{}) *Viewer {
	h.mu.Lock()
	defer h.mu.Unlock()
	queue := h.opts.Queue
	v := &Viewer{hub: h, notify: notify, audio: audio, queue: queue, limit: queue + h.gopPictures}
	if h.closed {
		v.err = ErrClosed
		return v
	}
	v.q = make([]*AccessUnit, 0, len(h.gop)+8)
	for _, au := range h.gop {
		if au.Audio == nil {
			v.q = append(v.q, au)
			v.pics++
		} else if audio {
			v.q = append(v.q, au)
		}
	}
	v.waitKey = len(h.gop) == 0
	if len(v.q) > 0 {
		v.wake()
	}
	h.viewers[v] = struct{}{}
	h.signalLocked()
	return v
}

func (h *Hub) removeLocked(v *Viewer) {
	if _, ok := h.viewers[v]; ok {
		delete(h.viewers, v)
		h.signalLocked()
	}
}

func (h *Hub) signalLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Viewers is the number of viewers, and a channel closed when it changes.
func (h *Hub) Viewers() (int, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.viewers), h.changed
}

// Ready waits for the first picture and returns the codec parameters.
func (h *Hub) Ready(ctx context.Context) (*Params, error) {
	select {
	case <-h.ready:
		return h.Params(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Params are the latest codec parameters, nil before the first picture.
func (h *Hub) Params() *Params {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.params
}

// Reset forgets the cached pictures: after an upstream break the next
// viewer must not start from a picture whose successors never came.
func (h *Hub) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.gop)
	h.gop = h.gop[:0]
	h.gopBytes, h.gopPictures = 0, 0
	h.key = nil
}

// Keyframe is the latest keyframe (its parameter sets in front), nil
// before the first or after a Reset: a still of the camera (snapshots).
func (h *Hub) Keyframe() *AccessUnit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.key
}

// Close ends every viewer with ErrClosed; later viewers end at once.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for v := range h.viewers {
		v.fail(ErrClosed)
	}
	clear(h.viewers)
	h.signalLocked()
	clear(h.gop)
	h.gop = nil
}

// HubStats are a hub's counters.
type HubStats struct {
	Frames, Bytes int64
	// Skips counts the times a viewer skipped to the next keyframe; Drops
	// the viewers dropped for being too slow.
	Skips, Drops int64
	// AudioFrames and AudioBytes count the audio frames published.
	AudioFrames, AudioBytes int64
	Viewers                 int
	GOP                     int
	LastKey                 time.Time
	LastPicture             time.Time
}

// Stats reads the counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	st := HubStats{Viewers: len(h.viewers), GOP: h.gopPictures, LastKey: h.lastKey, LastPicture: h.lastAU}
	h.mu.Unlock()
	st.Frames, st.Bytes = h.frames.Load(), h.bytes.Load()
	st.Skips, st.Drops = h.skips.Load(), h.drops.Load()
	st.AudioFrames, st.AudioBytes = h.audioFrames.Load(), h.audioBytes.Load()
	return st
}

// Viewer is one consumer of a hub: a browser, an RTSP client, the recorder.
type Viewer struct {
	hub    *Hub
	notify chan struct{}

	audio bool // takes audio frames (SubscribeAV)
	queue int  // the live backlog allowed, in pictures: HubOptions.Queue

	mu      sync.Mutex
	q       []*AccessUnit
	pics    int // the pictures in q
	limit   int // pictures; entries are bounded by entriesPerPicture times it
	waitKey bool
	skips   int
	err     error
}

type pushResult int

const (
	pushQueued pushResult = iota
	pushSkipped
	pushDropped
)

// push queues au for the viewer; the hub's lock is held.
func (v *Viewer) push(au *AccessUnit, maxSkips int) pushResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		return pushDropped
	}
	res := pushQueued
	if v.pics >= v.limit || len(v.q) >= v.limit*entriesPerPicture {
		// Too far behind: throw the backlog away and start again at a
		// keyframe, so what the viewer gets next is decodable.
		clear(v.q)
		v.q = v.q[:0]
		v.pics = 0
		v.waitKey = true
		v.skips++
		res = pushSkipped
		if v.skips > maxSkips {
			v.err = ErrSlow
			v.wake()
			return pushDropped
		}
	}
	if v.waitKey {
		if !au.Key {
			return res
		}
		v.waitKey = false
	}
	v.q = append(v.q, au)
	if au.Audio == nil {
		v.pics++
	}
	v.wake()
	return res
}

func (v *Viewer) wake() {
	select {
	case v.notify <- struct{}{}:
	default:
	}
}

func (v *Viewer) fail(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err == nil {
		v.err = err
	}
	v.wake()
}

// Next waits for pictures and returns every one pending, oldest first,
// appended to buf[:0]: a writer sends them together, in one system call
// where it can. It returns the viewer's error once the viewer has ended and
// its queue is empty, or ctx's error.
func (v *Viewer) Next(ctx context.Context, buf []*AccessUnit) ([]*AccessUnit, error) {
	return v.NextUntil(ctx, nil, buf)
}

// ErrUntil is NextUntil's error when its until channel fired first.
var ErrUntil = errors.New("stream: wait ended")

// NextUntil is Next that also stops waiting, with ErrUntil, when until
// delivers (a timer's channel, say; nil never does). A writer that must
// look up now and then keeps one timer for it instead of a context with a
// deadline for every wait.
func (v *Viewer) NextUntil(ctx context.Context, until <-chan time.Time, buf []*AccessUnit) ([]*AccessUnit, error) {
	for {
		v.mu.Lock()
		if len(v.q) > 0 {
			buf = v.takeLocked(buf)
			v.mu.Unlock()
			return buf, nil
		}
		err, notify := v.err, v.notify
		v.mu.Unlock()
		if err != nil {
			return buf[:0], err
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return buf[:0], ctx.Err()
		case <-until:
			return buf[:0], ErrUntil
		}
	}
}

// takeLocked appends the queue to buf[:0] and empties it.
func (v *Viewer) takeLocked(buf []*AccessUnit) []*AccessUnit {
	buf = append(buf[:0], v.q...)
	clear(v.q)
	v.q = v.q[:0]
	v.pics = 0
	v.skips = 0
	// The cached GOP burst is delivered; from now on the queue holds a
	// live backlog only.
	v.limit = v.queue
	return buf
}

// TryNext is Next without the wait: every picture pending, appended to
// buf[:0] (none: an empty batch), or the viewer's error once it has ended
// and its queue is empty.
func (v *Viewer) TryNext(buf []*AccessUnit) ([]*AccessUnit, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.q) > 0 {
		return v.takeLocked(buf), nil
	}
	return buf[:0], v.err
}

// Pending is the number of pictures and audio frames queued.
func (v *Viewer) Pending() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.q)
}

// SetNotify makes the viewer signal notify from now on (see
// SubscribeNotify), and signals it at once when something is pending or
// the viewer has ended, so that no wake-up is lost in the change.
func (v *Viewer) SetNotify(notify chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.notify = notify
	if len(v.q) > 0 || v.err != nil {
		v.wake()
	}
}

// Close removes the viewer from its hub.
func (v *Viewer) Close() {
	v.fail(ErrClosed)
	v.hub.mu.Lock()
	v.hub.removeLocked(v)
	v.hub.mu.Unlock()
}
