package record_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/camera"
	"gridwatch/camera/camsim"
	"gridwatch/camera/live"
	"gridwatch/camera/pull"
	"gridwatch/camera/record"
	"gridwatch/camera/video"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/testdb"
	"gridwatch/internal/testtool"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// recorded is what recordFor leaves: a fresh database and recordings
// directory, the footage store over them, the recording camera and the time
// range it recorded.
type recorded struct {
	pool     *pgxpool.Pool
	dir      string
	store    *record.Store
	id       int64
	from, to time.Time
	rec      *record.Recorder
	live     *live.Manager
}

// list lists the camera's recordings and gaps over the range recorded, a
// minute wider on either side; it fails the test on an error.
func (rc recorded) list(t *testing.T) ([]record.Recording, []record.Gap) {
	t.Helper()
	recs, gaps, err := rc.store.List(context.Background(), rc.id, rc.from.Add(-time.Minute), rc.to.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return recs, gaps
}

// recordFor runs camsim and a recording camera for about d, in a fresh
// database and directory, then stops everything.
func recordFor(t *testing.T, d time.Duration) recorded {
	t.Helper()
	return recordWith(t, d, nil)
}

// recordWith is recordFor with a hook run while recording.
func recordWith(t *testing.T, d time.Duration, during func(*camsim.Sim)) recorded {
	t.Helper()
	return recordStream(t, d, camsim.StreamMain, during)
}

// recordStream is recordWith of another of the simulator's streams as the
// camera's main stream (camsim.StreamH265).
func recordStream(t *testing.T, d time.Duration, simStream string, during func(*camsim.Sim)) recorded {
	t.Helper()
	return recordRun(t, recordOpts{length: d, simStream: simStream, during: func(sim *camsim.Sim, _ recorded) {
		if during != nil {
			during(sim)
		}
	}})
}

// recordOpts says how recordRun records.
type recordOpts struct {
	// length is how long to record at least (0: until during returns).
	length    time.Duration
	simStream string // camsim.StreamMain when empty
	// config changes the recorder's configuration (files of 3 s in
	// fragments of 1 s) before it starts.
	config func(*record.Config)
	// pull changes how the camera is pulled (backoff of 50..100 ms, a
	// stall after 1 s).
	pull func(*pull.Config)
	// during runs while recording, with what is being recorded (its
	// from and to not yet set).
	during func(*camsim.Sim, recorded)
}

// recordRun runs camsim and a recording camera as o says, in a fresh
// database and directory, then stops everything.
func recordRun(t *testing.T, o recordOpts) recorded {
	t.Helper()
	if o.simStream == "" {
		o.simStream = camsim.StreamMain
	}
	pool, dir := testdb.New(t), t.TempDir()
	sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0", Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	cams := camera.NewStore(pool)
	sp := camera.Spec{Code: "REC-1", Name: "recording camera", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{113.68, 34.79}},
		MainURL: sim.URL(1, o.simStream), Record: true}
	if err := sp.Check(geo.CRSWGS84); err != nil {
		t.Fatal(err)
	}
	cam, err := cams.Create(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	// Recording problems go to the camera registry, as gridwatch has them.
	cfg := record.Config{Dir: dir, FragmentDuration: time.Second, FileDuration: 3 * time.Second, Problem: cams.SetRecordingError}
	if o.config != nil {
		o.config(&cfg)
	}
	rec := record.NewRecorder(cfg, record.NewStore(pool))
	rc := recorded{pool: pool, dir: dir, store: record.NewStore(pool), id: cam.ID, rec: rec}
	pc := pull.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, StallTimeout: time.Second}
	if o.pull != nil {
		o.pull(&pc)
	}
	m := live.NewManager(live.Config{Sources: video.Sources{Cameras: cams}, Record: rec.Record, Pull: pc})
	rc.live = m
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = sim.Run(ctx) }()
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	start := time.Now()
	if o.during != nil {
		o.during(sim, rc)
	}
	if left := o.length - time.Since(start); left > 0 {
		<-time.After(left) // recording for a fixed length is the point of the test
	}
	cancel()
	wg.Wait()
	rc.from, rc.to = start, time.Now()
	return rc
}

