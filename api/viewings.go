package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch/audit"
)

// listViewings is GET /api/v1/audit/viewings: who watched which camera,
// live or recorded, how, from where and when, newest first. camera is a
// camera's id or code, actor a user's or token's name, kind live or
// playback; from/to select the sessions open at some time between them.
func (s *Server) listViewings(c *gin.Context) {
	f := audit.ViewingFilter{Camera: c.Query("camera"), Actor: c.Query("actor"), Kind: c.Query("kind")}
	if f.Kind != "" && f.Kind != audit.Live && f.Kind != audit.Playback {
		writeError(c, s.log, paramError("kind", f.Kind, "want live or playback"))
		return
	}
	for _, tp := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.Query(tp.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(c, s.log, paramError(tp.name, v, "want an RFC 3339 time such as 2026-11-26T08:00:00+08:00"))
				return
			}
			*tp.dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		writeError(c, s.log, paramError("to", c.Query("to"), "must be after from"))
		return
	}
	var err error
	if f.Limit, f.Before, err = pageParams(c); err != nil {
		writeError(c, s.log, err)
		return
	}
	vs, next, err := s.deps.Audit.Viewings(c.Request.Context(), f)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, page("viewings", vs, next))
}
