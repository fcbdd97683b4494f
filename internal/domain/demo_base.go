package domain

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/geo"
)

// The demo's base data (人、房、地、物): buildings with footprints, land
// parcels, city components and the households of the residential
// buildings with their residents, made for the demo city by a fixed seed
// (the same on every run) and stored through the base-data service's
// imports, as a city's registers would be.
//
// The people are plainly synthetic. Names are drawn from pools of common
// surnames and given-name characters. ID numbers have the demo district's
// code (410105), the birth date and a sequence number, but a deliberately
// wrong check character: GB 11643's last character is the ISO 7064 MOD
// 11-2 check of the first 17 digits, and every demo ID carries another one,
// so no demo ID number is anyone's (a real one always checks). Phones
// start with 100, which no Chinese mobile network uses (mobile numbers
// start with 13–19).

// demoBaseSeed seeds the base data's generator.
const demoBaseSeed = 0x4261_7365_4461_7461 // "BaseData"

// demoStreets are streets of Zhengzhou's Jinshui district, for addresses.
var demoStreets = []string{
	"经一路", "经二路", "经三路", "经四路", "经五路", "经六路", "经七路", "经八路", "纬一路", "纬二路",
	"纬三路", "纬四路", "纬五路", "花园路", "农业路", "黄河路", "金水路", "红旗路", "东风路", "文化路",
	"丰产路", "政一街", "政二街", "政三街", "政四街", "政五街", "政六街", "政七街", "未来路", "城北路",
	"国基路", "南阳路", "人民路", "顺河路", "健康路", "丰庆路", "姚砦路", "红专路", "优胜北路", "玉凤路",
	"宏达路", "东明路", "群办路", "博颂路", "沙口路", "北林路", "三全路", "任寨北街", "关虎屯街", "鑫苑路",
}

// demoStreetsOf returns the three streets a grid's addresses are on,
// always the same for a grid.
func demoStreetsOf(gridCode string) [3]string {
	h := fnv.New64a()
	h.Write([]byte(gridCode))
	x := h.Sum64()
	n := uint64(len(demoStreets))
	a := x % n
	b := (a + 1 + (x>>16)%(n-1)) % n
	c := b
	for c == a || c == b {
		c = (c + 1 + (x>>32)%7) % n
	}
	return [3]string{demoStreets[a], demoStreets[b], demoStreets[c]}
}

// demoEstates are residential estates (小区) and compounds (家属院).
var demoEstates = []string{
	"金水花园", "文博花园", "紫荆山小区", "银苑小区", "省建一公司家属院", "农科院家属院", "黄河医院家属院", "丰产路小区",
	"经八路小区", "纬五路小区", "花园新村", "东风新村", "红旗小区", "绿城小区", "名门世家", "天明花园", "宏达小区",
	"未来花园", "国基花园", "顺河小区", "健康花园", "沙口路小区", "博颂苑", "玉凤苑", "三全小区", "北林苑",
	"政七街小区", "文化绿城", "金色港湾", "建业小区", "水利厅家属院", "电业局家属院",
}

var demoSurnames = []string{
	"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马", "罗",
	"梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "程", "曹", "袁", "邓", "许", "傅", "沈", "彭", "吕", "苏", "卢",
	"蒋", "蔡", "贾", "丁", "魏", "薛", "叶", "阎", "潘", "杜", "夏", "田", "任", "姜", "范", "方", "石", "姚", "谭", "崔",
}

// The surnames of Henan lead with these: they are drawn more often.
const demoCommonSurnames = 6

var demoMaleChars = []string{"伟", "强", "军", "磊", "洋", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞",
	"鑫", "波", "斌", "宇", "浩", "凯", "健", "俊", "帆", "旭", "宁", "龙", "林", "国", "建", "志", "文", "博", "晨", "轩", "睿", "泽", "豪"}
var demoFemaleChars = []string{"芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "桂", "英", "燕", "红", "梅", "琳",
	"雪", "婷", "倩", "颖", "洁", "欣", "怡", "佳", "萱", "雨", "诗", "涵", "悦", "梦", "晗", "兰"}

