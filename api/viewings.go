package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/audit"
)

// listViewings is GET /api/v1/audit/viewings: who watched which camera,
// live or recorded, how, from where and when, newest first. camera is a
// camera's id or code, actor a user's or token's name, kind live or
// playback; from/to select the sessions open at some time between them.
func (s *Server) listViewings(c *gin.Context) error {
	f := audit.ViewingFilter{Camera: c.Query("camera"), Actor: c.Query("actor"), Kind: c.Query("kind")}
	if f.Kind != "" && f.Kind != audit.Live && f.Kind != audit.Playback {
		return httpapi.ParamError("kind", f.Kind, "want live or playback")
	}
	if err := httpapi.Span(c, &f.From, &f.To); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return httpapi.ParamError("to", c.Query("to"), "must be after from")
	}
	var err error
	if f.Limit, f.Before, err = httpapi.PageParams(c); err != nil {
		return err
	}
	vs, next, err := s.deps.Audit.Viewings(c.Request.Context(), f)
	return httpapi.JSON(c, http.StatusOK, httpapi.Page("viewings", vs, next), err)
}
