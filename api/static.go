package api

import (
	"net/http"
	"strings"

	"gridwatch/api/httpapi"

	"github.com/gin-gonic/gin"
)

const notBuiltPage = `<!doctype html><meta charset="utf-8"><title>Gridwatch</title>
<h1>Gridwatch</h1><p>The dashboard assets are not built into this binary. Run <code>make build</code>
(it runs <code>npm ci</code> and esbuild in <code>assets/</code>) and start it again. The API is up: try
<a href="/api/v1/grids">/api/v1/grids</a>.</p>`

// noRoute serves the dashboard for GET requests outside /api, and JSON 404s
// for everything else.
func (s *Server) noRoute(c *gin.Context) error {
	p := c.Request.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ogc/") || strings.HasPrefix(p, "/tiles/") || (c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) {
		return httpapi.Errorf(http.StatusNotFound, "not_found", "no route for %s %s", c.Request.Method, p)
	}
	if !s.deps.AssetsBuilt {
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(notBuiltPage))
		return nil
	}
	if p == "/" || p == "/index.html" {
		c.Header("Cache-Control", "no-cache")
	} else {
		c.Header("Cache-Control", "public, max-age=300")
	}
	if strings.HasSuffix(p, ".mjs") {
		c.Header("Content-Type", "text/javascript; charset=utf-8")
	}
	http.FileServerFS(s.deps.Assets).ServeHTTP(c.Writer, c.Request)
	return nil
}