// demoBuilding is a building of the demo city.
type demoBuilding struct {
	Code, Name, Address, Use string
	Floors, Units            int
	Footprint                [][2]float64 // closed ring
	Grid                     string
	// Households is how many households each unit has (residential only).
	Households int
}

type demoParcel struct {
	Code, Name, Use, Holder string
	Ring                    [][2]float64
}

type demoComponent struct {
	Code, Class, Name, Department, State, Address string
	Lon, Lat                                      float64
}

type demoResident struct {
	HouseholdCode, BuildingCode, Unit, Room string
	Name, Gender, Relation                  string
	IDNumber, Phone                         string
	Birth                                   time.Time
	Care                                    []string
}

// demoBaseData is the demo city's base data.
type demoBaseData struct {
	Buildings  []demoBuilding
	Parcels    []demoParcel
	Components []demoComponent
	Residents  []demoResident
	Households int
}

// demoComponentKinds are the components a grid has, with how many of each
// (about 20 a grid) and who keeps them.
var demoComponentKinds = []struct {
	class, name, department string
	n                       int
}{
	{"0101", "上水井盖", "郑州自来水投资控股有限公司", 2},
	{"0102", "污水井盖", "金水区市政工程管理中心", 3},
	{"0103", "雨水井盖", "金水区市政工程管理中心", 2},
	{"0104", "雨水箅子", "金水区市政工程管理中心", 2},
	{"0105", "电力井盖", "国网郑州供电公司", 1},
	{"0107", "通讯井盖", "中国联通郑州分公司", 1},
	{"0111", "燃气井盖", "郑州华润燃气股份有限公司", 1},
	{"0120", "路灯", "金水区路灯管理所", 5},
	{"0116", "消防栓", "金水区消防救援大队", 1},
	{"0304", "垃圾箱", "金水区环境卫生服务中心", 2},
	{"0203", "公交站亭", "郑州市公共交通集团", 1},
	{"0213", "隔离护栏", "金水区市政工程管理中心", 1},
}

// demoCityGrids is the demo city's grids, by code, as the generator reads
// them: from geo.DemoCity, not from the database, so the base data is the
// same whatever was done to the grids since.
func demoCityGrids() ([]geo.ImportFeature, error) {
	city, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo city: %w", err)
	}
	var grids []geo.ImportFeature
	for _, f := range city {
		if f.Level == geo.LevelGrid {
			grids = append(grids, f)
		}
	}
	slices.SortFunc(grids, func(a, b geo.ImportFeature) int { return strings.Compare(a.Code, b.Code) })
	return grids, nil
}

// Metres per degree near the demo city (34.8° N).
const (
	demoMPerLat = 110950.0
	demoMPerLon = 91400.0
)

