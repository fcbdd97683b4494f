package geo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"gridwatch/geo/internal/citygen"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
)

// demoFeature is a feature of a generated city as a test reads it back.
type demoFeature struct {
	Code, Name, ParentCode string
	Level                  Level
	Props                  map[string]any
	GeomType               string
	Geometry               orb.MultiPolygon
}

// parseCity decodes a generated FeatureCollection with encoding/json alone,
// independently of the package's own GeoJSON reader.
func parseCity(tb testing.TB, data []byte) []demoFeature {
	tb.Helper()
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Type       string         `json:"type"`
			Properties map[string]any `json:"properties"`
			Geometry   struct {
				Type        string          `json:"type"`
				Coordinates json.RawMessage `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&fc); err != nil {
		tb.Fatalf("decoding the city: %v", err)
	}
	if fc.Type != "FeatureCollection" {
		tb.Fatalf("got type %q, want FeatureCollection", fc.Type)
	}
	out := make([]demoFeature, 0, len(fc.Features))
	for i, f := range fc.Features {
		if f.Type != "Feature" {
			tb.Fatalf("feature %d: got type %q, want Feature", i, f.Type)
		}
		str := func(k string) string { s, _ := f.Properties[k].(string); return s }
		df := demoFeature{
			Code: str("code"), Name: str("name"), ParentCode: str("parent_code"),
			Level: Level(str("level")), Props: f.Properties, GeomType: f.Geometry.Type,
		}
		switch f.Geometry.Type {
		case "Polygon":
			var p [][][2]float64
			if err := json.Unmarshal(f.Geometry.Coordinates, &p); err != nil {
				tb.Fatalf("feature %s: polygon: %v", df.Code, err)
			}
			df.Geometry = orb.MultiPolygon{toOrbPolygon(p)}
		case "MultiPolygon":
			var mp [][][][2]float64
			if err := json.Unmarshal(f.Geometry.Coordinates, &mp); err != nil {
				tb.Fatalf("feature %s: multipolygon: %v", df.Code, err)
			}
			for _, p := range mp {
				df.Geometry = append(df.Geometry, toOrbPolygon(p))
			}
		default:
			tb.Fatalf("feature %s: got geometry %q, want Polygon or MultiPolygon", df.Code, f.Geometry.Type)
		}
		out = append(out, df)
	}
	return out
}

func toOrbPolygon(p [][][2]float64) orb.Polygon {
	poly := make(orb.Polygon, len(p))
	for i, r := range p {
		ring := make(orb.Ring, len(r))
		for j, c := range r {
			ring[j] = orb.Point(c)
		}
		poly[i] = ring
	}
	return poly
}

// signedArea is the shoelace area of a ring in square degrees: positive when
// counter-clockwise. It works relative to the first vertex: at lon 113,
// lat 34 the plain formula loses about eight of the sixteen digits of a
// grid's area to cancellation.
func signedArea(r orb.Ring) float64 {
	if len(r) == 0 {
		return 0
	}
	x0, y0 := r[0][0], r[0][1]
	var s float64
	for i := 0; i+1 < len(r); i++ {
		s += (r[i][0]-x0)*(r[i+1][1]-y0) - (r[i+1][0]-x0)*(r[i][1]-y0)
	}
	return s / 2
}

func mpArea(mp orb.MultiPolygon) float64 {
	var a float64
	for _, p := range mp {
		for i, r := range p {
			if i == 0 {
				a += signedArea(r)
			} else {
				a -= math.Abs(signedArea(r))
			}
		}
	}
	return a
}

// checkCity asserts everything the import format and the hierarchy promise
// and returns the number of features per level.
func checkCity(t *testing.T, fs []demoFeature) map[Level]int {
	t.Helper()
	counts := map[Level]int{}
	codeLen := map[Level]int{LevelDistrict: 6, LevelStreet: 9, LevelCommunity: 12, LevelGrid: 15}
	digits := regexp.MustCompile(`^[0-9]+$`)
	seen := map[string]demoFeature{}
	children := map[string][]demoFeature{}
	for i, f := range fs {
		counts[f.Level]++
		if n, ok := codeLen[f.Level]; !ok || len(f.Code) != n || !digits.MatchString(f.Code) {
			t.Errorf("feature %d: got code %q at level %q, want %d digits", i, f.Code, f.Level, codeLen[f.Level])
		}
		if _, dup := seen[f.Code]; dup {
			t.Errorf("feature %d: code %q is not unique", i, f.Code)
		}
		if f.Name == "" {
			t.Errorf("feature %s: got an empty name", f.Code)
		}
		if f.Level == LevelDistrict {
			if f.ParentCode != "" {
				t.Errorf("district %s: got parent_code %q, want none", f.Code, f.ParentCode)
			}
		} else {
			parent, ok := seen[f.ParentCode]
			if !ok {
				t.Errorf("feature %s: parent %q missing or after its child", f.Code, f.ParentCode)
			} else if parent.Level.Rank() != f.Level.Rank()-1 {
				t.Errorf("feature %s (%s): got parent level %s", f.Code, f.Level, parent.Level)
			}
			if !strings.HasPrefix(f.Code, f.ParentCode) {
				t.Errorf("feature %s: code does not start with its parent's %q", f.Code, f.ParentCode)
			}
			children[f.ParentCode] = append(children[f.ParentCode], f)
		}
		seen[f.Code] = f
		for pi, p := range f.Geometry {
			for ri, r := range p {
				if len(r) < 4 || r[0] != r[len(r)-1] {
					t.Errorf("feature %s polygon %d ring %d: not closed (%d points)", f.Code, pi, ri, len(r))
				}
				if a := signedArea(r); ri == 0 && a <= 0 || ri > 0 && a >= 0 {
					t.Errorf("feature %s polygon %d ring %d: got signed area %g, wrong orientation", f.Code, pi, ri, a)
				}
			}
		}
	}
	// Each parent is exactly covered by its children: equal areas…
	for code, kids := range children {
		want := mpArea(seen[code].Geometry)
		// orb uses the plain formula, good to about 1e-9 here.
		if got := planar.Area(seen[code].Geometry); math.Abs(got-want) > 1e-8*want {
			t.Errorf("%s: orb's area %g, shoelace %g", code, got, want)
		}
		var got float64
		for _, k := range kids {
			got += mpArea(k.Geometry)
		}
		if math.Abs(got-want) > 1e-9*want {
			t.Errorf("%s: got children's area %.15g, want parent's %.15g", code, got, want)
		}
	}
	// …and, exactly, every edge of a child is either shared in reverse with
	// a sibling or lies on the parent's boundary, which the children's
	// outer edges trace completely. With equal areas and all rings
	// counter-clockwise this means no gap and no overlap.
	type edge [4]float64
	edgesOf := func(mp orb.MultiPolygon, add func(edge)) {
		for _, p := range mp {
			for _, r := range p {
				for i := 0; i+1 < len(r); i++ {
					add(edge{r[i][0], r[i][1], r[i+1][0], r[i+1][1]})
				}
			}
		}
	}
	for code, kids := range children {
		inner := map[edge]int{}
		for _, k := range kids {
			edgesOf(k.Geometry, func(e edge) { inner[e]++ })
		}
		outer := map[edge]bool{}
		edgesOf(seen[code].Geometry, func(e edge) { outer[e] = true })
		onBoundary := 0
		for e, n := range inner {
			rev := edge{e[2], e[3], e[0], e[1]}
			switch {
			case n != 1:
				t.Errorf("%s: edge %v used %d times by children", code, e, n)
			case inner[rev] == 1:
			case outer[e]:
				onBoundary++
			default:
				t.Errorf("%s: child edge %v is neither shared nor on the parent's boundary", code, e)
			}
		}
		if onBoundary != len(outer) {
			t.Errorf("%s: children trace %d of the parent's %d boundary edges", code, onBoundary, len(outer))
		}
	}
	return counts
}

func TestDemoCity(t *testing.T) {
	data := DemoCity()
	if !bytes.Equal(data, DemoCity()) {
		t.Fatal("DemoCity differs between calls")
	}
	fs := parseCity(t, data)
	counts := checkCity(t, fs)
	want := map[Level]int{LevelDistrict: 1, LevelStreet: 3, LevelCommunity: 6, LevelGrid: 66}
	for l, n := range want {
		if counts[l] != n {
			t.Errorf("got %d features at level %s, want %d", counts[l], l, n)
		}
	}
	if len(fs) != 76 {
		t.Errorf("got %d features, want 76", len(fs))
	}
	if d := fs[0]; d.Code != "410105" || d.Name != "金水区" || d.GeomType != "MultiPolygon" {
		t.Errorf("got district %s %s %s, want 410105 金水区 MultiPolygon", d.Code, d.Name, d.GeomType)
	}
	// Streets are real Jinshui streets.
	var streets []string
	for _, f := range fs {
		if f.Level == LevelStreet {
			streets = append(streets, f.Name)
		}
	}
	if got, want := strings.Join(streets, ","), "经八路街道,花园路街道,人民路街道"; got != want {
		t.Errorf("got streets %s, want %s", got, want)
	}
	// The district lies where Jinshui is.
	b := fs[0].Geometry.Bound()
	if b.Min[0] < 113.62 || b.Max[0] > 113.76 || b.Min[1] < 34.75 || b.Max[1] > 34.85 {
		t.Errorf("got district bounds %v, want within lon 113.62–113.76, lat 34.75–34.85", b)
	}
}

// TestDemoCityTeams checks each grid's 1+X+Y team and name.
func TestDemoCityTeams(t *testing.T) {
	nameRE := regexp.MustCompile(`^\p{Han}{2,3}$`)
	staffRE := regexp.MustCompile(`^\p{Han}{2,3}（\p{Han}+）$`)
	gridNameRE := regexp.MustCompile(`^\p{Han}+街道第\p{Han}+社区 [0-9]{2} 网格$`)
	for _, f := range parseCity(t, DemoCity()) {
		if f.Level != LevelGrid {
			continue
		}
		t.Run(f.Code, func(t *testing.T) {
			if !gridNameRE.MatchString(f.Name) {
				t.Errorf("got name %q, want like 经八路街道第一社区 03 网格", f.Name)
			}
			if !strings.HasSuffix(f.Name, fmt.Sprintf(" %s 网格", f.Code[13:])) {
				t.Errorf("got name %q, want it to end in the grid number %s", f.Name, f.Code[13:])
			}
			if leader, _ := f.Props["leader"].(string); !nameRE.MatchString(leader) {
				t.Errorf("got leader %v, want a Chinese name", f.Props["leader"])
			}
			checkMembers(t, f.Props["volunteers"], "volunteer", 2, 4, nameRE, "a Chinese name")
			checkMembers(t, f.Props["staff"], "staff", 1, 2, staffRE, "name（department）")
			pop, ok := f.Props["population"].(json.Number)
			if n, err := pop.Int64(); !ok || err != nil || n <= 0 {
				t.Errorf("got population %v, want a positive integer", f.Props["population"])
			}
		})
	}
}

// TestDemoCityNoOverlap checks the grids pairwise the way the brief asks:
// each cell's centroid lies in its own cell and in no other.
func TestDemoCityNoOverlap(t *testing.T) {
	var grids []demoFeature
	for _, f := range parseCity(t, DemoCity()) {
		if f.Level == LevelGrid {
			grids = append(grids, f)
		}
	}
	for _, g := range grids {
		c, _ := planar.CentroidArea(g.Geometry)
		var in []string
		for _, h := range grids {
			if h.Geometry.Bound().Contains(c) && planar.MultiPolygonContains(h.Geometry, c) {
				in = append(in, h.Code)
			}
		}
		if len(in) != 1 || in[0] != g.Code {
			t.Errorf("centroid %v of %s: got in %v, want only in %s", c, g.Code, in, g.Code)
		}
	}
}

func TestSyntheticCity(t *testing.T) {
	tests := []struct {
		n         int
		wantGrids int // at least
	}{
		{-5, 1},
		{1, 1},
		{66, 66},
		{150, 150},
		{1001, 1001},
		{10000, 10000},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			data := citygen.Synthetic(tt.n)
			counts := checkCity(t, parseCity(t, data))
			if counts[LevelDistrict] != 1 || counts[LevelStreet] < 1 || counts[LevelCommunity] < 1 {
				t.Errorf("got %v, want one district and at least one street and community", counts)
			}
			if counts[LevelGrid] < tt.wantGrids {
				t.Errorf("got %d grids, want at least %d", counts[LevelGrid], tt.wantGrids)
			}
			if tt.n == 10000 && (counts[LevelCommunity] != 100 || counts[LevelStreet] < 4) {
				t.Errorf("got %d communities and %d streets, want 100 communities of 10×10 in several streets", counts[LevelCommunity], counts[LevelStreet])
			}
		})
	}
}

func TestSyntheticCityCellSize(t *testing.T) {
	var sum float64
	var n int
	for _, f := range parseCity(t, citygen.Synthetic(400)) {
		if f.Level != LevelGrid {
			continue
		}
		// Square metres at the cell's latitude.
		b := f.Geometry.Bound()
		kx, ky := 111320*math.Cos(b.Min[1]*math.Pi/180), 110574.0
		area := mpArea(f.Geometry) * kx * ky
		sum += area
		n++
		// Jitter moves each side by up to a fifth of a cell.
		w, h := (b.Max[0]-b.Min[0])*kx, (b.Max[1]-b.Min[1])*ky
		if w < 200 || w > 700 || h < 200 || h > 700 {
			t.Errorf("%s: got a %.0f m × %.0f m bounding box, want about 400 m", f.Code, w, h)
		}
	}
	if mean := math.Sqrt(sum / float64(n)); mean < 300 || mean > 500 {
		t.Errorf("got cells %.0f m across on average, want 300–500 m", mean)
	}
}

// TestSyntheticCityDeterministic: the same n gives the same bytes (its
// speed is measured by BenchmarkSyntheticCity10000, never asserted here).
func TestSyntheticCityDeterministic(t *testing.T) {
	if !bytes.Equal(citygen.Synthetic(500), citygen.Synthetic(500)) {
		t.Error("citygen.Synthetic(500) differs between calls")
	}
}

func BenchmarkSyntheticCity10000(b *testing.B) {
	for b.Loop() {
		citygen.Synthetic(10000)
	}
}

// checkMembers checks a list of a team's members: lo to hi of them, each
// matching re (described by want).
func checkMembers(t *testing.T, list any, what string, lo, hi int, re *regexp.Regexp, want string) {
	t.Helper()
	members, _ := list.([]any)
	if len(members) < lo || len(members) > hi {
		t.Errorf("got %d %s, want %d–%d", len(members), what, lo, hi)
	}
	for _, v := range members {
		if s, _ := v.(string); !re.MatchString(s) {
			t.Errorf("got %s %v, want %s", what, v, want)
		}
	}
}
