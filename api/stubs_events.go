package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// streamEvents is replaced by the SSE implementation.
func (s *Server) streamEvents(c *gin.Context) {
	writeError(c, s.log, errorf(http.StatusNotImplemented, "not_implemented", "live events are not implemented yet"))
}
