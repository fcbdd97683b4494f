package record_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"gridwatch/camera"
	"gridwatch/camera/camsim"
	"gridwatch/camera/pull"
	"gridwatch/camera/record"
	"gridwatch/internal/events"
	"gridwatch/internal/testtool"
)

// all lists every recording and gap of the camera within three hours of
// now either way (the clock-step test labels footage an hour off).
func (rc recorded) all(t *testing.T) ([]record.Recording, []record.Gap) {
	t.Helper()
	now := time.Now()
	recs, gaps, err := rc.store.List(context.Background(), rc.id, now.Add(-3*time.Hour), now.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return recs, gaps
}

// waitClosed waits until the index holds n closed files of the camera
// (or more) and returns them.
func (rc recorded) waitClosed(t *testing.T, n int) []record.Recording {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs, _ := rc.all(t)
		var closed []record.Recording
		for _, r := range recs {
			if !r.Open {
				closed = append(closed, r)
			}
		}
		if len(closed) >= n {
			return closed
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d closed files after 60 s, want %d", len(closed), n)
		}
		<-time.After(100 * time.Millisecond) // the index has no event to wait on: polled
	}
}

// checkIndex asserts what the index must hold whatever the camera or the
// clock did: every recording ends after it starts, none overlaps the one
// before, none overlaps a gap, none is longer than maxFile, and each file
// plays (ffprobe decodes its pictures, of the size its row says).
func checkIndex(t *testing.T, rc recorded, recs []record.Recording, gaps []record.Gap, maxFile time.Duration) {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("no recordings")
	}
	for i, r := range recs {
		if !r.End.After(r.Start) {
			t.Errorf("recording %d: %v to %v: ends before it starts", i, r.Start, r.End)
		}
		if d := r.End.Sub(r.Start); d > maxFile {
			t.Errorf("recording %d: %v long, want at most %v", i, d, maxFile)
		}
		if i > 0 && r.Start.Before(recs[i-1].End) {
			t.Errorf("recording %d starts at %v, %v before recording %d ends", i, r.Start, recs[i-1].End.Sub(r.Start), i-1)
		}
		for _, g := range gaps {
			if r.Start.Before(g.To) && g.From.Before(r.End) {
				t.Errorf("recording %d (%v to %v) overlaps the gap %v to %v", i, r.Start, r.End, g.From, g.To)
			}
		}
		probe := testtool.FFprobe(t, "-count_frames", "-show_entries", "stream=width,height,nb_read_frames", filepath.Join(rc.dir, r.Path))
		if len(probe.Streams) == 0 {
			t.Errorf("file %s: no stream", r.Path)
			continue
		}
		s := probe.Streams[0]
		n, _ := strconv.Atoi(s.ReadFrames)
		if n == 0 || s.Width != r.Width || s.Height != r.Height {
			t.Errorf("file %s: ffprobe reads %d pictures of %dx%d; indexed %dx%d", r.Path, n, s.Width, s.Height, r.Width, r.Height)
		}
	}
}

// A camera that changes its picture size while it records: the file at
// the change is closed and a new one starts, indexed with the new size.
func TestRecordResize(t *testing.T) {
	var changed time.Time
	rc := recordRun(t, recordOpts{during: func(sim *camsim.Sim, rc recorded) {
		before := len(rc.waitClosed(t, 1))
		sim.SetFault(1, camsim.FaultResize)
		changed = time.Now()
		rc.waitClosed(t, before+2)
	}})
	recs, gaps := rc.all(t)
	checkIndex(t, rc, recs, gaps, 5*time.Second)
	if len(gaps) != 0 {
		t.Errorf("gaps %+v: the camera never stopped", gaps)
	}
	small := 0
	for i, r := range recs {
		switch {
		case r.Width == 640 && r.Height == 360:
			if small > 0 {
				t.Errorf("recording %d: 640x360 after the change", i)
			}
		case r.Width == 320 && r.Height == 180:
			if small == 0 {
				t.Logf("RELIABILITY: resize: first 320x180 file starts %v after the fault was set, %v after the file before ended",
					r.Start.Sub(changed).Round(time.Millisecond), r.Start.Sub(recs[i-1].End).Round(time.Millisecond))
				if i == 0 || r.Start.Sub(recs[i-1].End) > 300*time.Millisecond {
					t.Errorf("the first file of the new size does not follow the last of the old one")
				}
			}
			small++
		default:
			t.Errorf("recording %d: %dx%d", i, r.Width, r.Height)
		}
	}
	if small == 0 {
		t.Fatal("no file of the new size")
	}
}

