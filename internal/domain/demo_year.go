package domain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/incident"
)

// DemoYearCases is how many cases the demo's year holds: the 18,021 grid
// events Zhengzhou's 66 pilot grids handled in a year, the city the demo
// is drawn after.
const DemoYearCases = 18021

// demoYearSeed seeds the year's generator: the same day gives the same
// cases.
const demoYearSeed = 0x4772_6964_5965_6172 // "GridYear"

// demoYearReporter reports the year's cases: its key and the external ids
// demo-year-NNNNN make a second seeding find them.
var demoYearReporter = incident.Reporter{Name: "demo"}

// demoZone is the demo city's time zone: its days, rush hours and weeks.
var demoZone = mustZone(incident.DefaultStatsZone)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		// The binary embeds no zone database of its own; China has one
		// zone, without daylight saving.
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}

// demoCommandActor takes the command centre's steps of the demo's cases
// (立案, 派遣, 核查, 结案): the demo commander's account.
const demoCommandActor = "demo-commander"

// demoGrid is a grid of the demo city as the year's generator sees it.
type demoGrid struct {
	ref        geo.Ref
	population float64
	box        [4]float64 // min lon, min lat, max lon, max lat
	// team is the grid's 1+X+Y team, leader first (ListStaff's order).
	team []incident.Staff
	// inside reports whether a point lies in this grid (the locator's
	// placement, the rule every report follows).
	inside func(lon, lat float64) bool
}

// demoCategory is a subclass and how often the year has it.
type demoCategory struct {
	incident.Category
	weight float64
}

// demoClassWeights is the share of each event class, in percent, as in a
// Chinese district's digital city management: 市容环境 and 街面秩序 lead,
// component cases (07, when the categories have them) next.
var demoClassWeights = map[string]float64{"01": 32, "05": 27, "07": 14, "02": 10, "03": 8, "04": 4, "06": 5}

// demoSubWeights weighs subclasses within their class (1 when absent).
var demoSubWeights = map[string]float64{
	"0101": 4, "0102": 2, "0103": 3, "0104": 1,
	"0201": 4, "0202": 1, "0203": 1,
	"0301": 2, "0302": 2, "0303": 1,
	"0401": 0.5, "0402": 1, "0403": 0.3, "0404": 2,
	"0501": 3, "0502": 4, "0503": 2, "0504": 5,
	"0701": 3, "0702": 4, "0703": 1, "0704": 2, "0705": 1,
}

// demoTitles are the titles a subclass's cases get; others are named by
// their subclass.
var demoTitles = map[string][]string{
	"0101": {"路边暴露垃圾未清运", "绿化带内暴露垃圾", "小区门口垃圾满溢", "人行道垃圾堆积"},
	"0102": {"楼侧积存建筑渣土", "空地积存垃圾渣土", "背街小巷积存垃圾"},
	"0103": {"路面油污未清理", "人行道不洁", "路面散落物未清扫"},
	"0104": {"墙面乱涂乱画", "配电箱乱涂写", "桥墩乱涂乱画"},
	"0201": {"电线杆张贴小广告", "楼道口非法小广告", "公交站牌小广告"},
	"0202": {"门店违规设置户外广告", "楼顶广告牌破损"},
	"0203": {"人行道摆放广告牌", "门店占道立牌"},
	"0301": {"夜间施工噪音扰民", "工地超时作业"},
	"0302": {"施工围挡占用人行道", "施工材料占道堆放"},
	"0303": {"道路挖掘后未恢复", "路面开挖破损"},
	"0401": {"路面局部塌陷"},
	"0402": {"井盖缺失存在隐患"},
	"0403": {"绿化带冒烟起火", "垃圾箱着火"},
	"0404": {"路口积水影响通行", "下穿通道积水"},
	"0501": {"商户店外经营", "店外摆放货架"},
	"0502": {"早市占道经营", "夜市摊点占道", "流动摊点占用人行道"},
	"0503": {"无照游商兜售", "三轮车流动叫卖"},
	"0504": {"人行道乱停电动车", "共享单车乱停放", "机动车占用盲道"},
	"0701": {"井盖破损", "井盖丢失", "井盖松动异响"},
	"0702": {"路灯不亮", "路灯白天常亮", "路灯灯杆倾斜"},
	"0703": {"消防栓漏水", "消防栓被撞损坏"},
	"0704": {"垃圾箱破损", "果皮箱缺失"},
	"0705": {"护栏损坏", "公交站亭玻璃破损"},
}

