package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"

	"gridwatch"
	"gridwatch/camera/stream"
)

// clipSample is one picture of an export: where its bytes are in a
// recorded file and when it was seen.
type clipSample struct {
	file      int // index into clip.files
	off       int64
	size      uint32
	dur       uint32 // 90 kHz ticks, as recorded
	ptsOffset int32
	key       bool
	wall      time.Time
}

// clip is what an export will hold: its pictures, cut to the request, from
// which files, and the gaps between them.
type clip struct {
	init    []byte
	files   []string
	samples []clipSample
	// audio are the recorded audio frames (AAC, Opus) of the files used,
	// their dur in ticks of the audio's sample rate; cut to the pictures
	// by cutAudio.
	audio []clipSample
	rate  int // the audio's sample rate, 0 without audio
	used  []map[string]any
	gaps  []map[string]any
	// tmp holds the copies of files this node does not have (the object
	// store's, another node's); removed once the export is made.
	tmp string
}

// gapThreshold: a file starting this much later than the previous one ended
// is a gap in the footage, kept in the clip's timeline (the last picture
// before it is held) so that clip time stays wall-clock time.
const gapThreshold = time.Second

// plan finds the pictures of the export: from the keyframe at or before
// its start to the first picture at or after its end, across files. Each
// picture's wall-clock time is its file's start plus its decode time's
// distance from the file's first, as the recorder indexed it.
func (x *Exporter) plan(ctx context.Context, e Export) (*clip, error) {
	recs, _, err := x.store.List(ctx, e.CameraID, e.From, e.To)
	if err != nil {
		return nil, err
	}
	recs = okRecordings(recs)
	if len(recs) == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "no footage left in the range (removed since the request)")
	}
	c := &clip{tmp: filepath.Join(x.dir, fmt.Sprintf("%d.files", e.ID))}
	reachedEnd := false
	for _, r := range recs {
		if reachedEnd {
			break
		}
		abs, err := x.rec.localPath(ctx, r, c.tmp)
		if err != nil {
			os.RemoveAll(c.tmp)
			return nil, err
		}
		f, err := os.Open(abs)
		if err != nil {
			os.RemoveAll(c.tmp)
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("a recorded file of the range (%s): %w", r.Start.Format(time.RFC3339), err)
			}
			return nil, gridwatch.Errorf(gridwatch.ENotFound, "a recorded file of the range is missing (%s)", r.Start.Format(time.RFC3339))
		}
		n, err := c.addFile(f, r, e.From, e.To, len(c.files))
		f.Close()
		if err != nil {
			return nil, err
		}
		if n > 0 {
			c.files = append(c.files, abs)
			c.used = append(c.used, map[string]any{"recording_id": r.ID, "from": r.Start, "to": r.End})
		}
		reachedEnd = len(c.samples) > 0 && !c.samples[len(c.samples)-1].wall.Before(e.To)
	}
	// Cut at the keyframe at or before from (or the first picture, when the
	// footage starts later), and after the first picture at or after to.
	first := 0
	for i, s := range c.samples {
		if s.wall.After(e.From) {
			break
		}
		if s.key {
			first = i
		}
	}
	for first < len(c.samples) && !c.samples[first].key {
		first++
	}
	c.samples = c.samples[first:]
	for i, s := range c.samples {
		if !s.wall.Before(e.To) {
			c.samples = c.samples[:i+1]
			break
		}
	}
	if len(c.samples) == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "no footage left in the range")
	}
	// Across a gap between files the picture before it is held, so the
	// clip's time stays the wall clock's.
	for i := 0; i+1 < len(c.samples); i++ {
		s, next := &c.samples[i], c.samples[i+1]
		if s.file == next.file {
			continue
		}
		end := s.wall.Add(stream.Duration(int64(s.dur)))
		if next.wall.Sub(end) > gapThreshold {
			s.dur = uint32(stream.Ticks(next.wall.Sub(s.wall)))
			c.gaps = append(c.gaps, map[string]any{"from": end, "to": next.wall})
		}
	}
	return c, nil
}

