package camera

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/paulmach/orb"
	orbgeo "github.com/paulmach/orb/geo"
	"github.com/paulmach/orb/planar"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func TestViewCone(t *testing.T) {
	tests := []struct {
		name                 string
		heading, fov, rangeM float64
	}{
		{"north 60°", 0, 60, 100},
		{"east 90°", 90, 90, 250},
		{"across north 40°", 350, 40, 80},
		{"all round", 0, 360, 50},
	}
	c := orb.Point{113.68, 34.79}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring := ViewCone(c[0], c[1], tt.heading, tt.fov, tt.rangeM)
			if !ring.Closed() || ring.Orientation() != orb.CCW {
				t.Fatalf("ring closed=%v orientation=%v, want a closed counter-clockwise ring", ring.Closed(), ring.Orientation())
			}
			// Every arc point is rangeM from the camera, on the ground.
			for _, p := range ring {
				if p == c {
					continue
				}
				if d := orbgeo.Distance(c, p); math.Abs(d-tt.rangeM) > 0.01*tt.rangeM {
					t.Errorf("arc point %v is %.1f m away, want %.0f", p, d, tt.rangeM)
				}
			}
			// The area is the sector's: π r² fov/360 (within the polygon's chord loss).
			want := math.Pi * tt.rangeM * tt.rangeM * tt.fov / 360
			if got := orbgeo.Area(orb.Polygon{ring}); math.Abs(got-want)/want > 0.02 {
				t.Errorf("area %.0f m², want ≈ %.0f", got, want)
			}
			// A point along the heading at half the range is inside; behind is not.
			ahead := orbgeo.PointAtBearingAndDistance(c, tt.heading, tt.rangeM/2)
			if !planar.RingContains(ring, ahead) {
				t.Errorf("the point ahead %v is outside the cone", ahead)
			}
			if tt.fov < 360 && planar.RingContains(ring, orbgeo.PointAtBearingAndDistance(c, tt.heading+180, tt.rangeM/2)) {
				t.Error("the point behind the camera is inside the cone")
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:S3cret!@10.0.0.7:554/Streaming/Channels/101", "rtsp://10.0.0.7:554/Streaming/Channels/101"},
		{"rtsp://cam.local/live?user=admin&password=S3cret&channel=1", "rtsp://cam.local/live?channel=1"},
		{"rtsp://cam.local/live", "rtsp://cam.local/live"},
		{"rtsp://cam.local/live?PassWord=S3cret&channel=1", "rtsp://cam.local/live?channel=1"},
		{"rtsp://cam.local/user=admin&password=S3cret&channel=1&stream=0.sdp", "rtsp://cam.local/channel=1&stream=0.sdp"},
	}
	for _, tt := range tests {
		got, _ := Redact(tt.in)
		if got != tt.want || strings.Contains(got, "S3cret") {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSpecCheck(t *testing.T) {
	loc := &Point{"Point", [2]float64{113.68, 34.79}}
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name  string
		spec  Spec
		field string
	}{
		{"no code", Spec{Name: "x", Location: loc, MainURL: "rtsp://h/p"}, "code"},
		{"bad code", Spec{Code: "a b", Name: "x", Location: loc, MainURL: "rtsp://h/p"}, "code"},
		{"no name", Spec{Code: "c1", Location: loc, MainURL: "rtsp://h/p"}, "name"},
		{"no location", Spec{Code: "c1", Name: "x", MainURL: "rtsp://h/p"}, "location"},
		{"swapped", Spec{Code: "c1", Name: "x", Location: &Point{"Point", [2]float64{34.79, 113.68}}, MainURL: "rtsp://h/p"}, "location"},
		{"heading", Spec{Code: "c1", Name: "x", Location: loc, Heading: f(400), MainURL: "rtsp://h/p"}, "heading"},
		{"fov 0", Spec{Code: "c1", Name: "x", Location: loc, FOV: f(0), MainURL: "rtsp://h/p"}, "fov"},
		{"range", Spec{Code: "c1", Name: "x", Location: loc, Range: f(9000), MainURL: "rtsp://h/p"}, "range"},
		{"no url", Spec{Code: "c1", Name: "x", Location: loc}, "main_url"},
		{"http url", Spec{Code: "c1", Name: "x", Location: loc, MainURL: "http://u:S3cret@h/p"}, "main_url"},
		{"bad sub", Spec{Code: "c1", Name: "x", Location: loc, MainURL: "rtsp://h/p", SubURL: "ftp://x"}, "sub_url"},
		{"retention", Spec{Code: "c1", Name: "x", Location: loc, MainURL: "rtsp://h/p", RetentionDays: ptr(3651)}, "retention_days"},
		{"negative retention", Spec{Code: "c1", Name: "x", Location: loc, MainURL: "rtsp://h/p", RetentionDays: ptr(-1)}, "retention_days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := tt.spec
			err := sp.Check(geo.CRSWGS84)
			if gridwatch.ErrorDetails(err)["field"] != tt.field {
				t.Fatalf("err = %v, want one naming %s", err, tt.field)
			}
			if strings.Contains(err.Error(), "S3cret") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestStorePlacesCameras(t *testing.T) {
	ctx := context.Background()
	city := geotest.Demo(t)
	s := NewStore(city.Pool)
	// A camera on a vertex shared by grid cells, looking across them.
	vertex := geotest.SharedVertex(city.Features)
	heading, fov, rng := 45.0, 360.0, 150.0
	cam, err := s.Create(ctx, Spec{Code: "JS-001", Name: "经八路口", Location: &Point{"Point", vertex}, Heading: &heading, FOV: &fov, Range: &rng,
		MainURL: "rtsp://admin:S3cret@10.1.1.1:554/main", SubURL: "rtsp://admin:S3cret@10.1.1.1:554/sub"})
	if err != nil {
		t.Fatal(err)
	}
	if cam.Grid == nil || len(cam.Sees) < 2 {
		t.Fatalf("camera at a shared vertex: grid %v, sees %v; want its grid and several it sees", cam.Grid, cam.Sees)
	}
	b, _ := json.Marshal(cam)
	if strings.Contains(string(b), "S3cret") || strings.Contains(string(b), "admin@") || !cam.HasCreds {
		t.Errorf("camera JSON leaks credentials or hides that it has them: %s", b)
	}
	// Moving it re-places it; the credentials stay.
	far := &Point{"Point", [2]float64{100, 30}}
	moved, err := s.Update(ctx, cam.ID, Patch{Location: far}, geo.CRSWGS84)
	if err != nil || moved.Grid != nil || len(moved.Sees) != 0 || moved.Version != 2 || !moved.HasCreds {
		t.Fatalf("moved: %+v, %v", moved, err)
	}
	if src, err := s.Source(ctx, cam.ID); err != nil || src.MainURL != "rtsp://admin:S3cret@10.1.1.1:554/main" || src.SubURL != "rtsp://admin:S3cret@10.1.1.1:554/sub" {
		t.Errorf("source after an update: %q, %q, %v; want the URLs with their credentials", src.MainURL, src.SubURL, err)
	}
	if _, err := s.Update(ctx, cam.ID, Patch{Version: new(int)}, geo.CRSWGS84); gridwatch.ErrorCode(err) != gridwatch.EConflict {
		t.Errorf("stale version: %v", err)
	}
	back, _ := s.Update(ctx, cam.ID, Patch{Location: &Point{"Point", vertex}}, geo.CRSWGS84)
	// Scope: a viewer of another grid does not see it.
	if _, err := s.Get(ctx, cam.ID, Viewer{Grids: []int64{back.Grid.ID + 100000}}); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("out-of-scope get: %v", err)
	}
	// Listing by a grid it only sees into finds it too.
	seen := back.Sees[len(back.Sees)-1]
	l, _, err := s.List(ctx, Filter{GridID: seen.ID}, Viewer{})
	if err != nil || len(l) != 1 {
		t.Errorf("list by a seen grid: %d, %v", len(l), err)
	}
	if _, err := s.Create(ctx, Spec{Code: "JS-001", Name: "dup", Location: &Point{"Point", vertex}, Heading: &heading, FOV: &fov, Range: &rng, MainURL: "rtsp://h/p"}); gridwatch.ErrorCode(err) != gridwatch.EConflict {
		t.Errorf("duplicate code: %v", err)
	}
	if err := s.Delete(ctx, cam.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, cam.ID, Viewer{}); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("deleted: %v", err)
	}
}

// TestImportPlacesCameras: a camera placed before its grids exist is
// assigned and linked once they are imported: the import runs the
// participants, no re-placement of every camera follows.
func TestImportPlacesCameras(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	s := NewStore(pool)
	heading, fov, rng := 0.0, 90.0, 100.0
	cam, err := s.Create(ctx, Spec{Code: "early", Name: "先装的摄像机", Location: &Point{"Point", [2]float64{113.68, 34.79}}, Heading: &heading, FOV: &fov, Range: &rng, MainURL: "rtsp://h/p"})
	if err != nil || cam.Grid != nil {
		t.Fatalf("create before grids: %+v, %v", cam, err)
	}
	grids := geo.NewStore(pool, geo.StoreOptions{})
	grids.Participate(s.FollowGrids)
	geotest.Import(t, grids, geo.DemoCity())
	got, _ := s.Get(ctx, cam.ID, Viewer{})
	if got.Grid == nil || got.Grid.Level != geo.LevelGrid || len(got.Sees) == 0 {
		t.Errorf("after the grids came: grid %v, sees %v", got.Grid, got.Sees)
	}
}

// TestRecordingError: a recording problem shows on a camera that records,
// each change once as a camera.recording event; a camera that does not
// record shows none.
func TestRecordingError(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	s := NewStore(pool)
	sp := Spec{Code: "REC-ERR", Name: "recording camera", Location: &Point{"Point", [2]float64{113.68, 34.79}},
		MainURL: "rtsp://10.1.1.2/main", Record: true}
	if err := sp.Check(geo.CRSWGS84); err != nil {
		t.Fatal(err)
	}
	cam, err := s.Create(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	long := "record: open " + strings.Repeat("目录/", 200) + ": permission denied"
	for range 2 { // the same problem twice: said once
		if err := s.SetRecordingError(ctx, cam.ID, long, at); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, cam.ID, Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.RecordingError, "record: open 目录/") || len(got.RecordingError) > maxProblem+len("…") ||
		!utf8.ValidString(got.RecordingError) || got.RecordingErrorSince == nil || !got.RecordingErrorSince.Equal(at) {
		t.Errorf("recording_error %q since %v: want the problem, cut short whole, since %v", got.RecordingError, got.RecordingErrorSince, at)
	}
	// Recording turned off: nothing to show; on again: the problem stands
	// until the recorder says otherwise.
	for _, record := range []bool{false, true} {
		if _, err := s.Update(ctx, cam.ID, Patch{Record: &record}, geo.CRSWGS84); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, cam.ID, Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		if shown := got.RecordingError != ""; shown != record {
			t.Errorf("record %v: recording_error %q", record, got.RecordingError)
		}
	}
	if err := s.SetRecordingError(ctx, cam.ID, "", at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, cam.ID, Viewer{}); err != nil || got.RecordingError != "" || got.RecordingErrorSince != nil {
		t.Errorf("recording again: %q since %v (%v), want none", got.RecordingError, got.RecordingErrorSince, err)
	}
	rows, _ := pool.Query(ctx, `SELECT data->>'error' FROM events WHERE type = $1 AND (data->>'camera_id')::bigint = $2 ORDER BY id`, EventRecording, cam.ID)
	said, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(said) != 2 || said[0] == "" || said[1] != "" {
		t.Errorf("camera.recording events: %q (%v), want the problem once, then recording again", said, err)
	}
}