// demoBase makes the demo city's base data; refYear is the year ages are
// counted to.
func demoBase(grids []geo.ImportFeature, refYear int) demoBaseData {
	var out demoBaseData
	serial := map[string]int{} // components per class, for their codes
	ids := map[string]bool{}
	phones := map[string]bool{}
	for gi, g := range grids {
		rng := rand.New(rand.NewPCG(demoBaseSeed, uint64(gi)))
		inside := func(lon, lat float64) bool { return polygonContains(g.Geometry, lon, lat) }
		b := g.Geometry.Bounds()
		box := [4]float64{b.Min(0), b.Min(1), b.Max(0), b.Max(1)}
		streets := demoStreetsOf(g.Code)
		estates := []string{demoEstates[(gi*7)%len(demoEstates)], demoEstates[(gi*7+3)%len(demoEstates)]}

		// Buildings: one per cell of about 120 m, in cells whose whole
		// footprint lies in the grid, 12 to 20 of them.
		const cell = 120.0
		dx, dy := cell/demoMPerLon, cell/demoMPerLat
		var cells [][2]float64
		for y := box[1] + dy/2; y < box[3]; y += dy {
			for x := box[0] + dx/2; x < box[2]; x += dx {
				cells = append(cells, [2]float64{x, y})
			}
		}
		rng.Shuffle(len(cells), func(i, j int) { cells[i], cells[j] = cells[j], cells[i] })
		want := 12 + rng.IntN(9)
		nb := 0
		for _, c := range cells {
			if nb == want {
				break
			}
			tower := rng.IntN(4) == 0
			w, h := 50+rng.Float64()*30, 12+rng.Float64()*4 // a slab (板楼)
			if tower {
				w, h = 24+rng.Float64()*8, 22+rng.Float64()*8
			}
			ring := rectangle(c[0]+(rng.Float64()-0.5)*dx*0.3, c[1]+(rng.Float64()-0.5)*dy*0.3, w, h, (rng.Float64()-0.5)*0.5)
			if !allInside(ring, inside) {
				continue
			}
			nb++
			bd := demoBuilding{Code: fmt.Sprintf("B%s%03d", g.Code, nb), Footprint: ring, Grid: g.Code, Use: "住宅"}
			estate := estates[rng.IntN(len(estates))]
			street := streets[rng.IntN(3)]
			switch r := rng.IntN(100); {
			case r < 8:
				bd.Use, bd.Name, bd.Floors, bd.Units = "商业", fmt.Sprintf("%s商业楼", street), 3+rng.IntN(4), 1
			case r < 12:
				bd.Use, bd.Name, bd.Floors, bd.Units = "办公", fmt.Sprintf("%s办公楼", street), 5+rng.IntN(12), 1
			case r < 14:
				bd.Use, bd.Name, bd.Floors, bd.Units = "教育", fmt.Sprintf("%s小学教学楼", street), 4, 1
			default:
				bd.Name = fmt.Sprintf("%s%d号楼", estate, nb)
				if tower {
					bd.Floors, bd.Units = []int{11, 18, 26, 33}[rng.IntN(4)], 1+rng.IntN(2)
				} else {
					bd.Floors, bd.Units = 5+rng.IntN(3), 2+rng.IntN(3)
				}
				// About six households a unit are registered.
				bd.Households = 4 + rng.IntN(5)
			}
			bd.Address = fmt.Sprintf("郑州市金水区%s%d号", street, 1+rng.IntN(200))
			if bd.Use == "住宅" {
				bd.Address += estate + strconv.Itoa(nb) + "号楼"
			}
			out.Buildings = append(out.Buildings, bd)
			for u := 1; u <= bd.Units; u++ {
				for h := range bd.Households {
					floor := 1 + (h*bd.Floors)/max(bd.Households, 1)
					room := fmt.Sprintf("%d%02d", floor, 1+h%2+2*(h%3/2))
					code := fmt.Sprintf("H%s-%d-%s", bd.Code, u, room)
					out.Households++
					out.Residents = append(out.Residents, demoHousehold(rng, code, bd.Code, strconv.Itoa(u), room, refYear, ids, phones)...)
				}
			}
		}

		// Parcels: two or three, about 150–300 m across, over the grid's
		// estates and a school or a green; some reach over its edge.
		for p := range 2 + rng.IntN(2) {
			cx := box[0] + (0.2+0.6*rng.Float64())*(box[2]-box[0])
			cy := box[1] + (0.2+0.6*rng.Float64())*(box[3]-box[1])
			pc := demoParcel{Code: fmt.Sprintf("%sGB%05d", g.ParentCode, gi*10+p+1),
				Ring: rectangle(cx, cy, 150+rng.Float64()*150, 120+rng.Float64()*120, (rng.Float64()-0.5)*0.3)}
			switch r := rng.IntN(10); {
			case r < 6:
				estate := estates[p%2]
				pc.Name, pc.Use, pc.Holder = estate+"宗地", "二类居住用地", estate+"业主委员会"
			case r < 8:
				pc.Name, pc.Use, pc.Holder = streets[p%3]+"小学", "教育科研用地", "金水区教育局"
			case r < 9:
				pc.Name, pc.Use, pc.Holder = streets[p%3]+"游园", "公园绿地", "郑州市园林局"
			default:
				pc.Name, pc.Use, pc.Holder = streets[p%3]+"商业地块", "商业用地", "郑州金水城市建设有限公司"
			}
			out.Parcels = append(out.Parcels, pc)
		}

		// Components: about 20 a grid; a few damaged or lost.
		for _, k := range demoComponentKinds {
			for range k.n {
				serial[k.class]++
				lon, lat := randomInside(rng, box, inside)
				state := "intact"
				switch r := rng.IntN(200); {
				case r < 9:
					state = "damaged"
				case r < 12:
					state = "lost"
				}
				out.Components = append(out.Components, demoComponent{
					Code: fmt.Sprintf("%s%s%06d", demoDistrict, k.class, serial[k.class]), Class: k.class,
					Name: k.name, Department: k.department, State: state,
					Address: fmt.Sprintf("郑州市金水区%s%d号附近", streets[rng.IntN(3)], 1+rng.IntN(200)),
					Lon:     lon, Lat: lat,
				})
			}
		}
	}
	return out
}

