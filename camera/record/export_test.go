package record_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/camera"
	"gridwatch/camera/camsim"
	"gridwatch/camera/internal/cliptest"
	"gridwatch/camera/record"
	"gridwatch/camera/stream"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/testdb"
	"gridwatch/internal/testtool"
)

// footage writes recorded files as the recorder does (an initialisation
// segment, then 2 s fragments starting on keyframes, 25 fps, an IDR every
// second) straight to disk and the index, so a test can have footage from
// any point of a long recording without waiting for it.
type footage struct {
	t      testing.TB
	dir    string
	store  *record.Store
	pool   *pgxpool.Pool
	cam    int64
	aus    [][][]byte
	params *stream.Params
}

func newFootage(t testing.TB) *footage {
	t.Helper()
	return newFootageOf(t, camsim.ClipMain)
}

// newFootageOf is newFootage whose files hold another of camsim's clips.
func newFootageOf(t testing.TB, clip string) *footage {
	t.Helper()
	pool := testdb.New(t)
	cams := camera.NewStore(pool)
	sp := camera.Spec{Code: "EXP-1", Name: "export camera", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{113.68, 34.79}}, MainURL: "rtsp://127.0.0.1/x"}
	if err := sp.Check(geo.CRSWGS84); err != nil {
		t.Fatal(err)
	}
	cam, err := cams.Create(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	aus, params := cliptest.Clip(t, clip)
	return &footage{t: t, dir: t.TempDir(), store: record.NewStore(pool), pool: pool, cam: cam.ID, aus: aus, params: params}
}

const frameTicks = stream.ClockRate / 25

// file writes n pictures starting at wall-clock start whose first decode
// time is dts0 on the camera stream's timeline.
func (f *footage) file(start time.Time, dts0 int64, n int) {
	f.t.Helper()
	f.fileWith(start, dts0, n, nil)
}

// fileWith is file with a sound track of a (none when nil): G.711 at 8 kHz,
// a frame with each picture.
func (f *footage) fileWith(start time.Time, dts0 int64, n int, a *stream.Audio) {
	f.t.Helper()
	init, err := stream.InitSegment(f.params, a)
	if err != nil {
		f.t.Fatal(err)
	}
	buf := append([]byte(nil), init...)
	var frags []record.Fragment
	for i := 0; i < n; i += 50 {
		j := min(i+50, n)
		aus := make([]*stream.AccessUnit, 0, j-i)
		for k := i; k < j; k++ {
			dts := dts0 + int64(k)*frameTicks
			nalus := f.aus[k%len(f.aus)]
			aus = append(aus, &stream.AccessUnit{DTS: dts, PTS: dts, Duration: frameTicks, NALUs: nalus, Key: f.params.Kind.IsKey(nalus), Params: f.params})
			if a != nil {
				adts := dts * 8000 / stream.ClockRate
				payload := make([]byte, 320)
				for b := range payload {
					payload[b] = byte(k*13 + b)
				}
				aus = append(aus, &stream.AccessUnit{Audio: a, DTS: adts, PTS: adts, Duration: 320, Payload: payload})
			}
		}
		data, err := stream.Fragment(uint32(i/50+1), aus, dts0+int64(j)*frameTicks)
		if err != nil {
			f.t.Fatal(err)
		}
		frags = append(frags, record.Fragment{Offset: int64(len(buf)), Size: int64(len(data)), Start: int64(i) * 40, Duration: int64(j-i) * 40})
		buf = append(buf, data...)
	}
	rel := filepath.Join(strconv.FormatInt(f.cam, 10), start.UTC().Format("2006-01-02"), strconv.FormatInt(start.UnixMilli(), 10)+".mp4")
	if err := os.MkdirAll(filepath.Join(f.dir, filepath.Dir(rel)), 0o750); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, rel), buf, 0o640); err != nil {
		f.t.Fatal(err)
	}
	err = f.store.Put(context.Background(), record.Recording{Camera: f.cam, Path: rel, Start: start, End: start.Add(time.Duration(n) * 40 * time.Millisecond),
		Bytes: int64(len(buf)), Codec: f.params.Codec, Width: f.params.Width, Height: f.params.Height, InitSize: len(init), Fragments: frags, Status: "ok"})
	if err != nil {
		f.t.Fatal(err)
	}
}

