package httpapi

import (
	"context"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
)

const principalKey = "principal"

// SetPrincipal records who the request is (the authorisation layer does).
func SetPrincipal(c *gin.Context, p *auth.Principal) { c.Set(principalKey, p) }

// Principal returns the request's principal (nil on public routes).
func Principal(c *gin.Context) *auth.Principal {
	p, _ := c.Get(principalKey)
	pr, _ := p.(*auth.Principal)
	return pr
}

// IncidentViewer is what p may see of incidents: its grids, and for an
// integration only the reports its own token filed.
func IncidentViewer(p *auth.Principal) incident.Viewer {
	v := incident.Viewer{Grids: p.ScopeIDs()}
	if p != nil && p.Role == auth.RoleIntegration {
		v.OwnToken = p.ID
		if p.Kind != "token" || p.ID == 0 {
			v.OwnToken = -1 // an integration without a stored token sees nothing
		}
	}
	return v
}

// CameraViewer is what p may see of cameras: those of its grids.
func CameraViewer(p *auth.Principal) camera.Viewer { return camera.Viewer{Grids: p.ScopeIDs()} }

// ScopedChain returns grid id's chain (itself first, up to the district)
// as p may see it; a grid outside p's scope is not found, as if it did not
// exist.
func ScopedChain(ctx context.Context, grids *geo.Store, p *auth.Principal, id int64) ([]geo.Ref, error) {
	chain, err := grids.Chain(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.Scoped() {
		if chain = p.InScope(chain); len(chain) == 0 {
			return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
		}
	}
	return chain, nil
}

// Reporter is who files a report: the caller p (its keys are its own)
// and, for a grid leader unless leaderOutside allows it, the grids the
// report must lie in.
func Reporter(leaderOutside bool, p *auth.Principal) incident.Reporter {
	r := incident.Reporter{Name: p.Username}
	if p.Kind == "token" {
		r.TokenID = p.ID
	} else {
		r.UserID = p.ID
	}
	if p.Role == auth.RoleGridLeader && !leaderOutside {
		r.Confine = p.Grids
		if r.Confine == nil {
			r.Confine = []geo.Ref{} // a leader without grids reports nowhere
		}
	}
	return r
}

// ForCaller trims what an integration (a hotline, a citizen app) sees of a
// case to its status: not who handles it, nor the internal history.
func ForCaller(p *auth.Principal, in *incident.Incident) *incident.Incident {
	if p == nil || p.Role != auth.RoleIntegration || in == nil {
		return in
	}
	out := *in
	out.Assignee, out.History, out.CreatedBy = nil, nil, ""
	return &out
}

// SessionCookie is the name of the cookie a signed-in browser's session
// travels in.
const SessionCookie = "gw_session"
