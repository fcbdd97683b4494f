// Package citygen generates the cities geo serves as GeoJSON
// FeatureCollections: the demo city (geo.DemoCity, seeded by the demo) and
// the synthetic cities of any size that geo's, incident's and the api's
// tests and benchmarks import (through geo/geotest outside geo). It lives
// apart from geo so that geo's exported API carries only what production
// uses, while geo's own in-package tests still reach the generator (geotest
// imports geo, so they cannot import it).
//
// It writes the JSON by hand and imports nothing of geo: the level names it
// writes are geo's Level values, and geo's tests parse every city it makes
// with geo's own reader.
package citygen

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Demo returns a demo grid hierarchy as a GeoJSON FeatureCollection in the
// form the import endpoint takes: Zhengzhou's Jinshui district (金水区,
// 410105), 3 streets, 6 communities and 66 grids, the number of grids of
// Zhengzhou's pilot. Parents come before children. The grids tessellate the
// district exactly: they are cells of one lattice whose vertices are jittered
// (deterministically) so that neighbours share vertices exactly, and each
// street and community is the outline of its cells traced over the same
// vertices, so every parent is exactly the union of its children.
//
// Each grid carries its 1+X+Y team (leader 网格长, volunteers, staff) and a
// population. The geography is plausible, not surveyed; the output is the
// same on every call.
func Demo() []byte {
	// The six communities (A–F, two per street) drawn row by row from the
	// north; each holds 11 cells. The shapes are irregular on purpose, so
	// the outlines are real polygons rather than rectangles.
	layout := [...]string{
		"AAAACCCEEEE",
		"AAACCCCEEEE",
		"AAAACCCDEEE",
		"BBBBCDDDFFF",
		"BBBDDDDFFFF",
		"BBBBDDDFFFF",
	}
	rows, cols := len(layout), len(layout[0])
	p := cityPlan{
		lat: lattice{
			cols: cols, rows: rows,
			lon0: 113.63, lat0: 34.76,
			dlon: 0.12 / float64(cols), dlat: 0.08 / float64(rows),
			jitter: 0.2, seed: 0x4a696e73687569, // "Jinshui"
		},
		districtCode:  "410105",
		districtName:  "金水区",
		districtProps: []prop{{"province", "河南省"}, {"city", "郑州市"}},
		streetNames:   []string{"经八路街道", "花园路街道", "人民路街道"},
		streetOf:      []int{0, 0, 1, 1, 2, 2},
		communityOf:   make([]int, rows*cols),
		seed:          410105,
	}
	for r := range rows {
		// layout[0] is the northern row; lattice row 0 is the southern one.
		line := layout[rows-1-r]
		for c := range cols {
			p.communityOf[r*cols+c] = int(line[c] - 'A')
		}
	}
	return p.build()
}

// MaxSynthetic caps Synthetic: a million grids already make a GeoJSON
// document of several hundred megabytes.
const MaxSynthetic = 1_000_000

// Synthetic returns a district like Demo's but with at least n grids
// (n is clamped to 1…MaxSynthetic): a near-square lattice of jittered
// cells about 400 m across, communities of 10×10 cells and streets of 3×3
// communities or more, so codes stay within their three digits. It is meant
// for benchmarks and load tests; the output is the same for the same n.
func Synthetic(n int) []byte {
	n = max(1, min(n, MaxSynthetic))
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / cols
	const communitySide = 10
	ccols := (cols + communitySide - 1) / communitySide
	crows := (rows + communitySide - 1) / communitySide
	// Up to 31×31 communities per street and 31×31 streets keep both
	// counts below 1000.
	streetSide := max(3, (max(ccols, crows)+30)/31)
	scols := (ccols + streetSide - 1) / streetSide

	p := cityPlan{
		lat: lattice{
			cols: cols, rows: rows,
			lon0: 113.50, lat0: 34.60,
			dlon: 0.0044, dlat: 0.0036, // about 400 m × 400 m at 34.6° N
			jitter: 0.2, seed: uint64(n)*0x9e3779b97f4a7c15 + 1,
		},
		districtCode:  "410199",
		districtName:  "合成示范区",
		districtProps: []prop{{"synthetic", true}},
		communityOf:   make([]int, rows*cols),
		seed:          uint64(n),
	}
	p.streetOf = make([]int, ccols*crows)
	for cr := range crows {
		for cc := range ccols {
			p.streetOf[cr*ccols+cc] = (cr/streetSide)*scols + cc/streetSide
		}
	}
	nstreets := 0
	for _, s := range p.streetOf {
		nstreets = max(nstreets, s+1)
	}
	roads := strings.Split(roadNames, "、")
	for s := range nstreets {
		name := roads[s%len(roads)]
		if k := s / len(roads); k > 0 {
			name += chineseNumber(k + 1)
		}
		p.streetNames = append(p.streetNames, name+"街道")
	}
	for r := range rows {
		for c := range cols {
			p.communityOf[r*cols+c] = (r/communitySide)*ccols + c/communitySide
		}
	}
	return p.build()
}