// exporter is an exporter over the footage's files.
func (f *footage) exporter(l record.ExportLimits) *record.Exporter {
	rec := record.NewRecorder(record.Config{Dir: f.dir}, f.store)
	return record.NewExporter(f.store, rec, filepath.Join(f.dir, "exports")).WithLimits(l)
}

// probe is what ffprobe says of an MP4.
type probe struct {
	Format struct {
		StartTime string `json:"start_time"`
		Duration  string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		CodecName string `json:"codec_name"`
		NbFrames  string `json:"nb_frames"`
	} `json:"streams"`
}

func ffprobe(t *testing.T, path string) (start, dur float64, frames int, codec string) {
	t.Helper()
	bin := testtool.Require(t, "ffprobe")
	out, err := exec.Command(bin, "-v", "error", "-show_entries", "format=start_time,duration:stream=codec_name,nb_frames", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil || len(p.Streams) != 1 {
		t.Fatalf("ffprobe %s: %v %s", path, err, out)
	}
	start, _ = strconv.ParseFloat(p.Format.StartTime, 64)
	dur, _ = strconv.ParseFloat(p.Format.Duration, 64)
	frames, _ = strconv.Atoi(p.Streams[0].NbFrames)
	return start, dur, frames, p.Streams[0].CodecName
}

// TestExportTimeline exports from well into a recording (its stream clock
// at 20 minutes), across files, across a gap where the server restarted
// (the stream clock back at 0) and from before the footage: ffprobe, an
// independent reader, must see a clip that starts at 0 and lasts what was
// asked give or take a GOP (it starts at the keyframe at or before from
// and ends at the first picture at or after to), and the manifest must
// name the wall-clock times of its first and last picture.
func TestExportTimeline(t *testing.T) {
	f := newFootage(t)
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	min20 := int64(20*60) * stream.ClockRate
	f.file(t0, min20, 1500)                                         // 0–60 s, the stream's clock at 20 min
	f.file(t0.Add(60*time.Second), min20+60*stream.ClockRate, 1500) // 60–120 s, continuing
	f.file(t0.Add(130*time.Second), 0, 750)                         // 130–160 s after a restart
	x := f.exporter(record.ExportLimits{})
	ctx := context.Background()
	s := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	cases := []struct {
		name                string
		from, to            time.Time
		wantFirst, wantLast time.Time
		gaps                int
	}{
		{"20 minutes into the recording", s(20.3), s(35.3), s(20), s(35.32), 0},
		{"across two files", s(50.5), s(70.5), s(50), s(70.52), 0},
		{"across a gap and a restart", s(115), s(140), s(115), s(140), 1},
		{"from before the footage", s(-5), s(5.01), s(0), s(5.04), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := x.Request(ctx, f.cam, tc.from, tc.to, nil, "tester")
			if err != nil {
				t.Fatal(err)
			}
			x.Drain(ctx)
			if e, err = x.Get(ctx, e.ID); err != nil || e.Status != "done" {
				t.Fatalf("export: %v %s %v", err, e.Status, e.Error)
			}
			first, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(e.Manifest["first_frame_at"]))
			last, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(e.Manifest["last_frame_at"]))
			if !first.Equal(tc.wantFirst) || !last.Equal(tc.wantLast) {
				t.Errorf("manifest first, last frame = %v, %v; want %v, %v", first, last, tc.wantFirst, tc.wantLast)
			}
			if gaps, _ := e.Manifest["gaps"].([]any); len(gaps) != tc.gaps {
				t.Errorf("manifest gaps = %v; want %d", e.Manifest["gaps"], tc.gaps)
			}
			start, dur, frames, codec := ffprobe(t, x.Path(e.ID))
			wantDur := tc.wantLast.Sub(tc.wantFirst).Seconds() + 0.04
			if codec != "h264" || math.Abs(start) > 0.001 || math.Abs(dur-wantDur) > 0.05 {
				t.Errorf("ffprobe: %s starting at %.3f s lasting %.3f s; want h264 starting at 0 lasting %.2f s", codec, start, dur, wantDur)
			}
			asked := tc.to.Sub(tc.from).Seconds()
			if tc.from.After(t0) && (dur < asked || dur > asked+1+0.08) {
				t.Errorf("ffprobe: %.3f s for %.2f s asked; want it within one GOP (1 s) and a picture", dur, asked)
			}
			if want, _ := e.Manifest["frames"].(float64); frames != int(want) {
				t.Errorf("ffprobe: %d frames; manifest says %v", frames, want)
			}
		})
	}
}