// demoHandled is what the team reports on finishing a case, by class.
var demoHandled = map[string]string{
	"01": "已清理完毕，现场恢复整洁", "02": "已清除广告并告知商户", "03": "已责令施工单位整改",
	"04": "已联系专业单位处置，隐患消除", "05": "已劝离并规范摆放", "06": "已处理", "07": "已通知权属单位维修更换",
}

// demoRejectNotes are why a report is not registered (不予立案).
var demoRejectNotes = []string{"重复上报", "不属于城管受理范围", "现场核实无此问题", "信息不全，无法定位"}

// demoSources are the channels, in percent (信息采集员巡查 leads).
var demoSources = []struct {
	src     incident.Source
	weight  float64
	creator string
}{
	{"patrol", 52, ""}, {"hotline", 18, "demo 12345 hotline"}, {"citizen", 11, "市民随手拍"},
	{"camera", 11, "智能视频分析"}, {"sensor", 2, "物联感知平台"}, {"superior", 6, "市数字城管中心"},
}

// demoHourWeights is when cases are reported, by hour of the day: patrols
// in the morning and the afternoon, little at night.
var demoHourWeights = [24]float64{0.3, 0.2, 0.15, 0.15, 0.2, 0.5, 1.2, 2.6, 4.6, 5.6, 5.4, 4.4, 2.8, 3.0, 4.2, 4.9, 4.7, 4.0, 3.0, 2.6, 2.2, 1.6, 0.9, 0.5}

// demoEveningWeights is the same for street order (05): markets and stalls
// in the early morning and the evening.
var demoEveningWeights = [24]float64{0.4, 0.2, 0.1, 0.1, 0.2, 0.8, 2.5, 3.6, 3.8, 3.2, 2.8, 2.6, 2.2, 2.0, 2.2, 2.6, 3.2, 4.4, 5.6, 6.0, 5.4, 3.8, 2.0, 0.9}

// demoSpringFestivals are the first days of the Spring Festival the year
// may cross: the city is quiet for a week.
var demoSpringFestivals = []string{"2024-02-10", "2025-01-29", "2026-02-17", "2027-02-06", "2028-01-26", "2029-02-13", "2030-02-03"}