// cityPlan describes a generated city: the lattice and which cell belongs to
// which community and which community to which street.
type cityPlan struct {
	lat           lattice
	districtCode  string
	districtName  string
	districtProps []prop
	streetNames   []string
	streetOf      []int // community index → street index
	communityOf   []int // cell index (row*cols+col) → community index
	seed          uint64
}

// build renders the plan as a FeatureCollection: district, streets,
// communities, grids, each group in code order.
func (p *cityPlan) build() []byte {
	l := &p.lat
	ncells := l.rows * l.cols
	pick := newPicker(p.seed)

	// Cells of each community in reading order (north row first, west to
	// east), the order their grids are numbered in.
	commCells := make([][]int, len(p.streetOf))
	for r := l.rows - 1; r >= 0; r-- {
		for c := range l.cols {
			i := r*l.cols + c
			commCells[p.communityOf[i]] = append(commCells[p.communityOf[i]], i)
		}
	}
	type street struct {
		code, name string
		comms      []int
	}
	streets := make([]street, len(p.streetNames))
	for s := range streets {
		streets[s] = street{code: fmt.Sprintf("%s%03d", p.districtCode, s+1), name: p.streetNames[s]}
	}
	for ci, s := range p.streetOf {
		if len(commCells[ci]) > 0 {
			streets[s].comms = append(streets[s].comms, ci)
		}
	}
	commCodes := make([]string, len(p.streetOf))
	commNames := make([]string, len(p.streetOf))
	for _, st := range streets {
		for k, ci := range st.comms {
			commCodes[ci] = fmt.Sprintf("%s%03d", st.code, k+1)
			commNames[ci] = st.name + "第" + chineseNumber(k+1) + "社区"
		}
	}

	// About 450 bytes a grid with its team; the JSON is written by hand
	// because encoding/json's reflection made Synthetic(10000) several
	// times slower.
	w := &geojsonWriter{buf: make([]byte, 0, 512*ncells+4096)}
	w.begin()

	all := make([]int, ncells)
	for i := range all {
		all[i] = i
	}
	dprops := []prop{{"code", p.districtCode}, {"name", p.districtName}, {"level", levelDistrict}}
	dprops = append(dprops, p.districtProps...)
	w.feature(dprops, true, l.blockRing(all, func(int) bool { return true }))

	for s, st := range streets {
		if len(st.comms) == 0 {
			continue
		}
		var cells []int
		for _, ci := range st.comms {
			cells = append(cells, commCells[ci]...)
		}
		ring := l.blockRing(cells, func(i int) bool { return p.streetOf[p.communityOf[i]] == s })
		w.feature([]prop{{"code", st.code}, {"name", st.name}, {"level", levelStreet}, {"parent_code", p.districtCode}}, false, ring)
	}
	for _, st := range streets {
		for _, ci := range st.comms {
			ring := l.blockRing(commCells[ci], func(i int) bool { return p.communityOf[i] == ci })
			w.feature([]prop{{"code", commCodes[ci]}, {"name", commNames[ci]}, {"level", levelCommunity}, {"parent_code", st.code}}, false, ring)
		}
	}
	for _, st := range streets {
		for _, ci := range st.comms {
			for g, cell := range commCells[ci] {
				props := []prop{
					{"code", fmt.Sprintf("%s%03d", commCodes[ci], g+1)},
					{"name", fmt.Sprintf("%s %02d 网格", commNames[ci], g+1)},
					{"level", levelGrid},
					{"parent_code", commCodes[ci]},
				}
				props = pick.team(props)
				w.feature(props, false, l.cellRing(cell%l.cols, cell/l.cols))
			}
		}
	}
	return w.end()
}

// prop is one feature property; values are strings, ints, bools or string
// slices.
type prop struct {
	key string
	val any
}

// geojsonWriter appends a FeatureCollection to buf. The reading side is
// geo's geojson.go; this one only writes what the generators make.
type geojsonWriter struct {
	buf   []byte
	first bool
}

func (w *geojsonWriter) begin() {
	w.buf = append(w.buf, `{"type":"FeatureCollection","features":[`...)
	w.first = true
}

func (w *geojsonWriter) end() []byte {
	return append(w.buf, "]}"...)
}