// A camera's sound that starts after a file began, or stops, is no change
// of format: an export across files with and without sound holds the
// pictures of all and the sound where it was recorded. A change of the
// sound's or the pictures' format is refused, naming which and where.
func TestExportSoundStartsLate(t *testing.T) {
	f := newFootage(t)
	x := f.exporter(record.ExportLimits{})
	ctx := context.Background()
	alaw, err := stream.NewAudio(stream.PCMA, 8000, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	why := func(e record.Export) string {
		if e.Error == nil {
			return ""
		}
		return *e.Error
	}
	t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	f.fileWith(t0, 0, 100, nil)                                  // 4 s of pictures alone
	f.fileWith(t0.Add(4*time.Second), 100*frameTicks, 100, alaw) // then with sound
	f.fileWith(t0.Add(8*time.Second), 200*frameTicks, 100, nil)  // then without again
	e, err := x.Request(ctx, f.cam, t0, t0.Add(12*time.Second), nil, "tester")
	if err != nil {
		t.Fatal(err)
	}
	x.Drain(ctx)
	if e, err = x.Get(ctx, e.ID); err != nil || e.Status != "done" {
		t.Fatalf("export across sound starting and stopping: %v %s %s", err, e.Status, why(e))
	}
	probe := testtool.FFprobe(t, "-show_entries", "stream=codec_name,duration,start_time", x.Path(e.ID))
	if len(probe.Streams) != 2 || probe.Streams[0].CodecName != "h264" || probe.Streams[1].CodecName != "flac" {
		t.Fatalf("export: %s, want h264 and flac", probe.Out)
	}
	v, as, ad := probe.Streams[0].Seconds(), probe.Streams[1].Start(), probe.Streams[1].Seconds()
	t.Logf("export: pictures %.3f s, sound from %.3f s for %.3f s", v, as, ad)
	if v < 11.5 || math.Abs(as-4) > 0.1 || math.Abs(ad-4) > 0.2 {
		t.Errorf("export: pictures %.3f s, sound from %.3f s for %.3f s; want 12 s of pictures, sound from 4 s for 4 s", v, as, ad)
	}
	out, err := exec.Command(testtool.Require(t, "ffmpeg"), "-v", "error", "-i", x.Path(e.ID), "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("ffmpeg decoding the export: %v %s", err, out)
	}
	// And back: sound, none, sound. The silence between is the last
	// frame before it held (as across a gap between files).
	f.fileWith(t0.Add(12*time.Second), 300*frameTicks, 100, alaw)
	if e, err = x.Request(ctx, f.cam, t0.Add(4*time.Second), t0.Add(16*time.Second), nil, "tester"); err != nil {
		t.Fatal(err)
	}
	x.Drain(ctx)
	if e, err = x.Get(ctx, e.ID); err != nil || e.Status != "done" {
		t.Fatalf("export across sound stopping and starting again: %v %s %s", err, e.Status, why(e))
	}
	probe = testtool.FFprobe(t, "-show_entries", "stream=codec_name,duration,start_time", x.Path(e.ID))
	if len(probe.Streams) != 2 || probe.Streams[1].CodecName != "flac" {
		t.Fatalf("export: %s, want h264 and flac", probe.Out)
	}
	v, as, ad = probe.Streams[0].Seconds(), probe.Streams[1].Start(), probe.Streams[1].Seconds()
	t.Logf("export: pictures %.3f s, sound from %.3f s for %.3f s", v, as, ad)
	if v < 11.5 || as > 0.1 || math.Abs(ad-v) > 0.2 {
		t.Errorf("export: pictures %.3f s, sound from %.3f s for %.3f s; want 12 s of both", v, as, ad)
	}
	out, err = exec.Command(testtool.Require(t, "ffmpeg"), "-v", "error", "-i", x.Path(e.ID), "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("ffmpeg decoding the export: %v %s", err, out)
	}

	// The sound's format changes (G.711's two laws are both kept as
	// FLAC, which is no change): refused, and said so.
	opus, err := stream.NewAudio(stream.Opus, 48000, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Hour)
	f.fileWith(t1, 0, 100, alaw)
	f.fileWith(t1.Add(4*time.Second), 100*frameTicks, 100, opus)
	// And the pictures' format: the camera's sub stream's clip.
	t2 := t0.Add(2 * time.Hour)
	f.file(t2, 0, 100)
	f.aus, f.params = cliptest.Clip(t, camsim.ClipSub)
	f.file(t2.Add(4*time.Second), 100*frameTicks, 100)
	for _, c := range []struct {
		from time.Time
		want string
	}{
		{t1, "the camera's sound format changed at " + t1.Add(4*time.Second).Format(time.RFC3339)},
		{t2, "the camera's video format changed at " + t2.Add(4*time.Second).Format(time.RFC3339)},
	} {
		e, err := x.Request(ctx, f.cam, c.from, c.from.Add(8*time.Second), nil, "tester")
		if err != nil {
			t.Fatal(err)
		}
		x.Drain(ctx)
		if e, err = x.Get(ctx, e.ID); err != nil || e.Status != "failed" || !strings.Contains(why(e), c.want) {
			t.Errorf("export across a change of format: %v %s %q, want failed saying %q", err, e.Status, why(e), c.want)
		}
	}
}

// An H.265 camera's footage exports as H.265 (hvc1 with its parameter
// sets), on the clip's own timeline, as H.264 footage does.
func TestExportH265(t *testing.T) {
	f := newFootageOf(t, camsim.ClipH265)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.file(t0, int64(20*60)*stream.ClockRate, 1000) // 40 s, the stream's clock at 20 min
	x := f.exporter(record.ExportLimits{})
	ctx := context.Background()
	e, err := x.Request(ctx, f.cam, t0.Add(10300*time.Millisecond), t0.Add(25300*time.Millisecond), nil, "tester")
	if err != nil {
		t.Fatal(err)
	}
	x.Drain(ctx)
	if e, err = x.Get(ctx, e.ID); err != nil || e.Status != "done" {
		t.Fatalf("export: %v %s %s", err, e.Status, deref(e.Error))
	}
	start, dur, frames, codec := ffprobe(t, x.Path(e.ID))
	if codec != "hevc" || math.Abs(start) > 0.001 || dur < 15 || dur > 16.1 || frames < 375 {
		t.Errorf("ffprobe: %s starting at %.3f s lasting %.3f s, %d frames; want hevc from 0 for 15–16 s", codec, start, dur, frames)
	}
	// Every picture decodes: the keyframe the clip starts at carries its
	// VPS, SPS and PPS.
	out, err := exec.Command(testtool.Require(t, "ffmpeg"), "-v", "error", "-i", x.Path(e.ID), "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("ffmpeg decoding the export: %v %s", err, out)
	}
}

// wantCode fails unless err carries code, and returns its details.
func wantCode(t *testing.T, err error, code string) map[string]any {
	t.Helper()
	if got := gridwatch.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q; want %q", err, got, code)
	}
	return gridwatch.ErrorDetails(err)
}