// demoHousehold draws a household's residents: alone, a couple, a family
// with children, three generations, or grandparents with a child whose
// parents work elsewhere (留守儿童); with the care flags at about the rates
// of an old city district.
func demoHousehold(rng *rand.Rand, code, building, unit, room string, refYear int, ids, phones map[string]bool) []demoResident {
	surname := demoSurname(rng)
	var people []demoResident
	add := func(relation, gender string, ageLo, ageHi int, sameSurname bool) *demoResident {
		s := surname
		if !sameSurname {
			s = demoSurname(rng)
		}
		age := ageLo + rng.IntN(ageHi-ageLo+1)
		birth := time.Date(refYear-age, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)
		p := demoResident{HouseholdCode: code, BuildingCode: building, Unit: unit, Room: room,
			Name: s + demoGivenName(rng, gender), Gender: gender, Relation: relation, Birth: birth}
		p.IDNumber = demoIDNumber(rng, birth, gender, ids)
		if age >= 14 {
			p.Phone = demoPhone(rng, phones)
		}
		people = append(people, p)
		return &people[len(people)-1]
	}
	other := func(g string) string {
		if g == "male" {
			return "female"
		}
		return "male"
	}
	g := []string{"male", "female"}[rng.IntN(2)]
	switch r := rng.IntN(100); {
	case r < 9: // an elderly person living alone (独居老人)
		p := add("户主", g, 70, 92, true)
		p.Care = append(p.Care, "elderly_alone")
	case r < 17:
		add("户主", "male", 65, 88, true)
		add("配偶", "female", 63, 86, false)
	case r < 29:
		add("户主", g, 22, 60, true)
	case r < 46:
		add("户主", g, 25, 60, true)
		add("配偶", other(g), 25, 60, false)
	case r < 84:
		add("户主", g, 30, 55, true)
		add("配偶", other(g), 28, 55, false)
		for range 1 + rng.IntN(2) {
			add("子女", []string{"male", "female"}[rng.IntN(2)], 0, 25, true)
		}
	case r < 97:
		add("户主", g, 35, 55, true)
		add("配偶", other(g), 33, 55, false)
		add("子女", []string{"male", "female"}[rng.IntN(2)], 3, 20, true)
		add("父母", []string{"male", "female"}[rng.IntN(2)], 65, 90, true)
	default: // grandparents with a grandchild whose parents work away
		add("户主", "male", 58, 75, true)
		add("配偶", "female", 56, 73, false)
		p := add("孙子女", []string{"male", "female"}[rng.IntN(2)], 4, 15, true)
		p.Care = append(p.Care, "left_behind_minor")
	}
	lowIncome := rng.IntN(50) == 0
	for i := range people {
		p := &people[i]
		age := refYear - p.Birth.Year()
		if lowIncome {
			p.Care = append(p.Care, "low_income")
		}
		if rng.IntN(50) == 0 {
			p.Care = append(p.Care, "disabled")
		}
		if age >= 18 && age <= 60 && rng.IntN(400) == 0 {
			p.Care = append(p.Care, "community_correction")
		}
		if p.Gender == "male" && age >= 25 && rng.IntN(33) == 0 {
			p.Care = append(p.Care, "veteran")
		}
	}
	return people
}

func demoSurname(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return demoSurnames[rng.IntN(demoCommonSurnames)]
	}
	return demoSurnames[rng.IntN(len(demoSurnames))]
}