// TestCameraFlapLeavesGap drops the camera for a few seconds while it
// records: the recording has a gap there, and every file still plays.
func TestCameraFlapLeavesGap(t *testing.T) {
	rc := recordWith(t, 10*time.Second, func(sim *camsim.Sim) {
		<-time.After(3 * time.Second)
		sim.SetFault(1, camsim.FaultDisconnect)
		<-time.After(3 * time.Second)
		sim.SetFault(1, camsim.FaultNone)
	})
	recs, gaps := rc.list(t)
	if len(gaps) != 1 || gaps[0].To.Sub(gaps[0].From) < 2*time.Second {
		t.Fatalf("gaps %+v, want one of about 3 s", gaps)
	}
	for _, r := range recs {
		if r.Start.Before(gaps[0].To) && r.End.After(gaps[0].From.Add(500*time.Millisecond)) {
			t.Errorf("recording %v–%v overlaps the gap %v–%v", r.Start, r.End, gaps[0].From, gaps[0].To)
		}
		ffprobe := testtool.Require(t, "ffprobe")
		out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", filepath.Join(rc.dir, r.Path)).CombinedOutput()
		if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || n == 0 {
			t.Errorf("file %s does not play: %v %q", r.Path, err, out)
		}
	}
	if len(recs) < 2 || recs[len(recs)-1].End.Before(gaps[0].To) {
		t.Errorf("%d recordings: want some after the camera came back", len(recs))
	}
}

func TestRecordIndexAndPlayback(t *testing.T) {
	for _, tc := range []struct{ stream, codec, rfc6381 string }{
		{camsim.StreamMain, "h264", "avc1."},
		{camsim.StreamH265, "hevc", "hvc1."},
	} {
		t.Run(tc.codec, func(t *testing.T) { recordAndPlay(t, tc.stream, tc.codec, tc.rfc6381) })
	}
}

// A camera's sound is recorded with its pictures (AAC and Opus as they
// come, G.711 as FLAC), plays back with them, and goes into an evidence
// export, where it lasts as long as the pictures.
func TestRecordSound(t *testing.T) {
	for _, tc := range []struct{ stream, audio string }{
		{camsim.StreamMainAAC, "aac"},
		{camsim.StreamMainOpus, "opus"},
		{camsim.StreamMainPCMA, "flac"},
	} {
		t.Run(tc.stream, func(t *testing.T) {
			rc := recordStream(t, 8*time.Second, tc.stream, nil)
			recs, _ := rc.list(t)
			if len(recs) < 2 {
				t.Fatalf("%d files after 8 s in files of 3 s", len(recs))
			}
			for _, r := range recs {
				probe := testtool.FFprobe(t, "-show_entries", "stream=codec_type,codec_name,duration", filepath.Join(rc.dir, r.Path))
				var got []string
				for _, s := range probe.Streams {
					got = append(got, s.CodecName)
				}
				want := "h264"
				if tc.audio != "" {
					want += " " + tc.audio
				}
				if strings.Join(got, " ") != want {
					t.Errorf("file %s: streams %v, want %s", r.Path, got, want)
				}
			}
			x := record.NewExporter(rc.store, rc.rec, filepath.Join(rc.dir, "exports"))
			ctx := context.Background()
			e, err := x.Request(ctx, rc.id, recs[0].Start.Add(500*time.Millisecond), recs[len(recs)-1].End.Add(-500*time.Millisecond), nil, "tester")
			if err != nil {
				t.Fatal(err)
			}
			x.Drain(ctx)
			if e, err = x.Get(ctx, e.ID); err != nil || e.Status != "done" {
				t.Fatalf("export: %v %s", err, e.Status)
			}
			probe := testtool.FFprobe(t, "-show_entries", "stream=codec_name,duration", x.Path(e.ID))
			if len(probe.Streams) != 2 || probe.Streams[1].CodecName != tc.audio {
				t.Fatalf("export: %s, want h264 and %s", probe.Out, tc.audio)
			}
			v, a := probe.Streams[0].Seconds(), probe.Streams[1].Seconds()
			t.Logf("export: pictures %.3f s, sound %.3f s", v, a)
			if v < 3 || math.Abs(v-a) > 0.3 {
				t.Errorf("export: pictures %.3f s, sound %.3f s: want them together", v, a)
			}
			out, err := exec.Command(testtool.Require(t, "ffmpeg"), "-v", "error", "-i", x.Path(e.ID), "-f", "null", "-").CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("ffmpeg decoding the export: %v %s", err, out)
			}
		})
	}
}

