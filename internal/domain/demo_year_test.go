package domain_test

import (
	"bytes"
	"context"
	"image/jpeg"
	"io"
	"maps"
	"testing"
	"time"

	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/domain"
	"gridwatch/internal/pii"
	"gridwatch/internal/testdb"
)

// TestSeedDemoYear seeds the demo with its year of cases and its base
// data, twice: the first time stores DemoYearCases cases (a few dozen
// open, some overdue, in every grid, over twelve months, component cases
// on components of their grid, photos on some) whose history reads as the
// workflow writes it, and the monthly report of a past month counts
// closures on time and late; the second adds nothing.
func TestSeedDemoYear(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	keys, err := pii.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := domain.New(pool, domain.Options{Auth: auth.Options{Hash: cheapHash}, Incidents: incident.Options{AttachmentDir: t.TempDir()},
		Base: basedata.Options{Keys: keys}})
	opts := domain.DemoOptions{Year: true, Base: true}
	start := time.Now()
	if err := d.SeedDemo(ctx, opts); err != nil {
		t.Fatal(err)
	}
	t.Logf("SeedDemo with Year and Base took %v", time.Since(start).Round(time.Millisecond))

	counts := func() map[string]int64 {
		out := map[string]int64{}
		for _, table := range []string{"incidents", "incident_events", "incident_attachments", "buildings", "parcels", "components", "households", "residents", "home_visits"} {
			var n int64
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out[table] = n
		}
		return out
	}
	first := counts()
	t.Logf("stored: %v", first)
	if first["incidents"] != domain.DemoYearCases {
		t.Fatalf("%d incidents, want %d", first["incidents"], domain.DemoYearCases)
	}
	if first["incident_events"] < 5*domain.DemoYearCases || first["incident_attachments"] < 100 {
		t.Errorf("%d steps, %d photos; want about 7 steps a case and a few hundred photos", first["incident_events"], first["incident_attachments"])
	}
	if first["buildings"] < 12*66 || first["components"] < 18*66 || first["parcels"] < 2*66 {
		t.Errorf("base data %v: want 12+ buildings, about 20 components, 2+ parcels a grid", first)
	}
	// The demo leader has looked in on the households needing it: some
	// visited (by the leader, in its community), some not yet.
	var visited, due int64
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT v.household_id) FILTER (WHERE u.username = 'demo-leader' AND v.grid_id IN (SELECT * FROM grid_subtree(ARRAY[(SELECT id FROM grids WHERE code = '410105001001')]))),
			(SELECT count(DISTINCT r.household_id) FROM residents r WHERE r.care && ARRAY['elderly_alone', 'disabled', 'low_income', 'left_behind_minor']
				AND r.grid_id IN (SELECT * FROM grid_subtree(ARRAY[(SELECT id FROM grids WHERE code = '410105001001')]))
				AND NOT EXISTS (SELECT 1 FROM home_visits v WHERE v.household_id = r.household_id))
		FROM home_visits v JOIN users u ON u.id = v.user_id`).Scan(&visited, &due); err != nil {
		t.Fatal(err)
	}
	if visited < 20 || due == 0 || first["home_visits"] < visited {
		t.Errorf("demo visits: %d households visited by demo-leader (%d visits), %d due: want some of each", visited, first["home_visits"], due)
	}

	open, err := d.Incidents.CountFeatures(ctx, incident.FeatureFilter{Filter: incident.Filter{Statuses: incident.OpenStatuses()}}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	overdue, err := d.Incidents.CountFeatures(ctx, incident.FeatureFilter{Filter: incident.Filter{Overdue: true}}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if open < 20 || open > 99 || overdue < 5 {
		t.Errorf("%d open, %d overdue: want a few dozen open, some overdue", open, overdue)
	}
	// The grid shading (open or overdue cases a grid) has something to
	// shade: the open and overdue cases are spread over many grids, not
	// heaped on a few.
	var openGrids, overdueGrids int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT grid_id) FILTER (WHERE status NOT IN ('closed', 'rejected')),
		count(DISTINCT grid_id) FILTER (WHERE status NOT IN ('closed', 'rejected') AND deadline < now()) FROM incidents`).Scan(&openGrids, &overdueGrids); err != nil {
		t.Fatal(err)
	}
	if openGrids < 10 || overdueGrids < 5 {
		t.Errorf("open cases in %d grids, overdue in %d: the shading would show little", openGrids, overdueGrids)
	}

	// Every grid has cases; the months of the year all have some.
	now := time.Now()
	year, err := d.Incidents.Stats(ctx, incident.StatsQuery{From: now.AddDate(-1, 0, -2), To: now}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(year.Rows) != 66 || year.Totals.Reported != domain.DemoYearCases {
		t.Errorf("the year by grid: %d rows, %d reported; want 66 grids, %d", len(year.Rows), year.Totals.Reported, domain.DemoYearCases)
	}
	for _, r := range year.Rows {
		if r.Reported < 50 {
			t.Errorf("grid %s: %d cases", r.Key, r.Reported)
		}
	}
	byMonth, err := d.Incidents.Stats(ctx, incident.StatsQuery{From: now.AddDate(-1, 0, 0), To: now, Group: incident.ByMonth}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range byMonth.Rows[1 : len(byMonth.Rows)-1] {
		if r.Reported < 300 {
			t.Errorf("month %s: %d cases", r.Key, r.Reported)
		}
	}

	// The monthly report (月通报) of last month: closures on time and late.
	loc, _ := time.LoadLocation(incident.DefaultStatsZone)
	thisMonth := time.Date(now.In(loc).Year(), now.In(loc).Month(), 1, 0, 0, 0, 0, loc)
	month, err := d.Incidents.Stats(ctx, incident.StatsQuery{From: thisMonth.AddDate(0, -1, 0), To: thisMonth, Group: incident.ByCategory}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	tot := month.Totals
	if tot.Reported < 1000 || tot.Closed == 0 || tot.ClosedOnTime == 0 || tot.ClosedOnTime == tot.Closed || tot.MedianHours == nil || len(month.Rows) < 15 {
		t.Errorf("last month: %+v in %d categories; want closures on time and late", tot, len(month.Rows))
	}
	// Per grid too: most grids closed cases both on time and late.
	byGrid, err := d.Incidents.Stats(ctx, incident.StatsQuery{From: thisMonth.AddDate(0, -1, 0), To: thisMonth}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	var onTime, late int
	for _, r := range byGrid.Rows {
		if r.ClosedOnTime > 0 {
			onTime++
		}
		if r.Closed > r.ClosedOnTime {
			late++
		}
	}
	if len(byGrid.Rows) != 66 || onTime < 60 || late < 30 {
		t.Errorf("last month by grid: %d grids, %d with closures on time, %d with late ones", len(byGrid.Rows), onTime, late)
	}
	t.Logf("last month: %d reported, %d registered, %d closed (%d on time), median %.1f h",
		tot.Reported, tot.Registered, tot.Closed, tot.ClosedOnTime, *tot.MedianHours)

	// Each case stands where its last step left it.
	var broken int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM incidents i, LATERAL (
			SELECT count(*) AS n, (array_agg(e.to_status ORDER BY e.id DESC))[1] AS last, max(e.at) AS at FROM incident_events e WHERE e.incident_id = i.id) e
		WHERE i.version <> 1 + e.n OR i.status <> coalesce(e.last, 'reported') OR i.updated_at <> coalesce(e.at, i.received_at)
			OR (i.status = 'closed') <> (i.closed_at IS NOT NULL) OR (i.status IN ('dispatched', 'in_progress', 'handled', 'verified', 'closed', 'returned')) <> (i.assignee_id IS NOT NULL)`).Scan(&broken); err != nil {
		t.Fatal(err)
	}
	if broken != 0 {
		t.Errorf("%d cases do not stand where their steps left them", broken)
	}
	// Component cases name a component of their own grid.
	var linked, elsewhere int64
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE k.grid_id IS DISTINCT FROM i.grid_id)
		FROM incidents i JOIN components k ON k.id = i.component_id`).Scan(&linked, &elsewhere); err != nil {
		t.Fatal(err)
	}
	if linked < 1000 || elsewhere != 0 {
		t.Errorf("%d component cases, %d of them in another grid than their component", linked, elsewhere)
	}

	// A photo opens as a JPEG.
	var withPhoto int64
	if err := pool.QueryRow(ctx, "SELECT incident_id FROM incident_attachments ORDER BY id LIMIT 1").Scan(&withPhoto); err != nil {
		t.Fatal(err)
	}
	in, err := d.Incidents.Get(ctx, withPhoto, incident.Viewer{})
	if err != nil || len(in.Attachments) != 1 {
		t.Fatalf("case %d: %v, %v", withPhoto, in, err)
	}
	_, f, err := d.Incidents.OpenAttachment(ctx, withPhoto, in.Attachments[0].ID, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil || in.Attachments[0].ContentType != "image/jpeg" {
		t.Errorf("the photo of case %d: %s, %v", withPhoto, in.Attachments[0].ContentType, err)
	}

	// A grid's summary counts its base data.
	grids, _, err := d.Grids.List(ctx, geo.Filter{Level: geo.LevelGrid, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := d.Base.Summary(ctx, grids[0].ID, basedata.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Buildings < 12 || sum.Components["intact"] < 10 {
		t.Errorf("grid %s summary %+v", grids[0].Code, sum)
	}

	start = time.Now()
	if err := d.SeedDemo(ctx, opts); err != nil {
		t.Fatal(err)
	}
	t.Logf("SeedDemo again took %v", time.Since(start).Round(time.Millisecond))
	if again := counts(); !maps.Equal(again, first) {
		t.Errorf("seeding again changed the counts: %v, first %v", again, first)
	}
}