// A camera whose RTP clock jumps forward, back and through the wrap
// while it records: the files follow one another without overlap or
// gap, none longer than a file should be.
func TestRecordTimestampJumps(t *testing.T) {
	rc := recordRun(t, recordOpts{during: func(sim *camsim.Sim, rc recorded) {
		n := len(rc.waitClosed(t, 1))
		for _, f := range []camsim.Fault{camsim.FaultTSJump, camsim.FaultTSBack, camsim.FaultTSWrap} {
			sim.SetFault(1, f)
			n = len(rc.waitClosed(t, n+2))
		}
	}})
	recs, gaps := rc.all(t)
	checkIndex(t, rc, recs, gaps, 5*time.Second)
	if len(gaps) != 0 {
		t.Errorf("gaps %+v: the camera never stopped", gaps)
	}
	var total time.Duration
	for i, r := range recs {
		total += r.End.Sub(r.Start)
		if i > 0 && r.Start.Sub(recs[i-1].End) > 300*time.Millisecond {
			t.Errorf("recordings %d and %d: %v apart, want back to back", i-1, i, r.Start.Sub(recs[i-1].End))
		}
	}
	if span := recs[len(recs)-1].End.Sub(recs[0].Start); (span - total).Abs() > time.Second {
		t.Errorf("%v recorded over %v", total, span)
	}
}

// A camera that sends no keyframe for a while: recording goes on while
// the pictures decode, then stops (a gap); it resumes at the first
// keyframe after the fault clears, and every file plays.
func TestRecordNoKeyframes(t *testing.T) {
	var cleared time.Time
	rc := recordRun(t, recordOpts{
		pull: func(c *pull.Config) { c.KeyTimeout, c.MaxKeyTimeout = 2*time.Second, 2*time.Second },
		during: func(sim *camsim.Sim, rc recorded) {
			rc.waitClosed(t, 1)
			sim.SetFault(1, camsim.FaultNoKey)
			<-time.After(6 * time.Second) // the fault's length is the point of the test
			sim.SetFault(1, camsim.FaultNone)
			cleared = time.Now()
			// A file that starts after the fault, closed.
			deadline := time.Now().Add(60 * time.Second)
			for {
				recs := rc.waitClosed(t, 1)
				if last := recs[len(recs)-1]; last.Start.After(cleared) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("no file after the fault cleared")
				}
				<-time.After(100 * time.Millisecond) // polled, as waitClosed
			}
		}})
	recs, gaps := rc.all(t)
	checkIndex(t, rc, recs, gaps, 5*time.Second)
	if len(gaps) == 0 {
		t.Errorf("no gap: the camera sent nothing recordable for seconds")
	}
	for _, r := range recs {
		if r.Start.After(cleared) {
			t.Logf("RELIABILITY: nokey: recording resumed %v after the fault cleared", r.Start.Sub(cleared).Round(time.Millisecond))
			if d := r.Start.Sub(cleared); d > 5*time.Second {
				t.Errorf("recording resumed %v after the fault cleared", d)
			}
			break
		}
	}
}

