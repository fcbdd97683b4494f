package live

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"gridwatch"
	"gridwatch/camera/stream"
)

// HLS settings: segments of about two seconds (cut at the first keyframe
// after that), the last six listed, a muxer nobody asks for stops after a
// minute.
const (
	hlsTarget   = 2 * stream.ClockRate
	hlsListed   = 6
	hlsKept     = hlsListed + 2
	hlsIdle     = time.Minute
	hlsMaxBytes = 32 << 20
)

// HLS is a live HLS (fMP4 segments) muxer reading one hub, for Safari, iOS
// and tools such as ffmpeg. It runs while it is asked for.
type HLS struct {
	mu       sync.Mutex
	inits    map[int][]byte
	segs     []hlsSegment
	nextSeq  int
	target   int
	lastUsed time.Time
	err      error
	changed  chan struct{}
	done     chan struct{}
}

type hlsSegment struct {
	seq  int
	init int
	dur  float64
	data []byte
}

func newHLS() *HLS {
	return &HLS{inits: map[int][]byte{}, target: hlsTarget / stream.ClockRate, lastUsed: time.Now(), changed: make(chan struct{}), done: make(chan struct{})}
}

// run cuts the hub's pictures into segments until ctx ends, the stream
// ends or nobody asked for a playlist or segment for hlsIdle.
func (h *HLS) run(ctx context.Context, hub *stream.Hub) {
	defer close(h.done)
	v := hub.SubscribeAV()
	defer v.Close()
	var (
		cur     []*stream.AccessUnit
		curSize int
		params  *stream.Params
		audio   *stream.Audio // in the current init segment, if it goes into MP4
		initID  int
		batch   []*stream.AccessUnit
	)
	flush := func(end int64) {
		if len(cur) == 0 {
			return
		}
		data, err := stream.Fragment(uint32(h.nextSeq+1), cur, end)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil {
			h.err = err
			return
		}
		h.segs = append(h.segs, hlsSegment{seq: h.nextSeq, init: initID, dur: float64(end-cur[0].DTS) / stream.ClockRate, data: data})
		h.nextSeq++
		if len(h.segs) > hlsKept {
			h.segs = h.segs[len(h.segs)-hlsKept:]
		}
		close(h.changed)
		h.changed = make(chan struct{})
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, hlsIdle/4)
		var err error
		batch, err = v.Next(wctx, batch)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			h.fail(err)
			return
		}
		h.mu.Lock()
		unused := time.Since(h.lastUsed) > hlsIdle
		h.mu.Unlock()
		if unused {
			h.fail(errors.New("stopped: unused"))
			return
		}
		for _, au := range batch {
			if au.Audio != nil {
				// Sound rides in the segments of its pictures.
				if au.Audio == audio && len(cur) > 0 {
					cur = append(cur, au)
					curSize += au.Size()
				}
				continue
			}
			var want *stream.Audio
			if au.Key || au.Params != params {
				want = hub.LiveAudio()
			}
			if au.Params != params || au.Key && want != audio {
				if len(cur) > 0 {
					flush(au.DTS)
					cur, curSize = cur[:0], 0
				}
				audio = want
				init, err := stream.InitSegment(au.Params, audio)
				if err != nil {
					h.fail(err)
					return
				}
				params = au.Params
				initID++
				h.mu.Lock()
				h.inits[initID] = init
				// Keep only the inits the kept segments can name.
				delete(h.inits, initID-hlsKept)
				h.mu.Unlock()
			}
			if au.Key && len(cur) > 0 && au.DTS-cur[0].DTS >= hlsTarget {
				flush(au.DTS)
				cur, curSize = cur[:0], 0
			}
			if curSize > hlsMaxBytes {
				// A camera with keyframes too far apart: drop the segment
				// rather than hold it all, and start at the next keyframe.
				clear(cur)
				cur, curSize = cur[:0], 0
			}
			if len(cur) == 0 && !au.Key {
				continue // a segment starts with a keyframe
			}
			cur = append(cur, au)
			curSize += au.Size()
		}
	}
}

