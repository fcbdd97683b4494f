package ogc

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/geo"
)

// Paging of OGC API Features items: the limit when none is given and the
// largest one accepted (both declared in /ogc/api).
const (
	ogcDefaultLimit = 100
	ogcMaxLimit     = 10000
)

// ogcCRS is a coordinate reference system items may be asked in. Storage
// is WGS-84 lon/lat; the others are derived from it on the way out (and
// bbox-crs on the way in).
type ogcCRS struct {
	URI string
	// latLon: the CRS's first axis is latitude (EPSG:4326 and EPSG:4490 as
	// their EPSG definitions say, which OGC API Features Part 2 follows);
	// CRS84 is lon/lat, as GeoJSON.
	latLon bool
	// mercator: EPSG:3857 metres.
	mercator bool
}

const crs84URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

// ogcCRSs are the systems offered, the default first. EPSG:4490 (CGCS2000)
// is treated as numerically equal to WGS-84 here: the two differ by
// centimetres, below what grids and incident locations are drawn to.
var ogcCRSs = []ogcCRS{
	{URI: crs84URI},
	{URI: "http://www.opengis.net/def/crs/EPSG/0/4326", latLon: true},
	{URI: "http://www.opengis.net/def/crs/EPSG/0/4490", latLon: true},
	{URI: "http://www.opengis.net/def/crs/EPSG/0/3857", mercator: true},
}

func ogcCRSURIs() []string {
	out := make([]string, len(ogcCRSs))
	for i, c := range ogcCRSs {
		out[i] = c.URI
	}
	return out
}

// parseOGCCRS reads a crs or bbox-crs parameter: one of the URIs offered,
// or its short form (EPSG:4326, [EPSG:4326], OGC:CRS84). Empty is CRS84.
func parseOGCCRS(param, v string) (ogcCRS, error) {
	if v == "" {
		return ogcCRSs[0], nil
	}
	short := strings.ToUpper(strings.Trim(v, "[]"))
	for _, c := range ogcCRSs {
		code := c.URI[strings.LastIndex(c.URI, "/")+1:]
		if v == c.URI || short == "EPSG:"+code || (code == "CRS84" && (short == "OGC:CRS84" || short == "CRS84")) {
			return c, nil
		}
	}
	return ogcCRS{}, gridwatch.Errorf(gridwatch.EInvalid, "query parameter %s=%q: not a coordinate reference system offered here; use one of %s",
		param, v, strings.Join(ogcCRSURIs(), ", ")).WithDetails(map[string]any{"param": param, "value": v, "allowed": ogcCRSURIs()})
}

// earthRadius is the sphere of Web Mercator (EPSG:3857), in metres.
const earthRadius = 6378137.0

// maxMercatorLat is where Web Mercator stops, in degrees.
const maxMercatorLat = 85.05112877980659

// out returns a stored lon/lat point in c's axis order and units.
func (c ogcCRS) out(lon, lat float64) (float64, float64) {
	switch {
	case c.mercator:
		lat = math.Max(-maxMercatorLat, math.Min(maxMercatorLat, lat))
		x := earthRadius * lon * math.Pi / 180
		y := earthRadius * math.Log(math.Tan(math.Pi/4+lat*math.Pi/360))
		return math.Round(x*100) / 100, math.Round(y*100) / 100
	case c.latLon:
		return round7(lat), round7(lon)
	}
	return round7(lon), round7(lat)
}

// in returns a point given in c as lon/lat.
func (c ogcCRS) in(a, b float64) (lon, lat float64) {
	switch {
	case c.mercator:
		return a / earthRadius * 180 / math.Pi, (2*math.Atan(math.Exp(b/earthRadius)) - math.Pi/2) * 180 / math.Pi
	case c.latLon:
		return b, a
	}
	return a, b
}

func round7(f float64) float64 { return math.Round(f*1e7) / 1e7 }

// parseOGCBBox reads bbox in c: four numbers, the lower corner then the
// upper one, each in c's axis order. A box with heights (six numbers) is
// refused: there are no heights here.
func parseOGCBBox(v string, c ogcCRS) (geo.BBox, error) {
	bad := func(why string) (geo.BBox, error) {
		return geo.BBox{}, gridwatch.Errorf(gridwatch.EInvalid, "query parameter bbox=%q: %s", v, why).
			WithDetails(map[string]any{"param": "bbox", "value": v})
	}
	parts := strings.Split(v, ",")
	if len(parts) == 6 {
		return bad("3D bbox not supported: give 4 numbers")
	}
	if len(parts) != 4 {
		return bad("want 4 comma-separated numbers, the lower corner then the upper one")
	}
	var n [4]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return bad("value " + strconv.Itoa(i+1) + " is not a finite number")
		}
		n[i] = f
	}
	if c.mercator {
		lim := earthRadius * math.Pi
		for _, f := range n {
			if math.Abs(f) > lim*1.0000001 {
				return bad("a coordinate lies outside the Web Mercator plane")
			}
		}
	}
	minLon, minLat := c.in(n[0], n[1])
	maxLon, maxLat := c.in(n[2], n[3])
	switch {
	case minLon < -180 || maxLon > 180 || minLon > 180 || maxLon < -180:
		return bad("a longitude lies outside -180…180")
	case minLat < -90 || maxLat > 90 || minLat > 90 || maxLat < -90:
		return bad("a latitude lies outside -90…90")
	case minLat > maxLat:
		return bad("the lower corner is north of the upper one")
	case minLon > maxLon:
		return bad("the lower corner is east of the upper one (boxes across the antimeridian are not supported)")
	}
	return geo.BBox{MinLon: minLon, MinLat: minLat, MaxLon: maxLon, MaxLat: maxLat}, nil
}

