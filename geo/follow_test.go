package geo_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"gridwatch/camera"
	"gridwatch/geo"
)

// placedLikeFromScratch fails t unless every camera and every case not yet
// registered is in the grid a placement from scratch gives it (the finest
// grid covering it, the lowest code on a shared edge) and every camera is
// linked to exactly the grids its cone sees: what the re-placement of the
// whole city after each change used to ensure. Written here in its own SQL,
// not with geo.GridAt, to check the participants independently.
func (f *fixture) placedLikeFromScratch(after string) {
	f.t.Helper()
	const best = `(SELECT g.id FROM grids g WHERE ST_Covers(g.geom, x.location) ORDER BY g.level_rank DESC, g.code LIMIT 1)`
	var cams, cases, links int
	if err := f.pool.QueryRow(f.ctx, `SELECT
		(SELECT count(*) FROM cameras x WHERE x.grid_id IS DISTINCT FROM `+best+`),
		(SELECT count(*) FROM incidents x WHERE x.status = 'reported' AND x.grid_id IS DISTINCT FROM `+best+`),
		(SELECT count(*) FROM (
			(SELECT camera_id, grid_id FROM camera_grids
			 EXCEPT SELECT c.id, g.id FROM cameras c JOIN grids g ON g.level = 'grid' AND ST_Relate(g.geom, c.cone, '2********'))
			UNION ALL
			(SELECT c.id, g.id FROM cameras c JOIN grids g ON g.level = 'grid' AND ST_Relate(g.geom, c.cone, '2********')
			 EXCEPT SELECT camera_id, grid_id FROM camera_grids)) d)`).Scan(&cams, &cases, &links); err != nil {
		f.t.Fatal(err)
	}
	if cams+cases+links != 0 {
		f.t.Errorf("after %s: %d cameras and %d cases not in the grid covering them, %d camera links not what the cones see", after, cams, cases, links)
	}
}