// recordAndPlay records a camera's stream for 8 s: files back to back,
// indexed with their codec, and an HLS VOD of them that ffprobe reads as
// the codec for as long as was indexed.
func recordAndPlay(t *testing.T, simStream, codec, rfc6381 string) {
	rc := recordStream(t, 8*time.Second, simStream, nil)
	dir, from, to := rc.dir, rc.from, rc.to
	recs, gaps := rc.list(t)
	if len(recs) < 2 || len(gaps) != 0 {
		t.Fatalf("%d files and %d gaps after 8 s in files of 3 s", len(recs), len(gaps))
	}
	var total time.Duration
	for i, r := range recs {
		if !strings.HasPrefix(r.Codec, rfc6381) || r.Width != 640 || r.InitSize == 0 || len(r.Fragments) == 0 || r.Status != "ok" {
			t.Errorf("recording %d: %+v", i, r)
		}
		if i > 0 && r.Start.Sub(recs[i-1].End).Abs() > 300*time.Millisecond {
			t.Errorf("files %d and %d: %v apart, want back to back", i-1, i, r.Start.Sub(recs[i-1].End))
		}
		st, err := os.Stat(filepath.Join(dir, r.Path))
		if err != nil || st.Size() != r.Bytes {
			t.Errorf("file %s: %v, size %d, indexed %d", r.Path, err, st.Size(), r.Bytes)
		}
		total += r.End.Sub(r.Start)
	}
	if total < 5*time.Second || total > 9*time.Second {
		t.Errorf("%v recorded in 8 s", total)
	}

	// HLS VOD of the whole range, read by ffprobe from the files.
	pl, err := record.Playlist(recs, from.Add(-time.Minute), to, func(r record.Recording) string { return filepath.Join(dir, r.Path) })
	if err != nil {
		t.Fatal(err)
	}
	plPath := filepath.Join(t.TempDir(), "playback.m3u8")
	if err := os.WriteFile(plPath, pl, 0o644); err != nil {
		t.Fatal(err)
	}
	probe := testtool.FFprobe(t, "-allowed_extensions", "ALL", "-show_entries", "format=duration:stream=codec_name,width", plPath)
	if len(probe.Streams) == 0 {
		t.Fatalf("ffprobe: %s\n%s", probe.Out, pl)
	}
	dur := probe.Seconds()
	t.Logf("%d files, %v indexed, ffprobe reads %.2f s", len(recs), total, dur)
	if probe.Streams[0].CodecName != codec || (time.Duration(dur*float64(time.Second))-total).Abs() > time.Second {
		t.Errorf("ffprobe: %s, duration %.2f s, want %s and %v within 1 s", probe.Out, dur, codec, total)
	}

	// A range with nothing in it says so.
	if _, err := record.Playlist(recs, to.Add(time.Hour), to.Add(2*time.Hour), func(record.Recording) string { return "" }); err == nil {
		t.Error("a playlist for a range without footage")
	}
}

func TestReconcileAfterCrash(t *testing.T) {
	rc := recordFor(t, 8*time.Second)
	pool, dir, store := rc.pool, rc.dir, rc.store
	recs, _ := rc.list(t)
	if len(recs) < 3 {
		t.Fatalf("%d recordings, want 3 or more", len(recs))
	}
	// A file being written: its last fragment reached the disk, not yet
	// the index.
	open := recs[1]
	if _, err := pool.Exec(context.Background(), `UPDATE recordings SET open = true, fragments = $2, bytes = $3 WHERE id = $1`,
		open.ID, open.Fragments[:len(open.Fragments)-1], open.Fragments[len(open.Fragments)-1].Offset); err != nil {
		t.Fatal(err)
	}
	// As after a power cut: the last file was never indexed and its last
	// fragment is torn; another file vanished from the disk.
	last, gone := recs[len(recs)-1], recs[0]
	if _, err := pool.Exec(context.Background(), `DELETE FROM recordings WHERE id = $1`, last.ID); err != nil {
		t.Fatal(err)
	}
	lastFrag := last.Fragments[len(last.Fragments)-1]
	if err := os.Truncate(filepath.Join(dir, last.Path), lastFrag.Offset+lastFrag.Size/2); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, gone.Path)); err != nil {
		t.Fatal(err)
	}
	// And a file that never got a whole fragment.
	stub := filepath.Join(dir, fmt.Sprint(rc.id), "2026-01-01", "1767225600000.mp4")
	if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stub, []byte("\x00\x00\x00\x08ftyp"), 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err := record.NewRecorder(record.Config{Dir: dir}, store).Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Indexed != 1 || rep.Truncated != 1 || rep.Missing != 1 || rep.Removed != 1 || rep.Finished != 1 {
		t.Errorf("reconcile: %+v, want 1 indexed (truncated), 1 missing, 1 removed, 1 finished", rep)
	}
	if r, err := store.Get(context.Background(), open.ID); err != nil || r.Open || len(r.Fragments) != len(open.Fragments) || r.Bytes != open.Bytes {
		t.Errorf("the open file after reconcile: open %v, %d fragments, %d bytes (%v); want closed, %d, %d",
			r.Open, len(r.Fragments), r.Bytes, err, len(open.Fragments), open.Bytes)
	}
	again, _ := rc.list(t)
	var back record.Recording
	for _, r := range again {
		if r.Path == last.Path {
			back = r
		}
		if r.Path == gone.Path && r.Status != "missing" {
			t.Errorf("the vanished file is %q, want missing", r.Status)
		}
	}
	if len(back.Fragments) != len(last.Fragments)-1 || back.Start.UnixMilli() != last.Start.UnixMilli() {
		t.Errorf("re-indexed: %d fragments from %v, want %d from %v", len(back.Fragments), back.Start, len(last.Fragments)-1, last.Start)
	}
	if st, _ := os.Stat(filepath.Join(dir, back.Path)); st == nil || st.Size() != back.Bytes {
		t.Error("the torn fragment was not cut off the file")
	}
	if _, err := os.Stat(stub); err == nil {
		t.Error("a file without a whole fragment was kept")
	}
	if err := record.CheckRange(rc.to, rc.from); err == nil || !strings.Contains(err.Error(), "not after") {
		t.Errorf("reversed range: %v", err)
	}
}

