package api

import (
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/auth"
)

// basicChallengeValue is the WWW-Authenticate of a 401 on a basic route.
// QGIS 3.22 crashes on a 401 without one; charset (RFC 7617) says names
// and passwords are sent as UTF-8.
const basicChallengeValue = `Basic realm="gridwatch", charset="UTF-8"`

// errBasicElsewhere refuses Basic on routes that are not for GIS clients.
var errBasicElsewhere = gridwatch.Errorf(gridwatch.EUnauthenticated,
	"HTTP Basic authentication is accepted only on /ogc and /tiles; send \"Bearer <token>\" or sign in").
	WithDetails(map[string]any{"scheme": "Basic"})

// isBasicHeader reports whether an Authorization value uses the Basic scheme.
func isBasicHeader(h string) bool {
	scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
	return strings.EqualFold(scheme, "Basic")
}

// authenticateBasic finds the principal of a Basic Authorization header: a
// user's name and password, or any name and an API token.
func (s *Server) authenticateBasic(c *gin.Context) (*auth.Principal, error) {
	user, pass, ok := c.Request.BasicAuth()
	if !ok {
		return nil, gridwatch.Errorf(gridwatch.EUnauthenticated, "the Basic credentials must be base64 of \"name:password\"")
	}
	// Failures are audited with the request, as a sign-in's are.
	ctx := audit.WithActor(c.Request.Context(), audit.Actor{RequestID: c.GetString("request_id"), IP: c.ClientIP()})
	return s.deps.Auth.AuthenticateBasic(ctx, user, pass, c.ClientIP())
}

// basicChallenge prepares the answer to a refused request on a basic route:
// a 401 asks for Basic credentials and a throttled one says when to retry.
// The dashboard's own fetches (Sec-Fetch-Mode other than navigate) get no
// challenge: a browser would answer it with its password dialog over the
// map instead of letting the page show its sign-in.
func basicChallenge(c *gin.Context, err error) {
	switch gridwatch.ErrorCode(err) {
	case gridwatch.EUnauthenticated, gridwatch.ECredentials:
		if mode := c.GetHeader("Sec-Fetch-Mode"); mode == "" || mode == "navigate" {
			c.Header("WWW-Authenticate", basicChallengeValue)
		}
	case gridwatch.EThrottled:
		if secs, ok := gridwatch.ErrorDetails(err)["retry_after_seconds"].(int); ok {
			c.Header("Retry-After", strconv.Itoa(secs))
		}
	}
}
