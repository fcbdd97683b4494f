package api

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/incident"
)

const mimeCSV = "text/csv"

// incidentStats answers the monthly report (月通报): GET
// /api/v1/stats/incidents?from&to&group=grid|category|month[&tz][&format].
// from and to are RFC 3339 (default: the 30 days up to now); tz is the zone
// months are cut in (default Asia/Shanghai). JSON, or CSV for Accept:
// text/csv or format=csv (a download link cannot set headers).
func (s *Server) incidentStats(c *gin.Context) error {
	q := incident.StatsQuery{Group: incident.StatsGroup(c.Query("group")), Zone: c.Query("tz")}
	if q.Group != "" && !q.Group.Valid() {
		return httpapi.ParamError("group", string(q.Group), "want grid, category or month")
	}
	for _, tp := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := c.Query(tp.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return httpapi.ParamError(tp.name, v, "want an RFC 3339 time such as 2026-11-01T00:00:00+08:00")
			}
			if t.Year() < 1970 || t.Year() > 9000 {
				return httpapi.ParamError(tp.name, v, "want a year from 1970 to 9000")
			}
			*tp.dst = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return httpapi.ParamError("from", c.Query("from"), "must be before to ("+c.Query("to")+")")
	}
	asCSV := false
	switch f := c.Query("format"); f {
	case "":
		asCSV = c.NegotiateFormat(gin.MIMEJSON, mimeCSV) == mimeCSV
	case "json":
	case "csv":
		asCSV = true
	default:
		return httpapi.ParamError("format", f, "want json or csv")
	}
	st, err := s.deps.Incidents.Stats(c.Request.Context(), q, httpapi.IncidentViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	if !asCSV {
		c.JSON(http.StatusOK, st)
		return nil
	}
	name := fmt.Sprintf("incident-stats-%s-%s-%s.csv", st.Group, st.From.Format("20060102"), st.To.Format("20060102"))
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Data(http.StatusOK, mimeCSV+"; charset=utf-8", statsCSV(st))
	return nil
}

// statsCSV writes the report as CSV: a header row in Chinese and English,
// a row per group, the totals last. It starts with a UTF-8 byte order mark
// so that spreadsheet programs read the Chinese right.
func statsCSV(st *incident.Stats) []byte {
	var b bytes.Buffer
	b.WriteString("\ufeff")
	w := csv.NewWriter(&b)
	header := []string{"分组 key", "名称 name"}
	if st.Group == incident.ByCategory {
		header = append(header, "大类 class_code", "大类名称 class_name")
	}
	header = append(header, "上报数 reported", "立案数 registered", "结案数 closed", "结案率 close_rate",
		"按期结案数 closed_on_time", "按期结案率 on_time_rate", "处置时长中位数(小时) median_handling_hours",
		"未结案 open", "超期 overdue")
	_ = w.Write(header)
	for _, r := range append(slices.Clip(st.Rows), st.Totals) {
		rec := []string{csvText(r.Key), csvText(r.Name)}
		if st.Group == incident.ByCategory {
			rec = append(rec, csvText(r.ClassCode), csvText(r.ClassName))
		}
		rec = append(rec, statsInt(r.Reported), statsInt(r.Registered), statsInt(r.Closed), statsFloat(r.CloseRate),
			statsInt(r.ClosedOnTime), statsFloat(r.OnTimeRate), statsFloat(r.MedianHours), statsInt(r.Open), statsInt(r.Overdue))
		_ = w.Write(rec)
	}
	w.Flush()
	return b.Bytes()
}

// csvText is a text cell a spreadsheet will not run as a formula: one
// that starts with =, +, -, @, a tab or a carriage return (a grid named
// "=HYPERLINK(…)") gets a leading apostrophe.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func statsInt(n int64) string { return strconv.FormatInt(n, 10) }

// statsFloat writes a figure, or nothing when there is none (a rate of no cases).
func statsFloat(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}