// addFile adds the pictures of r's fragments that end after from, up to
// the first picture at or after to; it returns how many it added.
func (c *clip) addFile(f *os.File, r Recording, from, to time.Time, file int) (int, error) {
	head := make([]byte, r.InitSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, fmt.Errorf("record: export: %w", err)
	}
	added, joined := 0, false
	for _, fr := range r.Fragments {
		fs := r.Start.Add(time.Duration(fr.Start) * time.Millisecond)
		fe := fs.Add(time.Duration(fr.Duration) * time.Millisecond)
		if !fe.After(from) {
			continue
		}
		if !joined {
			if err := c.join(head, r.Start); err != nil {
				return added, err
			}
			joined = true
		}
		data := make([]byte, fr.Size)
		if _, err := f.ReadAt(data, fr.Offset); err != nil {
			return added, fmt.Errorf("record: export: read fragment at %d: %w", fr.Offset, err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(data); err != nil || len(parts) != 1 || len(parts[0].Tracks) == 0 ||
			parts[0].Tracks[0].ID != stream.TrackID || len(data) < 8 {
			return added, fmt.Errorf("record: export: fragment at %d of %s is not one moof+mdat: %v", fr.Offset, r.Path, err)
		}
		// The recorder writes moof then mdat, the samples in order from the
		// start of mdat's payload, the pictures' then the audio's; the
		// payloads the parser found must be there.
		pos := int64(binary.BigEndian.Uint32(data)) + 8
		base := int64(parts[0].Tracks[0].BaseTime)
		reached := false
		for _, tr := range parts[0].Tracks {
			dts := int64(tr.BaseTime)
			for _, s := range tr.Samples {
				n := int64(len(s.Payload))
				if pos+n > int64(len(data)) || !bytes.Equal(data[pos:pos+n], s.Payload) {
					return added, fmt.Errorf("record: export: fragment at %d of %s: samples not where expected", fr.Offset, r.Path)
				}
				cs := clipSample{file: file, off: fr.Offset + pos, size: uint32(n), dur: s.Duration,
					ptsOffset: s.PTSOffset, key: !s.IsNonSyncSample}
				pos += n
				if tr.ID == stream.AudioTrackID && c.rate > 0 {
					// The audio's ticks are its sample rate's, on the
					// pictures' timeline.
					cs.wall = fs.Add(stream.Duration(dts*stream.ClockRate/int64(c.rate) - base))
					c.audio = append(c.audio, cs)
					dts += int64(s.Duration)
					continue
				}
				if tr.ID != stream.TrackID || reached {
					continue
				}
				cs.wall = fs.Add(stream.Duration(dts - base))
				c.samples = append(c.samples, cs)
				added++
				dts += int64(s.Duration)
				reached = !cs.wall.Before(to)
			}
		}
		if reached {
			return added, nil
		}
	}
	return added, nil
}

// join takes the initialisation segment of a file recorded from start
// into the clip's. The pictures' format must be the one the clip has. The
// sound may start or stop between files (a camera's sound comes a little
// after its pictures; a fetched recording's may too): the clip then has
// the sound track of the files that have one, and its sound where they do.
func (c *clip) join(head []byte, start time.Time) error {
	if c.init == nil {
		c.init = head
		c.rate = audioRate(head)
		return nil
	}
	if bytes.Equal(c.init, head) {
		return nil
	}
	at := start.Format(time.RFC3339)
	have, _, err1 := stream.ParseInit(c.init)
	next, _, err2 := stream.ParseInit(head)
	if err1 != nil || err2 != nil || len(have.Tracks) == 0 || len(next.Tracks) == 0 || !reflect.DeepEqual(have.Tracks[0], next.Tracks[0]) {
		return gridwatch.Errorf(gridwatch.EConflict, "the camera's video format changed at %s: export up to there and from there separately", at)
	}
	switch {
	case len(have.Tracks) > 1 && len(next.Tracks) > 1 && !reflect.DeepEqual(have.Tracks[1], next.Tracks[1]):
		return gridwatch.Errorf(gridwatch.EConflict, "the camera's sound format changed at %s: export up to there and from there separately", at)
	case len(have.Tracks) == 1 && len(next.Tracks) > 1:
		c.init, c.rate = head, audioRate(head)
	}
	return nil
}

// audioRate is the sample rate of an initialisation segment's sound track,
// 0 without one.
func audioRate(head []byte) int {
	if init, _, err := stream.ParseInit(head); err == nil && len(init.Tracks) > 1 && init.Tracks[1].ID == stream.AudioTrackID {
		return int(init.Tracks[1].TimeScale)
	}
	return 0
}

// cutAudio keeps the audio frames heard while the pictures show, and holds
// (lengthens) the frame before a gap between files as the pictures hold
// theirs. It returns the pause before the first frame, in the audio's ticks.
func (c *clip) cutAudio() int32 {
	if len(c.audio) == 0 || len(c.samples) == 0 || c.rate <= 0 {
		c.audio = nil
		return 0
	}
	first := c.samples[0].wall
	lastS := c.samples[len(c.samples)-1]
	end := lastS.wall.Add(stream.Duration(int64(lastS.dur)))
	tick := func(d time.Duration) int64 { return int64(d) * int64(c.rate) / int64(time.Second) }
	kept := c.audio[:0]
	for _, a := range c.audio {
		if !a.wall.Before(first) && a.wall.Before(end) {
			kept = append(kept, a)
		}
	}
	c.audio = kept
	for i := 0; i+1 < len(c.audio); i++ {
		a, next := &c.audio[i], c.audio[i+1]
		if gap := tick(next.wall.Sub(a.wall)); gap > int64(a.dur)*3/2 {
			a.dur = uint32(gap)
		}
	}
	if len(c.audio) == 0 {
		return 0
	}
	offset := tick(c.audio[0].wall.Sub(first))
	// The sound ends with the pictures: its placement comes from arrival
	// times, so its frames' durations may add up past the last picture
	// (a player would then show the clip longer than its pictures).
	total, limit := offset, tick(end.Sub(first))
	for _, a := range c.audio {
		total += int64(a.dur)
	}
	for len(c.audio) > 0 && total > limit {
		last := &c.audio[len(c.audio)-1]
		if start := total - int64(last.dur); start < limit {
			last.dur = uint32(limit - start)
			break
		}
		total -= int64(last.dur)
		c.audio = c.audio[:len(c.audio)-1]
	}
	if len(c.audio) == 0 {
		return 0
	}
	return int32(offset)
}

// maxExportBytes: an export is one progressive MP4 with 32-bit chunk
// offsets, so its media must stay under 4 GiB.
const maxExportBytes = 4<<30 - 64<<20

// make writes one export: a progressive MP4 (ftyp, moov, mdat: moov first,
// so it plays while downloading) holding the recorded H.264 pictures, not
// re-encoded, on the clip's own timeline from 0: its first picture is the
// keyframe at or before the request's start, its last the first picture at
// or after its end. The manifest records the wall-clock time of both.
func (x *Exporter) make(ctx context.Context, e Export) error {
	c, err := x.plan(ctx, e)
	if err != nil {
		return err
	}
	defer os.RemoveAll(c.tmp)
	init, flac, err := stream.ParseInit(c.init)
	if err != nil || len(init.Tracks) == 0 || init.Tracks[0].ID != stream.TrackID {
		return fmt.Errorf("record: export: initialisation segment: %v", err)
	}
	files := make([]*os.File, len(c.files))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, p := range c.files {
		if files[i], err = os.Open(p); err != nil {
			return gridwatch.Errorf(gridwatch.ENotFound, "a recorded file of the range went missing")
		}
	}
	var total int64
	var ticks int64
	written := int64(0)
	lastReport := time.Now()
	toSamples := func(cs []clipSample) []*pmp4.Sample {
		out := make([]*pmp4.Sample, len(cs))
		for i := range cs {
			s := cs[i]
			total += int64(s.size)
			out[i] = &pmp4.Sample{Duration: s.dur, PTSOffset: s.ptsOffset, IsNonSyncSample: !s.key, PayloadSize: s.size,
				GetPayload: func() ([]byte, error) {
					b := make([]byte, s.size)
					if _, err := files[s.file].ReadAt(b, s.off); err != nil {
						return nil, fmt.Errorf("record: export: read sample: %w", err)
					}
					written += int64(s.size)
					if time.Since(lastReport) > 250*time.Millisecond {
						lastReport = time.Now()
						_, _ = x.store.pool.Exec(ctx, `UPDATE exports SET progress = $2 WHERE id = $1`, e.ID, float64(written)/float64(total))
					}
					return b, nil
				}}
		}
		return out
	}
	for _, s := range c.samples {
		ticks += int64(s.dur)
	}
	samples := toSamples(c.samples)
	pause := c.cutAudio()
	audio := toSamples(c.audio)
	if total > maxExportBytes {
		return gridwatch.Errorf(gridwatch.ETooLarge, "the export would hold %d bytes of video and sound; one file holds at most %d: export a shorter range", total, int64(maxExportBytes))
	}
	pres := pmp4.Presentation{Tracks: []*pmp4.Track{{ID: 1, TimeScale: stream.ClockRate, Codec: init.Tracks[0].Codec, Samples: samples}}}
	if len(audio) > 0 && len(init.Tracks) > 1 {
		at := init.Tracks[1]
		pres.Tracks = append(pres.Tracks, &pmp4.Track{ID: 2, TimeScale: at.TimeScale, TimeOffset: pause, Codec: at.Codec, Samples: audio})
	}
	if err := os.MkdirAll(x.dir, 0o750); err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	tmp := x.Path(e.ID) + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	defer os.Remove(tmp)
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	var w io.Writer = cw
	if lpcm, ok := pres.Tracks[len(pres.Tracks)-1].Codec.(*fmp4.CodecLPCM); ok && flac && len(pres.Tracks) > 1 {
		w = &flacEntry{w: cw, rate: lpcm.SampleRate, channels: lpcm.ChannelCount}
	}
	err = pres.Marshal(w)
	if fe, ok := w.(*flacEntry); ok && err == nil {
		err = fe.flush()
	}
	if err != nil {
		out.Close()
		return fmt.Errorf("record: export: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("record: export: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	if err := os.Rename(tmp, x.Path(e.ID)); err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// With an object store, the export goes there: any node serves it.
	var object *string
	if o := x.rec.cfg.Objects; o != nil {
		key := o.Key(fmt.Sprintf("exports/%d-%s.mp4", e.ID, sum[:16]))
		if _, err := o.Upload(ctx, key, x.Path(e.ID)); err != nil {
			return fmt.Errorf("record: export: upload: %w", err)
		}
		object = &key
		defer os.Remove(x.Path(e.ID))
	}
	var code string
	_ = x.store.pool.QueryRow(ctx, `SELECT code FROM cameras WHERE id = $1`, e.CameraID).Scan(&code)
	gaps := c.gaps
	if gaps == nil {
		gaps = []map[string]any{}
	}
	manifest := map[string]any{
		"export_id": e.ID, "camera_id": e.CameraID, "camera_code": code, "from": e.From, "to": e.To,
		"first_frame_at": c.samples[0].wall, "last_frame_at": c.samples[len(c.samples)-1].wall,
		"frames": len(c.samples), "duration_s": float64(ticks) / stream.ClockRate, "gaps": gaps,
		"incident_id": e.IncidentID, "requested_by": e.RequestedBy, "requested_at": e.CreatedAt,
		"made_at": time.Now().UTC(), "sha256": sum, "bytes": cw.n,
		"format":     "MP4 (moov first), video (H.264 or H.265) and audio (AAC or Opus) as recorded, not re-encoded; time 0 is first_frame_at, a gap holds the picture before it",
		"audio":      len(audio) > 0,
		"recordings": c.used,
	}
	// Only while this node still holds the export (a hold that lapsed may
	// have let another node make it again: its file and sum stand).
	tag, err := x.store.pool.Exec(ctx, `UPDATE exports SET status = 'done', progress = 1, sha256 = $2, bytes = $3, manifest = $4, finished_at = now(),
		object_key = $5 WHERE id = $1 AND status = 'running' AND node_id IS NOT DISTINCT FROM nullif($6, '')`, e.ID, sum, cw.n, manifest, object, x.rec.cfg.Node)
	if err == nil && tag.RowsAffected() == 0 {
		x.rec.cfg.Logger.Warn("export: made twice; the other node's stands", "export", e.ID)
	}
	return err
}

// flacEntry holds what passes through it until the moov has passed, then
// writes it with its audio entry turned into FLAC's (stream.FLACEntry): the
// recordings carry a G.711 camera's sound as FLAC frames, and mediacommon,
// which does not know FLAC, wrote an LPCM entry for them. The moov grows;
// FLACEntry moves the chunk offsets with it.
type flacEntry struct {
	w              io.Writer
	rate, channels int
	buf            []byte
	done           bool
}

func (e *flacEntry) Write(p []byte) (int, error) {
	if e.done {
		return e.w.Write(p)
	}
	e.buf = append(e.buf, p...)
	// The top-level boxes: ftyp, then moov; once the moov is whole, rename.
	for off := 0; off+8 <= len(e.buf); {
		size := int(binary.BigEndian.Uint32(e.buf[off:]))
		if size < 8 {
			return 0, errors.New("record: export: a box of the MP4 has a bad size")
		}
		if string(e.buf[off+4:off+8]) == "moov" {
			if off+size > len(e.buf) {
				break
			}
			moov, err := stream.FLACEntry(e.buf[:off+size], e.rate, e.channels)
			if err != nil {
				return 0, err
			}
			e.buf = append(moov, e.buf[off+size:]...)
			return len(p), e.flush()
		}
		off += size
	}
	return len(p), nil
}

// flush writes what is held and lets the rest pass.
func (e *flacEntry) flush() error {
	e.done = true
	b := e.buf
	e.buf = nil
	if len(b) == 0 {
		return nil
	}
	_, err := e.w.Write(b)
	return err
}

// countWriter counts what passes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
