package domain

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"gridwatch/incident"
)

// testDemoGrids is the demo city's grids as the year's generator sees
// them, with a team of three each and placement by the grids' polygons.
func testDemoGrids(t *testing.T) []demoGrid {
	t.Helper()
	city, err := demoCityGrids()
	if err != nil {
		t.Fatal(err)
	}
	var out []demoGrid
	for i, f := range city {
		b := f.Geometry.Bounds()
		geom := f.Geometry
		out = append(out, demoGrid{
			population: number(f.Properties["population"]),
			box:        [4]float64{b.Min(0), b.Min(1), b.Max(0), b.Max(1)},
			team: []incident.Staff{{ID: int64(i*3 + 1), Role: "leader", Name: "甲"}, {ID: int64(i*3 + 2), Role: "volunteer", Name: "乙"},
				{ID: int64(i*3 + 3), Role: "staff", Name: "丙"}},
			inside: func(lon, lat float64) bool { return polygonContains(geom, lon, lat) },
		})
		out[i].ref.ID, out[i].ref.Code, out[i].ref.Name = int64(i+1), f.Code, f.Name
	}
	return out
}

func testDemoCategories() []demoCategory {
	var all []incident.Category
	add := func(code, name string, hours int) {
		c := incident.Category{Code: code, Name: name, DeadlineHours: hours}
		if len(code) == 4 {
			p := code[:2]
			c.ParentCode = &p
		}
		all = append(all, c)
	}
	for _, c := range []struct {
		code string
		h    int
	}{{"01", 24}, {"0101", 24}, {"0102", 24}, {"0103", 12}, {"0104", 48}, {"02", 48}, {"0201", 24}, {"0202", 72}, {"0203", 48},
		{"03", 24}, {"0301", 4}, {"0302", 24}, {"0303", 72}, {"04", 2}, {"0401", 2}, {"0402", 2}, {"0403", 1}, {"0404", 4},
		{"05", 12}, {"0501", 12}, {"0502", 4}, {"0503", 4}, {"0504", 4}, {"06", 72}, {"0601", 72},
		{"07", 24}, {"0701", 2}, {"0702", 48}, {"0703", 12}, {"0704", 48}, {"0705", 72}} {
		add(c.code, c.code, c.h)
	}
	return demoCategories(all)
}

// TestDemoYearGenerator: the same day gives the same cases and another
// day other ones; the year has DemoYearCases cases, in time order, over
// the twelve months before the day, in every grid, with 市容环境 and 街面
// 秩序 the commonest classes, no step after the day began, a few dozen
// left open and some of those past their deadline already.
func TestDemoYearGenerator(t *testing.T) {
	grids, cats := testDemoGrids(t), testDemoCategories()
	morning := time.Date(2026, 3, 10, 8, 5, 0, 0, demoZone)
	a := demoYear(morning, grids, cats, nil)
	b := demoYear(morning.Add(14*time.Hour), grids, cats, nil)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs on the same day made different cases")
	}
	if c := demoYear(morning.AddDate(0, 0, 1), grids, cats, nil); reflect.DeepEqual(a, c) {
		t.Error("the next day made the same cases")
	}
	if len(a) != DemoYearCases {
		t.Fatalf("%d cases, want %d", len(a), DemoYearCases)
	}
	end := time.Date(2026, 3, 10, 0, 0, 0, 0, demoZone)
	start := end.AddDate(0, 0, -365)
	hours := map[string]int{}
	for _, c := range cats {
		hours[c.Code] = c.DeadlineHours
	}
	months, classes, perGrid := map[string]int{}, map[string]int{}, map[string]int{}
	open, overdue, late, onTime := 0, 0, 0, 0
	seen := map[string]bool{}
	for i, c := range a {
		if c.ReportedAt.Before(start) || !c.ReportedAt.Before(end) || (i > 0 && c.ReportedAt.Before(a[i-1].ReportedAt)) {
			t.Fatalf("case %s reported %v: not in [%v, %v) in order", c.ExternalID, c.ReportedAt, start, end)
		}
		if seen[c.ExternalID] {
			t.Fatalf("external id %s twice", c.ExternalID)
		}
		seen[c.ExternalID] = true
		months[c.ReportedAt.In(demoZone).Format("2006-01")]++
		classes[c.Category[:2]]++
		last := incident.Reported
		for _, st := range c.Steps {
			if !st.At.Before(end) {
				t.Fatalf("case %s has a step at %v, after the day began", c.ExternalID, st.At)
			}
			last = st.To
		}
		due := c.ReportedAt.Add(time.Duration(hours[c.Category]) * time.Hour)
		switch {
		case last.Open():
			open++
			if due.Before(end) {
				overdue++
			}
		case last == incident.Closed && c.Steps[len(c.Steps)-1].At.After(due):
			late++
		case last == incident.Closed:
			onTime++
		}
		for _, g := range grids {
			if g.inside(c.Lon, c.Lat) {
				perGrid[g.ref.Code]++
			}
		}
	}
	if len(months) < 12 {
		t.Errorf("cases in %d months, want 12 or 13: %v", len(months), months)
	}
	for m, n := range months {
		if n < 300 && m != start.Format("2006-01") && m != end.AddDate(0, 0, -1).Format("2006-01") {
			t.Errorf("month %s has %d cases", m, n)
		}
	}
	if len(perGrid) != len(grids) {
		t.Errorf("cases in %d grids, want all %d", len(perGrid), len(grids))
	}
	top := []string{}
	for cl, n := range classes {
		if n > classes["07"] && n > classes["02"] {
			top = append(top, cl)
		}
	}
	if len(top) != 2 || !strings.Contains(strings.Join(top, ","), "01") || !strings.Contains(strings.Join(top, ","), "05") {
		t.Errorf("cases by class %v: want 01 and 05 the commonest", classes)
	}
	if open < 20 || open > 99 || overdue < 5 {
		t.Errorf("%d open, %d of them overdue; want a few dozen open and some overdue", open, overdue)
	}
	if late < 500 || onTime < 10*late/2 {
		t.Errorf("%d closed on time, %d late; want most on time and some late", onTime, late)
	}
	t.Logf("%d cases: %d open (%d overdue), %d closed on time, %d late; by class %v", len(a), open, overdue, onTime, late, classes)

	photos := addDemoPhotos(a)
	if photos < 150 || photos > 600 {
		t.Errorf("%d photos, want a few hundred", photos)
	}
}