func demoGivenName(rng *rand.Rand, gender string) string {
	chars := demoMaleChars
	if gender == "female" {
		chars = demoFemaleChars
	}
	name := chars[rng.IntN(len(chars))]
	if rng.IntN(3) > 0 {
		name += chars[rng.IntN(len(chars))]
	}
	return name
}

// idWeights and idChecks are GB 11643's ISO 7064 MOD 11-2 check.
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const idChecks = "10X98765432"

// idCheck returns the check character of an ID number's first 17 digits.
func idCheck(first17 string) byte {
	sum := 0
	for i := range 17 {
		sum += int(first17[i]-'0') * idWeights[i]
	}
	return idChecks[sum%11]
}

// demoIDNumber makes a synthetic ID number: the demo district, the birth
// date, a sequence number (odd for men, even for women, as GB 11643 has
// it) and a check character that is NOT the right one (the next in
// idChecks), so it cannot be a real person's. Each is drawn once.
func demoIDNumber(rng *rand.Rand, birth time.Time, gender string, seen map[string]bool) string {
	for {
		seq := rng.IntN(500) * 2
		if gender == "male" {
			seq++
		}
		first := fmt.Sprintf("%s%s%03d", demoDistrict, birth.Format("20060102"), seq)
		right := strings.IndexByte(idChecks, idCheck(first))
		id := first + string(idChecks[(right+1)%len(idChecks)])
		if !seen[id] {
			seen[id] = true
			return id
		}
	}
}

// DemoIDChecks reports whether an ID number's check character is right:
// never for the demo's.
func DemoIDChecks(id string) bool {
	return len(id) == 18 && strings.ToUpper(id[17:]) == string(idCheck(id[:17]))
}

// demoPhone makes a phone number no one has: 100 and eight digits.
func demoPhone(rng *rand.Rand, seen map[string]bool) string {
	for {
		p := fmt.Sprintf("100%08d", rng.IntN(100_000_000))
		if !seen[p] {
			seen[p] = true
			return p
		}
	}
}

// rectangle is a closed ring of a w × h metre rectangle centred on lon,
// lat, turned by angle radians.
func rectangle(lon, lat, w, h, angle float64) [][2]float64 {
	sin, cos := math.Sincos(angle)
	var ring [][2]float64
	for _, c := range [][2]float64{{-1, -1}, {1, -1}, {1, 1}, {-1, 1}, {-1, -1}} {
		x, y := c[0]*w/2, c[1]*h/2
		ring = append(ring, [2]float64{
			math.Round((lon+(x*cos-y*sin)/demoMPerLon)*1e7) / 1e7,
			math.Round((lat+(x*sin+y*cos)/demoMPerLat)*1e7) / 1e7,
		})
	}
	return ring
}

func allInside(ring [][2]float64, inside func(lon, lat float64) bool) bool {
	for _, p := range ring {
		if !inside(p[0], p[1]) {
			return false
		}
	}
	return true
}

// randomInside draws a point of box that inside holds.
func randomInside(rng *rand.Rand, box [4]float64, inside func(lon, lat float64) bool) (float64, float64) {
	var lon, lat float64
	for range 64 {
		lon = box[0] + rng.Float64()*(box[2]-box[0])
		lat = box[1] + rng.Float64()*(box[3]-box[1])
		if inside(lon, lat) {
			break
		}
	}
	return math.Round(lon*1e7) / 1e7, math.Round(lat*1e7) / 1e7
}

// polygonContains reports whether a point lies inside a multipolygon (even
// odd over all rings: holes excluded). Points on an edge may go either
// way; the generator keeps its things off the edges.
func polygonContains(mp *geom.MultiPolygon, lon, lat float64) bool {
	in := false
	for i := range mp.NumPolygons() {
		p := mp.Polygon(i)
		for r := range p.NumLinearRings() {
			c := p.LinearRing(r).Coords()
			for j, k := 0, len(c)-1; j < len(c); k, j = j, j+1 {
				if (c[j][1] > lat) != (c[k][1] > lat) &&
					lon < (c[k][0]-c[j][0])*(lat-c[j][1])/(c[k][1]-c[j][1])+c[j][0] {
					in = !in
				}
			}
		}
	}
	return in
}

