package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

func (s *Server) notYet(c *gin.Context) {
	writeError(c, s.log, errorf(http.StatusNotImplemented, "not_implemented", "not implemented yet"))
}

func (s *Server) open311Services(c *gin.Context)      { s.notYet(c) }
func (s *Server) open311Service(c *gin.Context)       { s.notYet(c) }
func (s *Server) open311CreateRequest(c *gin.Context) { s.notYet(c) }
func (s *Server) open311Requests(c *gin.Context)      { s.notYet(c) }
func (s *Server) open311Request(c *gin.Context)       { s.notYet(c) }
func (s *Server) incidentStats(c *gin.Context)        { s.notYet(c) }