// demoYear makes the year of cases before the day of now (in the demo's
// zone): DemoYearCases of them over the 365 days before that day, spread
// over the grids by population and over the days by the week, the season
// and the holidays, in the categories' shares. Most are closed, on time or
// late; some were rejected or returned; those whose next step would come
// after the day began stay open where they stand, and a few were left
// stuck for weeks. Only now's day matters: the same day gives the same
// cases. components, by grid code and category, are what component cases
// (07) are about; none leaves them unlinked.
func demoYear(now time.Time, grids []demoGrid, cats []demoCategory, components map[string]map[string][]demoComponentRef) []incident.HistoricCase {
	local := now.In(demoZone)
	end := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, demoZone)
	rng := rand.New(rand.NewPCG(demoYearSeed, uint64(end.Unix())))

	// How many cases each day has, by the largest remainder.
	const days = 365
	weights := make([]float64, days)
	sum := 0.0
	for d := range days {
		day := end.AddDate(0, 0, d-days)
		w := 1.0
		switch day.Weekday() {
		case time.Saturday:
			w = 0.72
		case time.Sunday:
			w = 0.62
		}
		// More in summer (rubbish, night markets), less in winter.
		w *= 1 + 0.16*math.Cos(2*math.Pi*float64(day.YearDay()-200)/365)
		for _, f := range demoSpringFestivals {
			sf, _ := time.ParseInLocation(time.DateOnly, f, demoZone)
			if !day.Before(sf.AddDate(0, 0, -1)) && day.Before(sf.AddDate(0, 0, 7)) {
				w *= 0.45
			}
		}
		if day.Month() == time.October && day.Day() <= 7 {
			w *= 0.8 // National Day
		}
		w *= 0.9 + 0.2*rng.Float64()
		weights[d] = w
		sum += w
	}
	perDay := largestRemainder(weights, sum, DemoYearCases)

	gridW := make([]float64, len(grids))
	for i, g := range grids {
		gridW[i] = max(g.population, 100)
	}
	catW := make([]float64, len(cats))
	for i, c := range cats {
		catW[i] = c.weight
	}
	srcW := make([]float64, len(demoSources))
	for i, s := range demoSources {
		srcW[i] = s.weight
	}

	type draft struct {
		at   time.Time
		grid int
		cat  int
	}
	drafts := make([]draft, 0, DemoYearCases)
	for d, n := range perDay {
		day := end.AddDate(0, 0, d-days)
		for range n {
			c := pick(rng, catW)
			hours := &demoHourWeights
			if strings.HasPrefix(cats[c].Code, "05") {
				hours = &demoEveningWeights
			}
			h := pick(rng, hours[:])
			at := day.Add(time.Duration(h)*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
			drafts = append(drafts, draft{at: at, grid: pick(rng, gridW), cat: c})
		}
	}
	slices.SortStableFunc(drafts, func(a, b draft) int { return a.at.Compare(b.at) })

	out := make([]incident.HistoricCase, 0, len(drafts))
	for n, dr := range drafts {
		g, cat := &grids[dr.grid], cats[dr.cat]
		class := cat.Code[:2]
		src := demoSources[pick(rng, srcW)]
		c := incident.HistoricCase{
			Source:     src.src,
			ExternalID: fmt.Sprintf("demo-year-%05d", n+1),
			Category:   cat.Code,
			ReportedAt: dr.at,
			// The hotline and the apps take a few minutes to reach the
			// centre (never past the day's start: nothing of the year
			// comes after it).
			ReceivedAt: dr.at.Add(time.Duration(rng.IntN(300)) * time.Second),
			CreatedBy:  src.creator,
			Priority:   "normal",
		}
		if !c.ReceivedAt.Before(end) {
			c.ReceivedAt = c.ReportedAt
		}
		if c.CreatedBy == "" && len(g.team) > 0 {
			c.CreatedBy = g.team[rng.IntN(len(g.team))].Name // 网格员巡查上报
		}
		switch {
		case class == "04":
			c.Priority = []string{"high", "urgent"}[rng.IntN(2)]
		case rng.IntN(20) == 0:
			c.Priority = "high"
		case rng.IntN(12) == 0:
			c.Priority = "low"
		}
		titles := demoTitles[cat.Code]
		if len(titles) == 0 {
			titles = []string{cat.Name}
		}
		c.Title = titles[rng.IntN(len(titles))]
		street := demoStreetsOf(g.ref.Code)[rng.IntN(3)]
		c.Address = fmt.Sprintf("郑州市金水区%s%d号附近", street, 1+rng.IntN(180))
		c.Description = fmt.Sprintf("%s，%s（%s）", c.Address, c.Title, g.ref.Name)
		c.Lon, c.Lat = g.point(rng)
		if comps := components[g.ref.Code][cat.Code]; len(comps) > 0 {
			comp := comps[rng.IntN(len(comps))]
			id := comp.id
			c.ComponentID, c.Lon, c.Lat = &id, comp.lon, comp.lat
			c.Description += "，部件编码 " + comp.code
		}
		demoWorkflow(rng, &c, g, cat, end, class)
		out = append(out, c)
	}
	// A few cases left stuck for weeks (a dispute over who should act):
	// overdue on any day the demo is shown.
	for k := range 12 {
		i := len(out) - 400 - k*97
		c := &out[i]
		cut := min(len(c.Steps), 2+k%3) // registered, dispatched or in progress
		if cut < len(c.Steps) && c.Steps[cut-1].To != incident.Rejected {
			c.Steps = c.Steps[:cut]
		}
	}
	return out
}