// geoJSON writes features as a FeatureCollection.
func geoJSON(features []map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"type": "FeatureCollection", "features": features})
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	return b
}

func polygonFeature(ring [][2]float64, props map[string]any) map[string]any {
	return map[string]any{"type": "Feature", "properties": props,
		"geometry": map[string]any{"type": "Polygon", "coordinates": [][][2]float64{ring}}}
}

func (b demoBaseData) buildingsGeoJSON() []byte {
	fs := make([]map[string]any, len(b.Buildings))
	for i, bd := range b.Buildings {
		fs[i] = polygonFeature(bd.Footprint, map[string]any{"code": bd.Code, "name": bd.Name, "address": bd.Address,
			"floors": bd.Floors, "units": bd.Units, "use": bd.Use})
	}
	return geoJSON(fs)
}

func (b demoBaseData) parcelsGeoJSON() []byte {
	fs := make([]map[string]any, len(b.Parcels))
	for i, p := range b.Parcels {
		fs[i] = polygonFeature(p.Ring, map[string]any{"code": p.Code, "name": p.Name, "use": p.Use, "holder": p.Holder})
	}
	return geoJSON(fs)
}

func (b demoBaseData) componentsGeoJSON() []byte {
	fs := make([]map[string]any, len(b.Components))
	for i, c := range b.Components {
		fs[i] = map[string]any{"type": "Feature",
			"properties": map[string]any{"code": c.Code, "class": c.Class, "name": c.Name, "department": c.Department,
				"state": c.State, "address": c.Address},
			"geometry": map[string]any{"type": "Point", "coordinates": [2]float64{c.Lon, c.Lat}}}
	}
	return geoJSON(fs)
}

// residentsCSV writes the residents in the import's CSV columns.
func (b demoBaseData) residentsCSV() []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"household_code", "building_code", "unit", "room", "name", "gender", "relation", "id_number", "phone", "birth_date", "care"})
	for _, r := range b.Residents {
		_ = w.Write([]string{r.HouseholdCode, r.BuildingCode, r.Unit, r.Room, r.Name, r.Gender, r.Relation, r.IDNumber, r.Phone,
			r.Birth.Format(time.DateOnly), strings.Join(r.Care, ";")})
	}
	w.Flush()
	return buf.Bytes()
}