// TestParticipantsPlaceLikeFromScratch: cameras (with cones across the
// boundaries) and cases on a lattice that crosses every edge a change
// moves end where a placement from scratch puts them, after a move of an
// edge, a redraw, a split, a merge, a delete and an import.
func TestParticipantsPlaceLikeFromScratch(t *testing.T) {
	f := newFixture(t)
	a, b := f.ids[codeA], f.ids[codeB]
	heading, fov, rng := 80.0, 70.0, 60.0
	n := 0
	for _, x := range []float64{west + 10*metre, mid - 35*metre, mid - 10*metre, mid, mid + 20*metre, mid + 40*metre, east - 20*metre} {
		for _, y := range []float64{south + 10*metre, south + 200*metre, (south + north) / 2, north - 10*metre} {
			n++
			sp := camera.Spec{Code: fmt.Sprintf("LAT-%02d", n), Name: "lattice", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{x, y}},
				Heading: &heading, FOV: &fov, Range: &rng, MainURL: "rtsp://127.0.0.1:1/x"}
			if err := sp.Check(geo.CRSWGS84); err != nil {
				t.Fatal(err)
			}
			if _, err := f.cams.Create(f.ctx, sp); err != nil {
				t.Fatal(err)
			}
			f.incident(fmt.Sprintf("lattice %d", n), x, y, false)
		}
	}
	f.placedLikeFromScratch("placing")

	edge := line(t, [2]float64{mid + 40*metre, south}, [2]float64{mid + 40*metre, north})
	if _, err := f.grids.MoveEdge(f.ctx, a, b, edge, geo.ChangeOptions{IfMatch: f.version(codeA)}, f.version(codeB)); err != nil {
		t.Fatal(err)
	}
	f.placedLikeFromScratch("the edge moved")

	if _, err := f.grids.Redraw(f.ctx, a, mustGeometry(t, rect(west, south, mid-30*metre, north)), geo.ChangeOptions{IfMatch: f.version(codeA)}); err != nil {
		t.Fatal(err)
	}
	f.placedLikeFromScratch("the redraw")

	blade := line(t, [2]float64{west, south + 200*metre}, [2]float64{mid - 30*metre, south + 200*metre})
	rep, err := f.grids.Split(f.ctx, a, blade, geo.NewGrid{Code: "410105001001003", Name: "文化三网格"}, geo.ChangeOptions{IfMatch: f.version(codeA)})
	if err != nil {
		t.Fatal(err)
	}
	f.placedLikeFromScratch("the split")
	created := createdGrid(rep)
	if _, err := f.grids.Merge(f.ctx, a, created, geo.ChangeOptions{IfMatch: f.version(codeA)}, 1); err != nil {
		t.Fatal(err)
	}
	f.placedLikeFromScratch("the merge")

	if err := f.grids.DeleteVersion(f.ctx, b, f.version(codeB)); err != nil {
		t.Fatal(err)
	}
	f.placedLikeFromScratch("the delete")

	fs, err := geo.ParseFeatureCollection([]byte(`{"type":"FeatureCollection","features":[`+
		feature("410105001001004", "文化四网格", "grid", codeC, rect(mid-30*metre, south, east, north))+`]}`), geo.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.grids.Import(f.ctx, fs, geo.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	f.placedLikeFromScratch("the import")
}

// TestImportMovesCamerasAndCases: a camera and a case in the area of an
// imported grid go to it; one outside stays.
func TestImportMovesCamerasAndCases(t *testing.T) {
	f := newFixture(t)
	// Beside the fixture's district, where no grid is yet.
	x0, x1 := east+100*metre, east+600*metre
	inCam, outCam := f.camera("CAM-NEW", (x0+x1)/2, (south+north)/2), f.camera("CAM-FAR", x1+200*metre, (south+north)/2)
	inCase, outCase := f.incident("in the new district", (x0+x1)/2, (south+north)/2+10*metre, false), f.incident("far", x1+200*metre, (south+north)/2, false)
	if f.gridOf("cameras", inCam) != "" || f.gridOf("incidents", inCase) != "" {
		t.Fatal("fixture: a camera or case in a grid before its grid is imported")
	}
	fs, err := geo.ParseFeatureCollection([]byte(`{"type":"FeatureCollection","features":[`+
		feature("410106", "新区", "district", "", rect(x0, south, x1, north))+`]}`), geo.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.grids.Import(f.ctx, fs, geo.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.gridOf("cameras", inCam) != "410106" || f.gridOf("incidents", inCase) != "410106" || f.gridOf("cameras", outCam) != "" || f.gridOf("incidents", outCase) != "" {
		t.Errorf("after the import: camera in %q, case in %q (want 410106); outside ones in %q, %q (want none)",
			f.gridOf("cameras", inCam), f.gridOf("incidents", inCase), f.gridOf("cameras", outCam), f.gridOf("incidents", outCase))
	}
	f.placedLikeFromScratch("the import")
}

// TestHandovers: participants are told which grid handed area to which.
func TestHandovers(t *testing.T) {
	f := newFixture(t)
	a, b := f.ids[codeA], f.ids[codeB]
	type pair struct{ from, to int64 }
	var got []pair
	f.grids.Participate(func(_ context.Context, _ pgx.Tx, ch *geo.Change) error {
		got = got[:0]
		for _, h := range ch.Handovers {
			if h.Area == nil || h.Area.Area() <= 0 {
				t.Errorf("%s: handover %d→%d without area", ch.Kind, h.From, h.To)
			}
			got = append(got, pair{h.From, h.To})
		}
		return nil
	})
	check := func(what string, want ...pair) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: handovers %v, want %v", what, got, want)
		}
	}
	edge := line(t, [2]float64{mid + 40*metre, south}, [2]float64{mid + 40*metre, north})
	if _, err := f.grids.MoveEdge(f.ctx, a, b, edge, geo.ChangeOptions{IfMatch: -1, DryRun: true}, -1); err != nil {
		t.Fatal(err)
	}
	check("an edge moved east", pair{b, a})
	if _, err := f.grids.Redraw(f.ctx, a, mustGeometry(t, rect(west, south, mid-30*metre, north)), geo.ChangeOptions{IfMatch: -1, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	check("a redraw smaller", pair{a, 0})
	rep, err := f.grids.Split(f.ctx, a, line(t, [2]float64{west, south + 200*metre}, [2]float64{mid, south + 200*metre}),
		geo.NewGrid{Code: "410105001001003", Name: "文化三网格"}, geo.ChangeOptions{IfMatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	created := createdGrid(rep)
	check("a split", pair{a, created})
	if _, err := f.grids.Merge(f.ctx, a, created, geo.ChangeOptions{IfMatch: -1, DryRun: true}, -1); err != nil {
		t.Fatal(err)
	}
	check("a merge", pair{created, a})
	if err := f.grids.Delete(f.ctx, b); err != nil {
		t.Fatal(err)
	}
	check("a delete", pair{b, 0})
}

// createdGrid is the id of the grid a change report says was created.
func createdGrid(rep *geo.ChangeReport) int64 {
	for _, g := range rep.Grids {
		if g.Created {
			return g.ID
		}
	}
	return 0
}