// TestDemoBaseGenerator: the base data is the same on every run; each grid
// has 12–20 buildings and about 20 components, a few damaged or lost; the
// people are plainly synthetic — every ID number of the demo district with
// its birth date and a wrong check character, every phone starting with
// 100 — and the care flags come at about the rates asked.
func TestDemoBaseGenerator(t *testing.T) {
	grids, err := demoCityGrids()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	data := demoBase(grids, 2026)
	t.Logf("generated in %v: %d buildings, %d parcels, %d components, %d households, %d residents",
		time.Since(start).Round(time.Millisecond), len(data.Buildings), len(data.Parcels), len(data.Components), data.Households, len(data.Residents))
	if again := demoBase(grids, 2026); !reflect.DeepEqual(data, again) {
		t.Fatal("two runs made different base data")
	}
	perGrid := map[string]int{}
	for _, b := range data.Buildings {
		perGrid[b.Grid]++
	}
	for _, g := range grids {
		if n := perGrid[g.Code]; n < 12 || n > 20 {
			t.Errorf("grid %s has %d buildings, want 12 to 20", g.Code, n)
		}
	}
	states := map[string]int{}
	for _, c := range data.Components {
		states[c.State]++
	}
	if n := len(data.Components); n < 18*len(grids) || n > 22*len(grids) || states["damaged"] == 0 || states["lost"] == 0 || states["damaged"]+states["lost"] > n/10 {
		t.Errorf("%d components by state %v: want about 20 a grid, a few damaged or lost", n, states)
	}
	if per := float64(len(data.Residents)) / float64(data.Households); per < 2.4 || per > 3.5 {
		t.Errorf("%.2f residents a household, want about 3", per)
	}
	care := map[string]int{}
	ids := map[string]bool{}
	for _, r := range data.Residents {
		id := r.IDNumber
		if len(id) != 18 || !strings.HasPrefix(id, "410105") || id[6:14] != r.Birth.Format("20060102") {
			t.Fatalf("resident %s: ID %s is not the district's with the birth date %v", r.Name, id, r.Birth)
		}
		if DemoIDChecks(id) {
			t.Fatalf("resident %s: ID %s has a right check character", r.Name, id)
		}
		if male := (id[16]-'0')%2 == 1; male != (r.Gender == "male") {
			t.Fatalf("resident %s: ID %s does not say the gender %s", r.Name, id, r.Gender)
		}
		if ids[id] {
			t.Fatalf("ID %s drawn twice", id)
		}
		ids[id] = true
		if r.Phone != "" && (len(r.Phone) != 11 || !strings.HasPrefix(r.Phone, "100")) {
			t.Fatalf("resident %s: phone %s", r.Name, r.Phone)
		}
		for _, f := range r.Care {
			care[f]++
		}
	}
	n := float64(len(data.Residents))
	for flag, want := range map[string][2]float64{"elderly_alone": {0.02, 0.045}, "disabled": {0.013, 0.03}, "low_income": {0.012, 0.03},
		"left_behind_minor": {0.005, 0.016}, "community_correction": {0.0005, 0.004}, "veteran": {0.006, 0.016}} {
		if r := float64(care[flag]) / n; r < want[0] || r > want[1] {
			t.Errorf("%s: %.2f%% of residents, want %.1f%%–%.1f%%", flag, 100*r, 100*want[0], 100*want[1])
		}
	}
}

// TestIDCheck: the check is GB 11643's (the standard's own example checks)
// and a demo ID fails it.
func TestIDCheck(t *testing.T) {
	if !DemoIDChecks("11010519491231002X") {
		t.Error("GB 11643's example 11010519491231002X does not check")
	}
	if DemoIDChecks("110105194912310021") {
		t.Error("a wrong check character checks")
	}
}