// feature writes one feature whose geometry is the single exterior ring,
// as a Polygon or, if multi, a MultiPolygon of one polygon.
func (w *geojsonWriter) feature(props []prop, multi bool, ring [][2]float64) {
	if !w.first {
		w.buf = append(w.buf, ',')
	}
	w.first = false
	w.buf = append(w.buf, `{"type":"Feature","properties":{`...)
	for i, pr := range props {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = appendJSONString(w.buf, pr.key)
		w.buf = append(w.buf, ':')
		switch v := pr.val.(type) {
		case string:
			w.buf = appendJSONString(w.buf, v)
		case int:
			w.buf = strconv.AppendInt(w.buf, int64(v), 10)
		case bool:
			w.buf = strconv.AppendBool(w.buf, v)
		case []string:
			w.buf = append(w.buf, '[')
			for j, s := range v {
				if j > 0 {
					w.buf = append(w.buf, ',')
				}
				w.buf = appendJSONString(w.buf, s)
			}
			w.buf = append(w.buf, ']')
		default:
			panic(fmt.Sprintf("geo: generated property %q has type %T", pr.key, pr.val))
		}
	}
	if multi {
		w.buf = append(w.buf, `},"geometry":{"type":"MultiPolygon","coordinates":[[[`...)
	} else {
		w.buf = append(w.buf, `},"geometry":{"type":"Polygon","coordinates":[[`...)
	}
	for i, pt := range ring {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, '[')
		w.buf = strconv.AppendFloat(w.buf, pt[0], 'f', -1, 64)
		w.buf = append(w.buf, ',')
		w.buf = strconv.AppendFloat(w.buf, pt[1], 'f', -1, 64)
		w.buf = append(w.buf, ']')
	}
	if multi {
		w.buf = append(w.buf, "]]]}}"...)
	} else {
		w.buf = append(w.buf, "]]}}"...)
	}
}

// appendJSONString appends s as a JSON string, escaping what RFC 8259
// requires (quote, backslash, control characters) and nothing else.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// lattice is a grid of cols×rows cells from (lon0, lat0) to the north-east.
// Vertex (i, j) is where column line i meets row line j; each vertex is
// moved by up to jitter of a cell on each axis, derived from a hash of (i, j),
// so a vertex is the same float64 pair in every polygon that uses it.
// With jitter below 1/4 every cell stays a convex quadrilateral.
type lattice struct {
	cols, rows int
	lon0, lat0 float64
	dlon, dlat float64
	jitter     float64
	seed       uint64
}

// vertex returns the jittered position of vertex (i, j), rounded to 1e-7°
// (about 1 cm) to keep the JSON short.
func (l *lattice) vertex(i, j int) [2]float64 {
	h := mix64(l.seed ^ uint64(i)<<32 ^ uint64(j))
	u := float64(h>>11)/(1<<53)*2 - 1 // [-1, 1)
	v := float64(mix64(h)>>11)/(1<<53)*2 - 1
	lon := l.lon0 + (float64(i)+l.jitter*u)*l.dlon
	lat := l.lat0 + (float64(j)+l.jitter*v)*l.dlat
	return [2]float64{math.Round(lon*1e7) / 1e7, math.Round(lat*1e7) / 1e7}
}

// cellRing returns the closed counter-clockwise ring of cell (c, r).
func (l *lattice) cellRing(c, r int) [][2]float64 {
	return [][2]float64{l.vertex(c, r), l.vertex(c+1, r), l.vertex(c+1, r+1), l.vertex(c, r+1), l.vertex(c, r)}
}

// blockRing returns the closed counter-clockwise outline of a block of cells:
// the cells' edges that have an outside cell across them, chained end to
// start. The block must be connected, without holes, and no two of its cells
// may touch at a corner only; the layouts here are drawn that way, and a
// violation is a programming error.
func (l *lattice) blockRing(cells []int, in func(cell int) bool) [][2]float64 {
	inside := func(c, r int) bool {
		return c >= 0 && r >= 0 && c < l.cols && r < l.rows && in(r*l.cols+c)
	}
	// Vertex (i, j) is keyed as j*(cols+1)+i.
	key := func(i, j int) int { return j*(l.cols+1) + i }
	next := make(map[int]int, 4*len(cells))
	start := -1
	add := func(from, to int) {
		if _, dup := next[from]; dup {
			panic("geo: lattice block touches itself at a corner")
		}
		next[from] = to
		if start < 0 || from < start {
			start = from
		}
	}
	for _, cell := range cells {
		c, r := cell%l.cols, cell/l.cols
		// A cell's edges counter-clockwise, each with the cell across it.
		if !inside(c, r-1) {
			add(key(c, r), key(c+1, r))
		}
		if !inside(c+1, r) {
			add(key(c+1, r), key(c+1, r+1))
		}
		if !inside(c, r+1) {
			add(key(c+1, r+1), key(c, r+1))
		}
		if !inside(c-1, r) {
			add(key(c, r+1), key(c, r))
		}
	}
	ring := make([][2]float64, 0, len(next)+1)
	for v := start; ; {
		ring = append(ring, l.vertex(v%(l.cols+1), v/(l.cols+1)))
		v = next[v]
		if v == start {
			break
		}
	}
	if len(ring) != len(next) {
		panic("geo: lattice block is not one ring")
	}
	return append(ring, ring[0])
}