// demoWorkflow gives case c its steps: rejected (不予立案), or registered,
// dispatched (sometimes returned and dispatched again), accepted, handled
// (sometimes sent back for rework), verified and closed, on time or late.
// No step comes after end: a case whose next step would stays open there.
func demoWorkflow(rng *rand.Rand, c *incident.HistoricCase, g *demoGrid, cat demoCategory, end time.Time, class string) {
	deadline := time.Duration(cat.DeadlineHours) * time.Hour
	t := c.ReceivedAt
	add := func(to incident.Status, at time.Time, actor, note string, assignee *int64) bool {
		if !at.Before(end) {
			return false
		}
		if at.Before(t) {
			at = t
		}
		t = at
		c.Steps = append(c.Steps, incident.HistoricStep{To: to, At: at, Actor: actor, Note: note, AssigneeID: assignee})
		return true
	}
	after := func(frac float64) time.Time { return c.ReportedAt.Add(time.Duration(frac * float64(deadline))) }
	minutes := func(lo, hi int) time.Duration { return time.Duration(lo*60+rng.IntN((hi-lo)*60+1)) * time.Second }

	r := rng.Float64()
	switch {
	case r < 0.045:
		add(incident.Rejected, t.Add(minutes(5, 60)), demoCommandActor, demoRejectNotes[rng.IntN(len(demoRejectNotes))], nil)
		return
	case r < 0.055:
		if add(incident.Registered, t.Add(minutes(3, 30)), demoCommandActor, "立案："+cat.Name, nil) {
			add(incident.Rejected, t.Add(minutes(10, 90)), demoCommandActor, "复核后不予立案："+demoRejectNotes[rng.IntN(len(demoRejectNotes))], nil)
		}
		return
	}
	// Closed by the deadline nine times in ten; late ones run over by up
	// to three deadlines.
	total := 0.3 + 0.65*rng.Float64()
	if rng.IntN(10) == 0 {
		total = 1.05 + 2*rng.Float64()*rng.Float64()
	}
	member := func() *staffPick {
		if len(g.team) == 0 {
			return nil
		}
		i := 0
		if rng.IntN(100) >= 55 {
			i = rng.IntN(len(g.team))
		}
		return &staffPick{id: g.team[i].ID, name: g.team[i].Name}
	}
	who := member()
	if !add(incident.Registered, after(total*(0.03+0.05*rng.Float64())), demoCommandActor, "立案："+cat.Name, nil) {
		return
	}
	if who == nil {
		return // a grid without a team cannot be dispatched to
	}
	if !add(incident.Dispatched, after(total*(0.09+0.05*rng.Float64())), demoCommandActor, "派遣至"+g.ref.Name, &who.id) {
		return
	}
	if rng.IntN(25) == 0 {
		// Sent back (退回), then dispatched to another member of the team.
		if !add(incident.Returned, after(total*(0.15+0.05*rng.Float64())), who.name, "人员外出，申请改派", nil) {
			return
		}
		for prev := who.id; who.id == prev && len(g.team) > 1; {
			who = member()
		}
		if !add(incident.Dispatched, after(total*(0.2+0.05*rng.Float64())), demoCommandActor, "改派至"+g.ref.Name, &who.id) {
			return
		}
	}
	if !add(incident.InProgress, after(total*(0.27+0.08*rng.Float64())), who.name, "已接单，前往处置", nil) {
		return
	}
	handled := demoHandled[class]
	if handled == "" {
		handled = "已处置"
	}
	if rng.IntN(30) == 0 {
		// Verification found it not done (核查不通过): handled again.
		if !add(incident.Handled, after(total*(0.45+0.05*rng.Float64())), who.name, handled, nil) ||
			!add(incident.InProgress, after(total*(0.55+0.05*rng.Float64())), demoCommandActor, "核查未通过，请重新处置", nil) {
			return
		}
	}
	if !add(incident.Handled, after(total*(0.68+0.08*rng.Float64())), who.name, handled, nil) ||
		!add(incident.Verified, after(total*(0.82+0.1*rng.Float64())), demoCommandActor, "核查属实，处置到位", nil) {
		return
	}
	add(incident.Closed, after(total), demoCommandActor, "结案", nil)
}