// parseOGCDatetime reads datetime: an RFC 3339 instant, or an interval
// a/b whose ends may be open (".." or empty). A full date alone stands for
// that day in UTC. Both ends are inclusive; a zero time is an open end.
func parseOGCDatetime(v string) (from, until time.Time, err error) {
	bad := func(why string) (time.Time, time.Time, error) {
		return time.Time{}, time.Time{}, gridwatch.Errorf(gridwatch.EInvalid, "query parameter datetime=%q: %s", v, why).
			WithDetails(map[string]any{"param": "datetime", "value": v})
	}
	start, end, interval := strings.Cut(v, "/")
	if !interval {
		from, until, ok := parseInstant(v)
		if !ok {
			return bad("want an RFC 3339 time such as 2026-11-26T08:00:00+08:00, or an interval start/end with .. for an open end")
		}
		return from, until, nil
	}
	if strings.Contains(end, "/") {
		return bad("an interval has one /")
	}
	if (start == "" || start == "..") && (end == "" || end == "..") {
		return time.Time{}, time.Time{}, nil
	}
	if start != "" && start != ".." {
		var ok bool
		if from, _, ok = parseInstant(start); !ok {
			return bad("the start is not an RFC 3339 time")
		}
	}
	if end != "" && end != ".." {
		var ok bool
		if _, until, ok = parseInstant(end); !ok {
			return bad("the end is not an RFC 3339 time")
		}
	}
	if !from.IsZero() && !until.IsZero() && from.After(until) {
		return bad("the start is after the end")
	}
	return from, until, nil
}

// parseInstant reads an RFC 3339 date-time (the instant twice) or full
// date (its first and last microsecond, UTC). Years before 1 are refused:
// their zero time would read as an open end.
func parseInstant(s string) (time.Time, time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.Year() >= 1 {
		return t, t, true
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil && d.Year() >= 1 {
		return d, d.AddDate(0, 0, 1).Add(-time.Microsecond), true
	}
	return time.Time{}, time.Time{}, false
}

// parseOGCLimit reads limit: 1 to ogcMaxLimit, ogcDefaultLimit when absent.
func parseOGCLimit(v string) (int, error) {
	if v == "" {
		return ogcDefaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > ogcMaxLimit {
		return 0, httpapi.ParamError("limit", v, "want an integer from 1 to "+strconv.Itoa(ogcMaxLimit))
	}
	return n, nil
}

// ogcQuery is an items request, parsed.
type ogcQuery struct {
	limit        int
	cursor       int64
	bbox         *geo.BBox
	from, until  time.Time
	crs          ogcCRS
	props        map[string]string
	values       url.Values
	collectionID string
}

// ogcCommonParams are the parameters every items request may carry; each
// collection adds its queryables.
var ogcCommonParams = []string{"f", "limit", "bbox", "bbox-crs", "datetime", "crs", "cursor"}

// parseOGCQuery reads an items request's parameters; queryables are the
// property names the collection filters on. Unknown parameters are
// refused, as OGC API Features asks.
func parseOGCQuery(q url.Values, queryables []string) (ogcQuery, error) {
	out := ogcQuery{props: map[string]string{}, values: q}
	for name, vals := range q {
		if !contains(ogcCommonParams, name) && !contains(queryables, name) {
			return out, gridwatch.Errorf(gridwatch.EInvalid, "unknown query parameter %q; this collection takes %s", name,
				strings.Join(append(append([]string{}, ogcCommonParams...), queryables...), ", ")).
				WithDetails(map[string]any{"param": name})
		}
		if len(vals) > 1 {
			return out, httpapi.ParamError(name, strings.Join(vals, ","), "given more than once")
		}
	}
	if err := checkFormat(q.Get("f")); err != nil {
		return out, err
	}
	var err error
	if out.limit, err = parseOGCLimit(q.Get("limit")); err != nil {
		return out, err
	}
	if out.crs, err = parseOGCCRS("crs", q.Get("crs")); err != nil {
		return out, err
	}
	bboxCRS, err := parseOGCCRS("bbox-crs", q.Get("bbox-crs"))
	if err != nil {
		return out, err
	}
	if b := q.Get("bbox"); b != "" {
		bb, err := parseOGCBBox(b, bboxCRS)
		if err != nil {
			return out, err
		}
		out.bbox = &bb
	} else if q.Has("bbox") {
		return out, httpapi.ParamError("bbox", "", "want 4 comma-separated numbers")
	}
	if d := q.Get("datetime"); d != "" {
		if out.from, out.until, err = parseOGCDatetime(d); err != nil {
			return out, err
		}
	}
	if cur := q.Get("cursor"); cur != "" {
		if out.cursor, err = strconv.ParseInt(cur, 10, 64); err != nil || out.cursor <= 0 {
			return out, httpapi.ParamError("cursor", cur, "not a cursor from a next link")
		}
	}
	for _, name := range queryables {
		if v := q.Get(name); v != "" {
			out.props[name] = v
		}
	}
	return out, nil
}

// checkFormat accepts the f parameter's JSON values: every resource here
// is JSON (GeoJSON for features).
func checkFormat(f string) error {
	switch f {
	case "", "json", "geojson", "application/json", "application/geo+json":
		return nil
	}
	return httpapi.ParamError("f", f, "only json is offered")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