// TestExportLimits: identical requests share one export; the range, the
// exports a user has waiting and the free disk space are bounded, each
// refusal saying which limit; nothing is queued by a refused request.
func TestExportLimits(t *testing.T) {
	f := newFootage(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.file(t0, 0, 1500) // 60 s
	ctx := context.Background()
	s := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	count := func(t *testing.T) int {
		t.Helper()
		var n int
		if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM exports`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("identical requests share one export", func(t *testing.T) {
		x := f.exporter(record.ExportLimits{})
		a, err := x.Request(ctx, f.cam, s(1), s(5), nil, "alice")
		if err != nil {
			t.Fatal(err)
		}
		// Queued, then done: both times the same export comes back.
		for _, step := range []string{"queued", "done"} {
			b, err := x.Request(ctx, f.cam, s(1), s(5), nil, "bob")
			if err != nil || b.ID != a.ID || !b.Existing {
				t.Errorf("%s: second request = export %d (existing %v), %v; want export %d, existing", step, b.ID, b.Existing, err, a.ID)
			}
			x.Drain(ctx)
		}
		if c, err := x.Request(ctx, f.cam, s(1), s(6), nil, "bob"); err != nil || c.ID == a.ID || c.Existing {
			t.Errorf("another range = export %d (existing %v), %v; want a new export", c.ID, c.Existing, err)
		}
		x.Drain(ctx)
		if entries, _ := os.ReadDir(filepath.Join(f.dir, "exports")); len(entries) != 2 {
			t.Errorf("%d export files; want 2 (one per distinct request)", len(entries))
		}
	})
	t.Run("range over the limit", func(t *testing.T) {
		x := f.exporter(record.ExportLimits{MaxRange: 10 * time.Second})
		before := count(t)
		_, err := x.Request(ctx, f.cam, s(1), s(12), nil, "alice")
		d := wantCode(t, err, gridwatch.EInvalid)
		if d["limit"] != "export-max-range" || d["max_range_s"] != 10.0 {
			t.Errorf("details %v; want limit export-max-range, max_range_s 10", d)
		}
		if _, err := x.Request(ctx, f.cam, s(1), s(11), nil, "alice"); err != nil {
			t.Errorf("a range of exactly the limit: %v", err)
		}
		if n := count(t); n != before+1 {
			t.Errorf("%d exports; want %d", n, before+1)
		}
		x.Drain(ctx)
	})
	t.Run("exports waiting per user", func(t *testing.T) {
		x := f.exporter(record.ExportLimits{MaxPending: 2})
		for i := 0; i < 2; i++ {
			if _, err := x.Request(ctx, f.cam, s(20+i), s(30), nil, "carol"); err != nil {
				t.Fatal(err)
			}
		}
		before := count(t)
		_, err := x.Request(ctx, f.cam, s(22), s(30), nil, "carol")
		d := wantCode(t, err, gridwatch.EThrottled)
		if d["limit"] != "export-max-pending" || d["max_pending"] != 2 || d["retry_after_s"] == nil {
			t.Errorf("details %v; want limit export-max-pending, max_pending 2, retry_after_s", d)
		}
		if n := count(t); n != before {
			t.Errorf("%d exports after a refusal; want %d", n, before)
		}
		// Someone else may; carol may again once hers are made.
		if _, err := x.Request(ctx, f.cam, s(22), s(30), nil, "dave"); err != nil {
			t.Errorf("another user: %v", err)
		}
		x.Drain(ctx)
		if _, err := x.Request(ctx, f.cam, s(23), s(30), nil, "carol"); err != nil {
			t.Errorf("after the queue drained: %v", err)
		}
		x.Drain(ctx)
	})
	t.Run("not enough free space", func(t *testing.T) {
		free := uint64(300 << 20)
		x := f.exporter(record.ExportLimits{MinFreeBytes: 300 << 20, FreeSpace: func(string) (uint64, error) { return free, nil }})
		before := count(t)
		_, err := x.Request(ctx, f.cam, s(40), s(50), nil, "erin")
		d := wantCode(t, err, gridwatch.ENoSpace)
		if need, _ := d["needed_bytes"].(int64); need <= 0 || d["free_bytes"] != free {
			t.Errorf("details %v; want needed_bytes > 0 and free_bytes %d", d, free)
		}
		if n := count(t); n != before {
			t.Errorf("%d exports after a refusal; want %d", n, before)
		}
		free = 400 << 20
		if _, err := x.Request(ctx, f.cam, s(40), s(50), nil, "erin"); err != nil {
			t.Errorf("with room: %v", err)
		}
		x.Drain(ctx)
	})
}

// TestExportRetention: old exports go, file and row, audited; held ones,
// recent ones and those of an open incident stay; a held export cannot be
// deleted, a released one can (file and row, audited).
func TestExportRetention(t *testing.T) {
	f := newFootage(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	f.file(t0, 0, 1500)
	ctx := context.Background()
	in, _, err := incident.NewService(f.pool, incident.Options{}).Create(ctx, incident.NewIncident{Source: "patrol", Category: "0101",
		Title: "evidence", Lon: 113.68, Lat: 34.79, ReportedAt: t0, Priority: "normal"}, incident.Reporter{Name: "test"}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	x := f.exporter(record.ExportLimits{MaxAge: 24 * time.Hour, MaxPending: 10})
	mk := func(sec int, inc *int64) record.Export {
		t.Helper()
		e, err := x.Request(ctx, f.cam, t0.Add(time.Second), t0.Add(time.Duration(sec)*time.Second), inc, "tester")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	old, held, recent, openCase, closedCase := mk(2, nil), mk(3, nil), mk(4, nil), mk(5, &in.ID), mk(6, &in.ID)
	x.Drain(ctx)
	if _, err := x.Hold(ctx, held.ID, true, "admin"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{old.ID, held.ID, openCase.ID, closedCase.ID} {
		if _, err := f.pool.Exec(ctx, `UPDATE exports SET created_at = now() - interval '25 hours' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	}
	// One export of the incident stays while the incident is open: check
	// it, then close the incident and expire again.
	n, err := x.Expire(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("first pass removed %d, %v; want 1 (the old one)", n, err)
	}
	if _, err := f.pool.Exec(ctx, `UPDATE incidents SET status = 'closed' WHERE id = $1`, in.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := x.Expire(ctx, time.Now()); err != nil || n != 2 {
		t.Fatalf("second pass removed %d, %v; want 2 (the closed incident's)", n, err)
	}
	for _, c := range []struct {
		name string
		id   int64
		kept bool
	}{{"old", old.ID, false}, {"held", held.ID, true}, {"recent", recent.ID, true}, {"open incident, then closed", openCase.ID, false}, {"closed incident", closedCase.ID, false}} {
		_, err := x.Get(ctx, c.id)
		_, ferr := os.Stat(x.Path(c.id))
		if kept := err == nil && ferr == nil; kept != c.kept {
			t.Errorf("%s export: kept %v (row %v, file %v); want %v", c.name, kept, err, ferr, c.kept)
		}
	}
	var audited int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'export.expire'`).Scan(&audited); err != nil || audited != 3 {
		t.Errorf("%d export.expire audit rows, %v; want 3", audited, err)
	}
	// Delete: refused while held, done once released.
	wantCode(t, x.Delete(ctx, held.ID), gridwatch.EConflict)
	if e, err := x.Hold(ctx, held.ID, false, "admin"); err != nil || e.Held {
		t.Fatalf("release: held %v, %v", e.Held, err)
	}
	if err := x.Delete(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(x.Path(held.ID)); !os.IsNotExist(err) {
		t.Errorf("the deleted export's file: %v; want it gone", err)
	}
	wantCode(t, x.Delete(ctx, held.ID), gridwatch.ENotFound)
	var actions []string
	rows, _ := f.pool.Query(ctx, `SELECT action FROM audit_log WHERE target_type = 'export' AND target_id = $1 ORDER BY id`, strconv.FormatInt(held.ID, 10))
	for rows.Next() {
		var a string
		_ = rows.Scan(&a)
		actions = append(actions, a)
	}
	rows.Close()
	if fmt.Sprint(actions) != "[export.hold export.release export.delete]" {
		t.Errorf("audit of the held export: %v; want [export.hold export.release export.delete]", actions)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