type staffPick struct {
	id   int64
	name string
}

// point draws a point inside the grid: uniform in its box, kept when the
// grid covers it (most of a box is its grid's).
func (g *demoGrid) point(rng *rand.Rand) (float64, float64) {
	var lon, lat float64
	for range 64 {
		lon = g.box[0] + rng.Float64()*(g.box[2]-g.box[0])
		lat = g.box[1] + rng.Float64()*(g.box[3]-g.box[1])
		if g.inside(lon, lat) {
			break
		}
	}
	return math.Round(lon*1e7) / 1e7, math.Round(lat*1e7) / 1e7
}

// pick draws an index with probability proportional to its weight.
func pick(rng *rand.Rand, weights []float64) int {
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	x := rng.Float64() * sum
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// largestRemainder splits total among the weights (whose sum is sum) in
// whole numbers that add up to total.
func largestRemainder(weights []float64, sum float64, total int) []int {
	out := make([]int, len(weights))
	rest := make([]int, len(weights))
	given := 0
	for i, w := range weights {
		exact := w / sum * float64(total)
		out[i] = int(exact)
		given += out[i]
		rest[i] = i
	}
	slices.SortStableFunc(rest, func(a, b int) int {
		fa := weights[a]/sum*float64(total) - float64(out[a])
		fb := weights[b]/sum*float64(total) - float64(out[b])
		switch {
		case fa > fb:
			return -1
		case fa < fb:
			return 1
		}
		return 0
	})
	for k := 0; given < total; k++ {
		out[rest[k%len(rest)]]++
		given++
	}
	return out
}

// demoCategories weighs the stored subclasses by demoClassWeights and
// demoSubWeights.
func demoCategories(all []incident.Category) []demoCategory {
	subs := map[string]float64{}
	for _, c := range all {
		if c.ParentCode != nil {
			subs[*c.ParentCode] += subWeight(c.Code)
		}
	}
	var out []demoCategory
	for _, c := range all {
		if c.ParentCode == nil {
			continue
		}
		cw, ok := demoClassWeights[*c.ParentCode]
		if !ok {
			cw = 2 // a class added since: a few cases
		}
		out = append(out, demoCategory{Category: c, weight: cw * subWeight(c.Code) / subs[*c.ParentCode]})
	}
	return out
}

func subWeight(code string) float64 {
	if w, ok := demoSubWeights[code]; ok {
		return w
	}
	return 1
}

// demoPhotoEvery makes every so many of the cases reported by patrols and
// citizens carry a photo: a few hundred in the year.
const demoPhotoEvery = 40

// addDemoPhotos gives a photo to a few hundred of the cases that patrols
// and citizens report (their phones take one), drawn for each from its
// number, so the same case always has the same picture.
func addDemoPhotos(cases []incident.HistoricCase) int {
	n := 0
	for i := range cases {
		c := &cases[i]
		if (c.Source != "patrol" && c.Source != "citizen") || (i*7919)%demoPhotoEvery != 0 {
			continue
		}
		c.Photos = []incident.HistoricPhoto{{Filename: fmt.Sprintf("IMG_%s.jpg", strings.TrimPrefix(c.ExternalID, "demo-year-")),
			Data: demoPhoto(uint64(i), c.Category[:2])}}
		n++
	}
	return n
}

// demoPhoto draws a small street scene (sky, buildings with windows, the
// road) with the thing a case of class is about in front: a pile of
// rubbish, a poster, a barrier, a puddle, a stall, a manhole or a lamp.
// No text: it is a picture, not a document.
func demoPhoto(seed uint64, class string) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x70686f746f)) // "photo"
	const w, h = 240, 180
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rect := func(x0, y0, x1, y1 int, c color.RGBA) {
		for y := max(y0, 0); y < min(y1, h); y++ {
			for x := max(x0, 0); x < min(x1, w); x++ {
				img.SetRGBA(x, y, c)
			}
		}
	}
	ellipse := func(cx, cy, rx, ry int, c color.RGBA) {
		for y := cy - ry; y <= cy+ry; y++ {
			for x := cx - rx; x <= cx+rx; x++ {
				dx, dy := float64(x-cx)/float64(rx), float64(y-cy)/float64(ry)
				if dx*dx+dy*dy <= 1 && x >= 0 && x < w && y >= 0 && y < h {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	jit := func(v, d int) uint8 { return uint8(max(0, min(255, v+rng.IntN(2*d+1)-d))) }
	// Sky, from blue to hazy.
	for y := range 80 {
		rect(0, y, w, y+1, color.RGBA{jit(150+y/2, 6), jit(180+y/3, 6), 225, 255})
	}
	// Buildings with windows.
	for x := 0; x < w; {
		bw, bh := 30+rng.IntN(40), 30+rng.IntN(50)
		wall := color.RGBA{jit(190, 30), jit(180, 30), jit(165, 30), 255}
		rect(x, 80-bh, x+bw, 100, wall)
		for wy := 80 - bh + 6; wy < 92; wy += 10 {
			for wx := x + 4; wx < x+bw-6; wx += 9 {
				rect(wx, wy, wx+5, wy+6, color.RGBA{jit(90, 20), jit(110, 20), jit(130, 20), 255})
			}
		}
		x += bw + rng.IntN(6)
	}
	// Pavement, kerb and road.
	rect(0, 100, w, 125, color.RGBA{jit(175, 8), jit(170, 8), jit(160, 8), 255})
	rect(0, 125, w, 129, color.RGBA{120, 120, 120, 255})
	rect(0, 129, w, h, color.RGBA{jit(80, 8), jit(82, 8), jit(86, 8), 255})
	for x := rng.IntN(30); x < w; x += 50 {
		rect(x, 152, x+25, 156, color.RGBA{235, 235, 225, 255})
	}
	cx := 60 + rng.IntN(120)
	switch class {
	case "01": // rubbish
		for range 9 {
			ellipse(cx+rng.IntN(50)-25, 112+rng.IntN(14), 6+rng.IntN(10), 4+rng.IntN(6),
				color.RGBA{jit(110, 50), jit(100, 50), jit(70, 40), 255})
		}
	case "02": // a poster on a pole
		rect(cx, 60, cx+4, 122, color.RGBA{90, 90, 95, 255})
		rect(cx-10, 75, cx+14, 95, color.RGBA{jit(240, 10), jit(230, 20), jit(120, 60), 255})
	case "03": // a construction barrier
		for i := range 6 {
			c := color.RGBA{240, 120, 30, 255}
			if i%2 == 1 {
				c = color.RGBA{245, 245, 240, 255}
			}
			rect(cx-45+i*15, 104, cx-30+i*15, 122, c)
		}
	case "04": // a puddle, a hole
		ellipse(cx, 145, 40+rng.IntN(20), 9, color.RGBA{jit(60, 10), jit(75, 10), jit(95, 10), 255})
	case "05": // a stall with its awning, e-bikes
		rect(cx-25, 96, cx+25, 104, color.RGBA{jit(200, 30), 40, 40, 255})
		rect(cx-22, 104, cx+22, 122, color.RGBA{jit(150, 30), jit(110, 30), 60, 255})
		for i := range 3 {
			ellipse(cx+40+i*14, 120, 5, 5, color.RGBA{30, 30, 30, 255})
		}
	case "07": // a manhole and a lamp post
		ellipse(cx, 142, 16, 6, color.RGBA{50, 50, 50, 255})
		ellipse(cx, 142, 12, 4, color.RGBA{95, 92, 88, 255})
		rect(cx+40, 40, cx+44, 124, color.RGBA{70, 75, 80, 255})
		ellipse(cx+36, 40, 8, 3, color.RGBA{230, 230, 200, 255})
	default:
		rect(cx-15, 100, cx+15, 122, color.RGBA{jit(120, 60), jit(120, 60), jit(120, 60), 255})
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 70}); err != nil {
		panic(err) // encoding to memory does not fail
	}
	return buf.Bytes()
}

// seedDemoYear stores the demo's year of cases (demoYear), once: a case
// already stored is skipped by its external id. It runs after the staff:
// the cases are dispatched to the grids' teams.
func (d *Domain) seedDemoYear(ctx context.Context, now time.Time) error {
	start := time.Now()
	grids, err := d.demoGrids(ctx)
	if err != nil {
		return err
	}
	all, err := d.Incidents.Categories(ctx)
	if err != nil {
		return err
	}
	components, err := d.demoComponentRefs(ctx)
	if err != nil {
		return err
	}
	cases := demoYear(now, grids, demoCategories(all), components)
	// Drawing the photos is the dear part of a repeat: find out first.
	have, err := d.Incidents.HistoryStored(ctx, demoYearReporter, cases)
	if err != nil {
		return fmt.Errorf("demo year: %w", err)
	}
	if have == len(cases) {
		d.log.Info("demo year already present", "cases", have)
		return nil
	}
	photos := addDemoPhotos(cases)
	ctx = audit.WithActor(ctx, audit.Actor{Kind: "system", Name: "demo"})
	n, err := d.Incidents.SeedHistory(ctx, demoYearReporter, cases)
	if err != nil {
		return fmt.Errorf("demo year: %w", err)
	}
	d.log.Info("demo year seeded", "cases", n, "photos", photos, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// demoGrids returns the grids of the demo district, by code, with their
// teams; the locator is brought up to date to place the cases' points.
func (d *Domain) demoGrids(ctx context.Context) ([]demoGrid, error) {
	district, _, err := d.Grids.List(ctx, geo.Filter{Code: demoDistrict, Limit: 1})
	if err != nil || len(district) == 0 {
		return nil, fmt.Errorf("demo: the district %s is not stored (%v)", demoDistrict, err)
	}
	list, _, err := d.Grids.List(ctx, geo.Filter{Scope: []int64{district[0].ID}, Level: geo.LevelGrid, Geometry: true})
	if err != nil {
		return nil, err
	}
	if err := d.Locator.Refresh(ctx); err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b geo.Grid) int { return strings.Compare(a.Code, b.Code) })
	out := make([]demoGrid, 0, len(list))
	for _, g := range list {
		team, err := d.Incidents.ListStaff(ctx, g.ID)
		if err != nil {
			return nil, err
		}
		b := g.Geometry.Bounds()
		id := g.ID
		out = append(out, demoGrid{
			ref:        geo.Ref{ID: g.ID, Code: g.Code, Name: g.Name, Level: g.Level},
			population: number(g.Properties["population"]),
			box:        [4]float64{b.Min(0), b.Min(1), b.Max(0), b.Max(1)},
			team:       team,
			inside: func(lon, lat float64) bool {
				ref, ok := d.Locator.Assign(lon, lat)
				return ok && ref.ID == id
			},
		})
	}
	return out, nil
}

// demoDistrict is the demo city's district code (金水区).
const demoDistrict = "410105"

// number reads a JSON number property (0 when it is none).
func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, _ := n.Float64()
		return f
	case int:
		return float64(n)
	case int64:
		return float64(n)
	}
	return 0
}