func TestRetention(t *testing.T) {
	rc := recordFor(t, 7*time.Second)
	pool, dir, store, id := rc.pool, rc.dir, rc.store, rc.id
	ctx := context.Background()
	recs, _ := rc.list(t)
	if len(recs) < 2 {
		t.Fatalf("%d recordings, want 2 or more", len(recs))
	}
	var total int64
	for _, r := range recs {
		total += r.Bytes
	}
	rec := record.NewRecorder(record.Config{Dir: dir}, store)
	// The newest file is evidence for an incident: it is never removed.
	// (The link covers its second half only: files are back to back, and
	// the one before may end a few milliseconds into it.)
	held := recs[len(recs)-1]
	in, _, err := incident.NewService(pool, incident.Options{}).Create(ctx, incident.NewIncident{Source: "patrol", Category: "0101",
		Title: "evidence", Lon: 113.68, Lat: 34.79, ReportedAt: held.Start, Priority: "normal"}, incident.Reporter{Name: "test"}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AddLink(ctx, in.ID, id, held.Start.Add(held.End.Sub(held.Start)/2), held.End, "test"); err != nil {
		t.Fatal(err)
	}
	// One byte over the quota: the oldest file alone goes.
	rep, err := rec.Retain(ctx, record.Retention{MaxBytes: total - 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	after, _ := rc.list(t)
	if rep.Files != 1 || rep.Bytes != recs[0].Bytes || len(after) != len(recs)-1 || after[0].ID != recs[1].ID {
		t.Errorf("quota: removed %+v, %d left; want the oldest of %d", rep, len(after), len(recs))
	}
	if _, err := os.Stat(filepath.Join(dir, recs[0].Path)); err == nil {
		t.Error("the oldest file is still on disk")
	}
	// The camera keeps its footage 2 days, whatever the service default:
	// a day later, nothing goes; three days later, all of it (but the
	// held file).
	days := 2
	if _, err := camera.NewStore(pool).Update(ctx, id, camera.Patch{RetentionDays: &days}, geo.CRSWGS84); err != nil {
		t.Fatal(err)
	}
	if rep, err := rec.Retain(ctx, record.Retention{MaxAge: time.Hour}, time.Now().Add(24*time.Hour)); err != nil || rep.Files != 0 {
		t.Errorf("a day later with 2 retention days: removed %+v, %v", rep, err)
	}
	rep, err = rec.Retain(ctx, record.Retention{MaxAge: 30 * 24 * time.Hour}, time.Now().Add(3*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if after, _ = rc.list(t); len(after) != 1 || after[0].ID != held.ID || rep.Files != len(recs)-2 {
		t.Errorf("retention days: removed %+v, %d left; want all but the held file", rep, len(after))
	}
	// Even over the quota, held footage stays.
	if rep, err := rec.Retain(ctx, record.Retention{MaxBytes: 1 << 20 / 1024}, time.Now()); err != nil || rep.Files != 0 {
		t.Errorf("quota with only held footage left: %+v, %v", rep, err)
	}
}