// seedDemoBase stores the demo's base data through the base-data imports.
// Each kind is imported unless its last demo row is stored already (an
// import upserts by code, so a repeat would change nothing but cost the
// time); residents are imported only with the key ring that seals them.
func (d *Domain) seedDemoBase(ctx context.Context, refYear int) error {
	start := time.Now()
	grids, err := demoCityGrids()
	if err != nil {
		return err
	}
	data := demoBase(grids, refYear)
	ctx = audit.WithActor(ctx, audit.Actor{Kind: "system", Name: "demo"})
	opts := basedata.ImportOptions{Format: basedata.FormatGeoJSON}
	steps := []struct {
		name, last string
		have       func(code string) (bool, error)
		run        func() (*basedata.ImportResult, error)
	}{
		{"buildings", data.Buildings[len(data.Buildings)-1].Code, d.haveBuilding,
			func() (*basedata.ImportResult, error) {
				return d.Base.ImportBuildings(ctx, bytes.NewReader(data.buildingsGeoJSON()), opts)
			}},
		{"parcels", data.Parcels[len(data.Parcels)-1].Code, d.haveParcel,
			func() (*basedata.ImportResult, error) {
				return d.Base.ImportParcels(ctx, bytes.NewReader(data.parcelsGeoJSON()), opts)
			}},
		{"components", data.Components[len(data.Components)-1].Code, d.haveComponent,
			func() (*basedata.ImportResult, error) {
				return d.Base.ImportComponents(ctx, bytes.NewReader(data.componentsGeoJSON()), opts)
			}},
	}
	for _, st := range steps {
		have, err := st.have(st.last)
		if err != nil {
			return fmt.Errorf("demo %s: %w", st.name, err)
		}
		if have {
			continue
		}
		res, err := st.run()
		if err != nil {
			return fmt.Errorf("demo %s: %w", st.name, err)
		}
		d.log.Info("demo base data seeded", "kind", st.name, "created", res.Created, "grids", res.Grids)
	}
	if err := d.seedDemoResidents(ctx, data); err != nil {
		return err
	}
	d.log.Info("demo base data ready", "buildings", len(data.Buildings), "parcels", len(data.Parcels),
		"components", len(data.Components), "households", data.Households, "residents", len(data.Residents),
		"took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

func (d *Domain) haveBuilding(code string) (bool, error) {
	list, _, err := d.Base.Buildings(context.Background(), basedata.Filter{Q: code, Limit: 1}, basedata.Viewer{})
	return len(list) > 0 && list[0].Code == code, err
}

func (d *Domain) haveParcel(code string) (bool, error) {
	list, _, err := d.Base.Parcels(context.Background(), basedata.Filter{Q: code, Limit: 1}, basedata.Viewer{})
	return len(list) > 0 && list[0].Code == code, err
}

func (d *Domain) haveComponent(code string) (bool, error) {
	list, _, err := d.Base.Components(context.Background(), basedata.Filter{Q: code, Limit: 1}, basedata.Viewer{})
	return len(list) > 0 && list[0].Code == code, err
}

// demoComponentRef is a stored component a component case can be about.
type demoComponentRef struct {
	id       int64
	code     string
	lon, lat float64
}

// demoComponentCategory is the event subclass of a case about a component
// of a class: a manhole cover's is 0701, a lamp's 0702, and so on.
func demoComponentCategory(class string) string {
	switch {
	case class == "0120":
		return "0702"
	case class == "0116":
		return "0703"
	case class == "0304":
		return "0704"
	case strings.HasPrefix(class, "01") && class <= "0111":
		return "0701"
	}
	return "0705"
}

// demoComponentRefs returns the components of the demo district that are
// still standing, by grid code and the event subclass of their cases, in
// code order.
func (d *Domain) demoComponentRefs(ctx context.Context) (map[string]map[string][]demoComponentRef, error) {
	out := map[string]map[string][]demoComponentRef{}
	if d.Base == nil {
		return out, nil
	}
	var all []basedata.Component
	for before := int64(0); ; {
		page, next, err := d.Base.Components(ctx, basedata.Filter{Before: before, Limit: 1000}, basedata.Viewer{})
		if err != nil {
			return nil, fmt.Errorf("demo components: %w", err)
		}
		all = append(all, page...)
		if next == 0 {
			break
		}
		before = next
	}
	slices.SortFunc(all, func(a, b basedata.Component) int { return strings.Compare(a.Code, b.Code) })
	for _, c := range all {
		if c.Grid == nil || c.State == basedata.StateRemoved || !strings.HasPrefix(c.Grid.Code, demoDistrict) {
			continue
		}
		cat := demoComponentCategory(c.Class.Code)
		if out[c.Grid.Code] == nil {
			out[c.Grid.Code] = map[string][]demoComponentRef{}
		}
		out[c.Grid.Code][cat] = append(out[c.Grid.Code][cat], demoComponentRef{id: c.ID, code: c.Code, lon: c.Lon, lat: c.Lat})
	}
	return out, nil
}

// seedDemoResidents imports the demo's households and residents, once
// (the households come with their residents, all or nothing: the last
// one stored means all are). Their ID numbers fail the check on purpose,
// so the import is told they are synthetic. Without the key ring that
// seals them they are left out, saying why.
func (d *Domain) seedDemoResidents(ctx context.Context, data demoBaseData) error {
	last := data.Residents[len(data.Residents)-1].HouseholdCode
	list, _, err := d.Base.Households(ctx, basedata.Filter{Q: last, Limit: 1}, basedata.Viewer{})
	if err != nil {
		return fmt.Errorf("demo residents: %w", err)
	}
	if len(list) > 0 && list[0].Code == last {
		return nil
	}
	res, err := d.Base.ImportResidents(ctx, bytes.NewReader(data.residentsCSV()),
		basedata.ImportOptions{Format: basedata.FormatCSV, SyntheticIDs: true})
	if gridwatch.ErrorCode(err) == gridwatch.EUnavailable {
		d.log.Warn("demo residents left out: the server has no personal-data keys to seal them with", "reason", gridwatch.ErrorMessage(err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo residents: %w", err)
	}
	d.log.Info("demo residents seeded", "households", data.Households, "residents", res.Created, "grids", res.Grids)
	return nil
}

// demoVisitNotes are what the demo grid leader wrote after a home visit.
var demoVisitNotes = []string{
	"上门走访，老人身体状况良好，生活物资充足 · Visited at home: in good health, well supplied",
	"电话回访，提醒注意用电、燃气安全 · Called back: reminded about electricity and gas safety",
	"协助办理高龄津贴申请材料 · Helped with the old-age allowance forms",
	"家中无人，已留联系卡，约定下周再访 · No one home: left a card, back next week",
	"送达防汛告知书，检查门窗 · Delivered the flood notice, checked doors and windows",
	"了解就医需求，已转社区卫生服务站 · Noted a medical need, passed to the health station",
}

// demoVisitFlags are the care flags whose households the demo leader
// visits: those a grid team looks in on.
var demoVisitFlags = []string{"elderly_alone", "disabled", "low_income", "left_behind_minor"}

// seedDemoVisits records the demo grid leader's home visits (走访) over the
// past weeks to the households of its community that need looking in on —
// one to three each, about a quarter never visited yet, so the field app's
// list shows who is due — unless the leader has visits already. Each visit
// goes through RecordVisit with its own key, as a phone sends it; the
// choice and the days come from the household's code, so a day's seeding
// is the same every time.
func (d *Domain) seedDemoVisits(ctx context.Context, now time.Time) error {
	var leader DemoAccount
	for _, a := range DemoAccounts() {
		if a.Role == auth.RoleGridLeader {
			leader = a
		}
	}
	users, err := d.Auth.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("demo visits: %w", err)
	}
	var uid int64
	for _, u := range users {
		if u.Username == leader.Username {
			uid = u.ID
		}
	}
	if uid == 0 {
		return fmt.Errorf("demo visits: no user %s", leader.Username)
	}
	if done, _, err := d.Base.Visits(ctx, basedata.VisitFilter{UserID: uid, Limit: 1}, basedata.Viewer{UserID: uid, Residents: true}); err != nil || len(done) > 0 {
		return err
	}
	scope, _, err := d.Grids.List(ctx, geo.Filter{Code: leader.GridCodes[0], Limit: 1})
	if err != nil || len(scope) == 0 {
		return fmt.Errorf("demo visits: grid %s: %v", leader.GridCodes[0], err)
	}
	v := basedata.Viewer{UserID: uid, Grids: []int64{scope[0].ID}, Residents: true}
	seen := map[int64]bool{}
	visits := 0
	for _, flag := range demoVisitFlags {
		var before int64
		for {
			page, next, err := d.Base.Households(ctx, basedata.Filter{Care: []string{flag}, Before: before, Limit: 500}, v)
			if err != nil {
				return fmt.Errorf("demo visits: %w", err)
			}
			for _, h := range page {
				if seen[h.ID] {
					continue
				}
				seen[h.ID] = true
				rng := rand.New(rand.NewPCG(uint64(h.ID), 19))
				n := rng.IntN(4) // 0: not visited yet
				for k := range n {
					at := now.Add(-time.Duration(2+k*25+rng.IntN(20))*24*time.Hour - time.Duration(rng.IntN(8*60))*time.Minute)
					note := demoVisitNotes[rng.IntN(len(demoVisitNotes))]
					key := fmt.Sprintf("demo-visit-%s-%d", h.Code, k)
					if _, _, err := d.Base.RecordVisit(ctx, h.ID, basedata.NewVisit{VisitedAt: &at, Note: note}, key, v); err != nil {
						return fmt.Errorf("demo visit to %s: %w", h.Code, err)
					}
					visits++
				}
			}
			if next == 0 {
				break
			}
			before = next
		}
	}
	d.log.Info("demo visits seeded", "households", len(seen), "visits", visits)
	return nil
}