// stepClock is a wall clock that can be stepped, as NTP or an operator
// steps a server's.
type stepClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *stepClock) step(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// The wall clock steps an hour forward, then two back, while a camera
// records: no recording overlaps another or ends before it starts, none
// grows by the step, and no gap is recorded (the camera never stopped).
// After the step forward the files are labelled by the new time; after
// the step back they go on from where the last one ended.
func TestRecordClockSteps(t *testing.T) {
	clock := &stepClock{}
	var forward, back time.Time
	rc := recordRun(t, recordOpts{
		config: func(c *record.Config) { c.Now = clock.Now },
		during: func(_ *camsim.Sim, rc recorded) {
			n := len(rc.waitClosed(t, 1))
			clock.step(time.Hour)
			forward = time.Now()
			n = len(rc.waitClosed(t, n+2))
			clock.step(-2 * time.Hour)
			back = time.Now()
			rc.waitClosed(t, n+3)
		}})
	recs, gaps := rc.all(t)
	checkIndex(t, rc, recs, gaps, 5*time.Second)
	if len(gaps) != 0 {
		t.Errorf("gaps %+v: the camera never stopped", gaps)
	}
	var afterForward, afterBack int
	for i, r := range recs {
		if i == 0 {
			continue
		}
		prev := recs[i-1]
		switch {
		case r.Start.Sub(prev.End) > 50*time.Minute:
			// The file after the step forward starts on the new clock.
			afterForward++
			if d := r.Start.Sub(forward.Add(time.Hour)); d < -time.Second || d > 10*time.Second {
				t.Errorf("the file after the step forward starts %v from the new clock", d)
			}
		case r.Start.Equal(prev.End) && r.Start.After(time.Now().Add(30*time.Minute)):
			// After the step back, files go on from the last end, ahead of
			// the clock, instead of an hour back over the footage already
			// indexed.
			afterBack++
		}
	}
	if afterForward != 1 || afterBack < 2 {
		t.Errorf("%d files after the step forward (want 1 that jumps), %d after the step back that go on from the last (want 2 or more)", afterForward, afterBack)
	}
	t.Logf("%d files; steps at %v and %v", len(recs), forward.Format(time.TimeOnly), back.Format(time.TimeOnly))
}

// TestRecordingProblemShown: files that cannot be opened (the camera's
// directory is replaced by a file) are a recording problem on the camera
// (the registry's recording_error, a camera.recording event); once files
// are written again the problem is cleared, and said once each way.
func TestRecordingProblemShown(t *testing.T) {
	var failed, recovered recordingEvent
	recordRun(t, recordOpts{during: func(_ *camsim.Sim, rc recorded) {
		rc.waitClosed(t, 1)
		camDir := filepath.Join(rc.dir, strconv.FormatInt(rc.id, 10))
		if err := os.Rename(camDir, camDir+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(camDir, []byte("in the way"), 0o600); err != nil {
			t.Fatal(err)
		}
		failed = waitRecordingEvent(t, rc, func(e recordingEvent) bool { return e.Error != "" })
		failingCameras(t, rc.rec, 1)
		cam, err := camera.NewStore(rc.pool).Get(context.Background(), rc.id, camera.Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		if cam.RecordingError != failed.Error || cam.RecordingErrorSince == nil || !strings.Contains(cam.RecordingError, "not a directory") {
			t.Errorf("camera while failing: recording_error %q since %v; want the event's %q, saying what failed", cam.RecordingError, cam.RecordingErrorSince, failed.Error)
		}
		if err := os.Remove(camDir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(camDir+".away", camDir); err != nil {
			t.Fatal(err)
		}
		recovered = waitRecordingEvent(t, rc, func(e recordingEvent) bool { return e.ID > failed.ID && e.Error == "" })
		failingCameras(t, rc.rec, 0)
		cam, err = camera.NewStore(rc.pool).Get(context.Background(), rc.id, camera.Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		if cam.RecordingError != "" || cam.RecordingErrorSince != nil {
			t.Errorf("camera recording again: recording_error %q since %v, want none", cam.RecordingError, cam.RecordingErrorSince)
		}
		n := len(rc.waitClosed(t, 1))
		rc.waitClosed(t, n+1) // and files close again
	}})
	if failed.Since == nil || recovered.Since != nil {
		t.Errorf("events: failed since %v, recovered since %v; want a time, then none", failed.Since, recovered.Since)
	}
}

// failingCameras checks the recorder's gridwatch_recording_failing_cameras.
func failingCameras(t *testing.T, rec *record.Recorder, want int) {
	t.Helper()
	exp := fmt.Sprintf(`# HELP gridwatch_recording_failing_cameras Cameras this node records whose files cannot be opened or written now (the cameras API's recording_error says why).
# TYPE gridwatch_recording_failing_cameras gauge
gridwatch_recording_failing_cameras %d
`, want)
	if err := testutil.CollectAndCompare(rec, strings.NewReader(exp), "gridwatch_recording_failing_cameras"); err != nil {
		t.Error(err)
	}
}

// recordingEvent is a camera.recording event as the events table holds it.
type recordingEvent struct {
	ID    int64      `json:"-"`
	Error string     `json:"error"`
	Since *time.Time `json:"since"`
}

// waitRecordingEvent waits for a camera.recording event of the camera that
// ok takes, hearing of new events as the dashboard's feed does (LISTEN),
// and fails if more than one such event has the same error (said twice).
func waitRecordingEvent(t *testing.T, rc recorded, ok func(recordingEvent) bool) recordingEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := rc.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+events.Channel); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "UNLISTEN *")
	for {
		rows, err := conn.Query(ctx, `SELECT id, data FROM events WHERE type = $1 AND (data->>'camera_id')::bigint = $2 ORDER BY id`,
			camera.EventRecording, rc.id)
		if err != nil {
			t.Fatal(err)
		}
		var found *recordingEvent
		var prev string
		var seen bool
		for rows.Next() {
			var e recordingEvent
			var data []byte
			if err := rows.Scan(&e.ID, &data); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &e); err != nil {
				t.Fatal(err)
			}
			if seen && e.Error == prev {
				t.Errorf("event %d says %q again", e.ID, e.Error)
			}
			seen, prev = true, e.Error
			if found == nil && ok(e) {
				found = &e
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if found != nil {
			return *found
		}
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			t.Fatalf("no such camera.recording event: %v", err)
		}
	}
}