// mix64 is the SplitMix64 finaliser: a cheap, well-mixed hash.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// picker draws deterministic choices for names and figures. It is its own
// generator rather than math/rand so the demo data never changes with the Go
// release.
type picker struct {
	state       uint64
	departments []string
}

// newPicker returns a picker seeded with seed.
func newPicker(seed uint64) *picker {
	return &picker{state: seed, departments: strings.Split(departments, "、")}
}

func (p *picker) intn(n int) int {
	p.state++
	return int(mix64(p.state) % uint64(n))
}

// person returns a plausible Chinese name: a common surname and one or two
// common given-name characters.
func (p *picker) person() string {
	name := cjk(surnameChars, p.intn(cjkLen(surnameChars))) + cjk(givenChars, p.intn(cjkLen(givenChars)))
	if p.intn(3) > 0 {
		name += cjk(givenChars, p.intn(cjkLen(givenChars)))
	}
	return name
}

// team appends a grid's 1+X+Y team and its population to props.
func (p *picker) team(props []prop) []prop {
	leader := p.person()
	volunteers := make([]string, 2+p.intn(3))
	for i := range volunteers {
		volunteers[i] = p.person()
	}
	staff := make([]string, 1+p.intn(2))
	for i := range staff {
		staff[i] = p.person() + "（" + p.departments[p.intn(len(p.departments))] + "）"
	}
	return append(props,
		prop{"leader", leader},
		prop{"volunteers", volunteers},
		prop{"staff", staff},
		prop{"population", 800 + p.intn(3200)})
}

// chineseNumber writes 1…999 in Chinese numerals (一, 十一, 二十, 一百零五);
// other values in Arabic digits.
func chineseNumber(n int) string {
	digit := func(d int) string { return cjk(numeralChars, d) }
	switch {
	case n <= 0 || n >= 1000:
		return strconv.Itoa(n)
	case n < 10:
		return digit(n)
	case n < 20:
		if n == 10 {
			return "十"
		}
		return "十" + digit(n%10)
	case n < 100:
		s := digit(n/10) + "十"
		if n%10 != 0 {
			s += digit(n % 10)
		}
		return s
	}
	s := digit(n/100) + "百"
	switch rest := n % 100; {
	case rest == 0:
	case rest < 10:
		s += "零" + digit(rest)
	default:
		s += digit(rest/10) + "十"
		if rest%10 != 0 {
			s += digit(rest % 10)
		}
	}
	return s
}

// Name parts for the generated people and places. Single characters are
// packed into one string (each CJK character is three bytes of UTF-8) and
// longer names separated by "、", so that all of it can be constant.
const (
	surnameChars = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许沈彭吕苏蒋蔡贾丁魏薛叶潘杜范"
	givenChars   = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华建国红玉兰春海燕鹏辉宇欣颖浩婷博晨雪梅志文斌凯莉豫"
	numeralChars = "零一二三四五六七八九"
	departments  = "社区卫生服务站、派出所、市场监管所、城管执法中队、消防救援站、司法所、物业服务中心、供电所"
	roadNames    = "经八路、花园路、人民路、杜岭、大石桥、南阳路、文化路、东风路、丰产路、未来路、" +
		"北林路、兴达路、国基路、祭城路、如意湖、杨金路、龙子湖、博学路、黄河路、金水路"
)

// cjk returns the i-th character of a string of three-byte characters.
func cjk(s string, i int) string { return s[3*i : 3*i+3] }

// cjkLen returns the number of characters in a string of three-byte characters.
func cjkLen(s string) int { return len(s) / 3 }

// The level names the cities carry: geo.LevelDistrict, LevelStreet,
// LevelCommunity and LevelGrid (geo imports this package, so they are
// written out; geo's tests parse every city with geo's reader).
const (
	levelDistrict  = "district"
	levelStreet    = "street"
	levelCommunity = "community"
	levelGrid      = "grid"
)