func (h *HLS) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = err
	}
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *HLS) touch() {
	h.mu.Lock()
	h.lastUsed = time.Now()
	h.mu.Unlock()
}

// Playlist is the live media playlist. It waits (within ctx) for the first
// segments. query is appended to every URI in it (a "?token=…" the
// playlist was fetched with, since players do not carry it over).
func (h *HLS) Playlist(ctx context.Context, query string) ([]byte, error) {
	h.touch()
	for {
		h.mu.Lock()
		segs, err, changed := h.segs, h.err, h.changed
		if len(segs) >= 2 || (len(segs) > 0 && err != nil) {
			b := h.playlistLocked(query)
			h.mu.Unlock()
			return b, nil
		}
		h.mu.Unlock()
		if err != nil {
			return nil, gridwatch.Errorf(gridwatch.EUnavailable, "the camera stream is not available")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, gridwatch.Errorf(gridwatch.EUnavailable, "no video from the camera yet")
		}
	}
}

func (h *HLS) playlistLocked(query string) []byte {
	segs := h.segs
	if len(segs) > hlsListed {
		segs = segs[len(segs)-hlsListed:]
	}
	// The target duration must not change during a playlist's life: it
	// only grows, from the configured one.
	for _, s := range segs {
		h.target = max(h.target, int(math.Ceil(s.dur)))
	}
	target := h.target
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n",
		target, segs[0].seq)
	initID := 0
	for i, s := range segs {
		if s.init != initID {
			if i > 0 {
				b.WriteString("#EXT-X-DISCONTINUITY\n")
			}
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"init-%d.mp4%s\"\n", s.init, query)
			initID = s.init
		}
		fmt.Fprintf(&b, "#EXTINF:%.3f,\nseg-%d.m4s%s\n", s.dur, s.seq, query)
	}
	return []byte(b.String())
}

// Init is an initialisation segment named in the playlist.
func (h *HLS) Init(id int) ([]byte, error) {
	h.touch()
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.inits[id]; ok {
		return b, nil
	}
	return nil, gridwatch.Errorf(gridwatch.ENotFound, "no such initialisation segment")
}

// Segment is a media segment named in the playlist (or one just gone).
func (h *HLS) Segment(seq int) ([]byte, error) {
	h.touch()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.segs {
		if s.seq == seq {
			return s.data, nil
		}
	}
	return nil, gridwatch.Errorf(gridwatch.ENotFound, "segment %d is not (or no longer) available", seq)
}

// HLS returns the running HLS muxer of a camera stream, starting one (and
// the stream) when needed.
func (m *Manager) HLS(ctx context.Context, id int64, name string) (*HLS, error) {
	key := Key{id, name}
	if h := m.runningHLS(key); h != nil {
		return h, nil
	}
	hub, release, err := m.Acquire(ctx, id, name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if h := m.hls[key]; h != nil && !h.ended() {
		// Another request started one meanwhile; release outside the lock
		// (release takes it).
		m.mu.Unlock()
		release()
		return h, nil
	}
	if m.ctx == nil {
		m.mu.Unlock()
		release()
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "video is not running")
	}
	h := newHLS()
	// Segment numbers go on from the last muxer of this stream, so a
	// player never sees the media sequence go back.
	h.nextSeq = m.hlsSeq[key]
	m.hls[key] = h
	ctx = m.ctx
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer release()
		h.run(ctx, hub)
		m.mu.Lock()
		if m.hls[key] == h {
			delete(m.hls, key)
		}
		h.mu.Lock()
		m.hlsSeq[key] = h.nextSeq
		h.segs, h.inits = nil, nil
		h.mu.Unlock()
		m.mu.Unlock()
	}()
	return h, nil
}

func (m *Manager) runningHLS(key Key) *HLS {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := m.hls[key]; h != nil && !h.ended() {
		return h
	}
	return nil
}

func (h *HLS) ended() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}
