package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/auth"
	"gridwatch/geo"
)

// A boundary change (api's PUT geometry, edge, split, merge; OGC API
// Features' PUT, PATCH, DELETE of a grid) is read and answered alike: its
// options from If-Match and dry_run in the caller's scope, its report
// redacted to what the caller may read.

// ChangeOptions reads If-Match and dry_run, and checks that the caller's
// scope holds grid id.
func ChangeOptions(c *gin.Context, grids *geo.Store, id int64) (geo.ChangeOptions, error) {
	var opts geo.ChangeOptions
	if _, err := ScopedChain(c.Request.Context(), grids, Principal(c), id); err != nil {
		return opts, err
	}
	dry, err := BoolParam(c, "dry_run")
	if err != nil {
		return opts, err
	}
	opts.DryRun = dry
	if h := c.GetHeader("If-Match"); h != "" {
		if opts.IfMatch = geo.ParseETag(id, h); opts.IfMatch == 0 {
			return opts, gridwatch.Errorf(gridwatch.EStale, "If-Match %s is not an ETag of grid %d: reload the grid and use its ETag", h, id)
		}
	}
	if opts.IfMatch == 0 && dry {
		opts.IfMatch = -1 // a preview needs no version: it changes nothing
	}
	return opts, nil
}

// ChangeResult answers a change: the report, and the grid's new ETag.
func ChangeResult(c *gin.Context, id int64, rep *geo.ChangeReport, err error) error {
	if err != nil {
		if r, ok := gridwatch.ErrorDetails(err)["report"].(*geo.ChangeReport); ok {
			RedactReport(Principal(c), r)
		}
		return err
	}
	for _, g := range rep.Grids {
		if g.ID == id && rep.Committed && g.VersionAfter > 0 {
			c.Header("ETag", geo.ETag(id, g.VersionAfter))
		}
	}
	RedactReport(Principal(c), rep)
	c.JSON(http.StatusOK, rep)
	return nil
}

// RedactReport keeps the counts of what a change moves but lists only what
// the caller may read: a GIS editor sees how many cases move, not their
// titles.
func RedactReport(p *auth.Principal, rep *geo.ChangeReport) {
	if !p.Can(auth.CamerasRead) {
		rep.Cameras.Items = []geo.Move{}
	}
	if !p.Can(auth.IncidentsRead) {
		rep.Incidents.Items, rep.Flagged.Items = []geo.Move{}, []geo.Move{}
	}
}
