package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/camera/whep"
)

const csrfHeader = "X-CSRF-Token"

// authorize is the one authorisation layer: it finds who the request is
// (bearer token or session cookie), checks CSRF for cookie-authenticated
// changes, and checks the route's permission. On basic routes (GIS clients: /ogc, /tiles) it also takes HTTP Basic, and
// a change so authenticated gets the cross-site check cookies get, since
// browsers replay Basic credentials on their own as they do cookies.
func (s *Server) authorize(perm auth.Permission, apiKey, basic bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if perm == auth.Public {
			c.Next()
			return
		}
		if perm == auth.ClusterPeer {
			s.authorizePeer(c)
			return
		}
		var (
			p   *auth.Principal
			err error
		)
		viaBasic := basic && isBasicHeader(c.GetHeader("Authorization"))
		if viaBasic {
			p, err = s.authenticateBasic(c)
		} else {
			p, err = s.authenticate(c, apiKey)
		}
		if err != nil {
			if basic {
				basicChallenge(c, err)
			}
			httpapi.WriteError(c, s.log, err)
			return
		}
		if (p.SessionID != 0 || viaBasic) && !safeMethod(c.Request.Method) {
			if err := checkSameOrigin(c.Request); err != nil {
				httpapi.WriteError(c, s.log, err)
				return
			}
		}
		if p.SessionID != 0 && !safeMethod(c.Request.Method) {
			if !auth.CheckCSRF(p, c.GetHeader(csrfHeader)) {
				httpapi.WriteError(c, s.log, gridwatch.Errorf(gridwatch.ECSRF, "missing or wrong %s header: send the csrf_token from sign-in or /api/v1/me", csrfHeader))
				return
			}
		}
		if !p.Can(perm) {
			httpapi.WriteError(c, s.log, gridwatch.Errorf(gridwatch.EForbidden, "your role (%s) may not do this (needs %s)", p.Role, perm).
				WithDetails(map[string]any{"role": p.Role, "permission": perm}))
			return
		}
		httpapi.SetPrincipal(c, p)
		ctx := audit.WithActor(c.Request.Context(), audit.Actor{
			Kind: p.Kind, ID: p.ID, Name: p.Username, RequestID: c.GetString("request_id"), IP: c.ClientIP(),
		})
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// authorizePeer admits another node of the cluster: its bearer token must
// be the cluster's peer token. Users' tokens and sessions are refused.
func (s *Server) authorizePeer(c *gin.Context) {
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	switch {
	case ok && s.deps.IsPeer != nil && s.deps.IsPeer(tok):
		c.Next()
	case !ok || tok == "":
		httpapi.WriteError(c, s.log, gridwatch.Errorf(gridwatch.EUnauthenticated, "for the cluster's nodes: the peer token is required"))
	default:
		httpapi.WriteError(c, s.log, gridwatch.Errorf(gridwatch.EForbidden, "for the cluster's nodes only").
			WithDetails(map[string]any{"permission": auth.ClusterPeer}))
	}
}

// authenticate finds the principal: a bearer token, the api_key parameter
// where the route allows it, or the session cookie.
func (s *Server) authenticate(c *gin.Context, apiKey bool) (*auth.Principal, error) {
	if s.deps.Auth == nil {
		return nil, errors.New("no auth service configured")
	}
	if h := c.GetHeader("Authorization"); h != "" {
		tok, err := auth.ParseBearer(h)
		if err != nil && isBasicHeader(h) {
			return nil, errBasicElsewhere
		}
		if err != nil {
			return nil, gridwatch.Errorf(gridwatch.EUnauthenticated, "the Authorization header must be \"Bearer <token>\"")
		}
		return s.deps.Auth.AuthenticateToken(c.Request.Context(), tok)
	}
	if apiKey {
		if key := c.Query("api_key"); key != "" {
			return s.deps.Auth.AuthenticateToken(c.Request.Context(), key)
		}
		if key := c.PostForm("api_key"); key != "" {
			return s.deps.Auth.AuthenticateToken(c.Request.Context(), key)
		}
		// Media players and other video systems cannot send headers.
		if key := c.Query("token"); key != "" {
			return s.deps.Auth.AuthenticateToken(c.Request.Context(), key)
		}
	}
	cookie, err := c.Cookie(httpapi.SessionCookie)
	if err != nil || cookie == "" {
		return nil, gridwatch.Errorf(gridwatch.EUnauthenticated, "sign in first: no session or token")
	}
	return s.deps.Auth.AuthenticateSession(c.Request.Context(), cookie)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkSameOrigin refuses a browser request another site sent: a cookie
// alone must never carry a change across sites.
func checkSameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" {
		return gridwatch.Errorf(gridwatch.ECSRF, "cross-site request refused")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host {
		return gridwatch.Errorf(gridwatch.ECSRF, "request from origin %q refused", origin)
	}
	return nil
}

func (s *Server) login(c *gin.Context) error {
	if err := checkSameOrigin(c.Request); err != nil {
		return err
	}
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
		// Device names the phone of a field app sign-in: a device session.
		Device string `json:"device"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	ctx := audit.WithActor(c.Request.Context(), audit.Actor{RequestID: c.GetString("request_id"), IP: c.ClientIP()})
	p, secret, err := s.deps.Auth.Login(ctx, req.Username, req.Password, req.Device, c.ClientIP(), c.Request.UserAgent())
	if err != nil {
		retryAfter(c, err)
		return err
	}
	s.setSessionCookie(c, secret, s.deps.Auth.CookieMaxAge(p))
	c.JSON(http.StatusOK, p)
	return nil
}

// listSessions is GET /api/v1/users/:id/sessions: the user's open sessions,
// with the device of each field app sign-in.
func (s *Server) listSessions(c *gin.Context, id int64) error {
	list, err := s.deps.Auth.Sessions(c.Request.Context(), id)
	return httpapi.JSON(c, http.StatusOK, gin.H{"sessions": list}, err)
}

// revokeSession is DELETE /api/v1/sessions/:id: signs a session out (a lost
// phone); its next request is told to sign in again.
func (s *Server) revokeSession(c *gin.Context, id int64) error {
	if err := s.deps.Auth.RevokeSession(c.Request.Context(), id); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// retryAfter sets Retry-After on the answer to a throttled attempt.
func retryAfter(c *gin.Context, err error) {
	if secs, ok := gridwatch.ErrorDetails(err)["retry_after_seconds"].(int); ok {
		c.Header("Retry-After", strconv.Itoa(secs))
	}
}

func (s *Server) setSessionCookie(c *gin.Context, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: httpapi.SessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.deps.TLS || c.Request.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) logout(c *gin.Context) error {
	if err := s.deps.Auth.Logout(c.Request.Context(), httpapi.Principal(c)); err != nil {
		return err
	}
	s.setSessionCookie(c, "", -1)
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Server) me(c *gin.Context) error {
	p := httpapi.Principal(c)
	if s.deps.WHEP == nil || !p.Can(auth.VideoLive) {
		c.JSON(http.StatusOK, p)
		return nil
	}
	// Who may watch video gets the STUN/TURN servers for WebRTC (none on
	// a LAN); they are not on the public /meta, as TURN has a credential.
	c.JSON(http.StatusOK, struct {
		*auth.Principal
		ICEServers []whep.ICEServer `json:"ice_servers"`
	}{p, s.deps.WHEP.ICEServers()})
	return nil
}

func (s *Server) changePassword(c *gin.Context) error {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if err := s.deps.Auth.ChangePassword(c.Request.Context(), httpapi.Principal(c), req.Current, req.New, c.ClientIP()); err != nil {
		retryAfter(c, err)
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

func (s *Server) listUsers(c *gin.Context) error {
	users, err := s.deps.Auth.ListUsers(c.Request.Context())
	return httpapi.JSON(c, http.StatusOK, gin.H{"users": users}, err)
}

func (s *Server) createUser(c *gin.Context, nu *auth.NewUser) error {
	u, err := s.deps.Auth.CreateUser(c.Request.Context(), *nu)
	if err != nil {
		return err
	}
	c.Header("Location", fmt.Sprintf("/api/v1/users/%d", u.ID))
	c.JSON(http.StatusCreated, gin.H{"user": u})
	return nil
}

func (s *Server) getUser(c *gin.Context, id int64) error {
	u, err := s.deps.Auth.GetUser(c.Request.Context(), id)
	return httpapi.JSON(c, http.StatusOK, gin.H{"user": u}, err)
}

func (s *Server) updateUser(c *gin.Context, id int64, up *auth.UserPatch) error {
	u, err := s.deps.Auth.UpdateUser(c.Request.Context(), id, *up)
	return httpapi.JSON(c, http.StatusOK, gin.H{"user": u}, err)
}

func (s *Server) listTokens(c *gin.Context) error {
	toks, err := s.deps.Auth.ListTokens(c.Request.Context())
	return httpapi.JSON(c, http.StatusOK, gin.H{"tokens": toks}, err)
}

func (s *Server) createToken(c *gin.Context, nt *auth.NewToken) error {
	tok, secret, err := s.deps.Auth.CreateToken(c.Request.Context(), *nt)
	if err == nil {
		c.Header("Cache-Control", "no-store")
	}
	return httpapi.JSON(c, http.StatusCreated, gin.H{"token": tok, "secret": secret}, err)
}

func (s *Server) revokeToken(c *gin.Context, id int64) error {
	return httpapi.NoContent(c, s.deps.Auth.RevokeToken(c.Request.Context(), id))
}

func (s *Server) listAudit(c *gin.Context) error {
	f := audit.Filter{Actor: c.Query("actor"), Action: c.Query("action"), TargetType: c.Query("target_type"), TargetID: c.Query("target_id")}
	var err error
	if err := httpapi.Span(c, &f.From, &f.To); err != nil {
		return err
	}
	if f.Limit, f.Before, err = httpapi.PageParams(c); err != nil {
		return err
	}
	entries, next, err := s.deps.Audit.List(c.Request.Context(), f)
	return httpapi.JSON(c, http.StatusOK, httpapi.Page("entries", entries, next), err)
}
