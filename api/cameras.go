package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/geo"
)

func cameraViewer(p *auth.Principal) camera.Viewer { return camera.Viewer{Grids: p.ScopeIDs()} }

func (s *Server) listCameras(c *gin.Context) {
	var f camera.Filter
	var err error
	if g := c.Query("grid"); g != "" {
		if f.GridID, err = strconv.ParseInt(g, 10, 64); err != nil || f.GridID <= 0 {
			writeError(c, s.log, paramError("grid", g, "want a grid id"))
			return
		}
	}
	s.cameraList(c, f)
}

func (s *Server) gridCameras(c *gin.Context) {
	id, err := idParam(c)
	if err == nil {
		err = s.gridInScope(c, id)
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	s.cameraList(c, camera.Filter{GridID: id})
}

func (s *Server) cameraList(c *gin.Context, f camera.Filter) {
	var err error
	if b := c.Query("bbox"); b != "" {
		bb, err := geo.ParseBBox(b)
		if err != nil {
			writeError(c, s.log, err)
			return
		}
		f.BBox = &bb
	}
	if st := c.Query("status"); st != "" {
		if st != "online" && st != "connecting" && st != "offline" {
			writeError(c, s.log, paramError("status", st, "want online, connecting or offline"))
			return
		}
		f.Status = st
	}
	if f.Limit, f.After, err = pageParams(c); err != nil {
		writeError(c, s.log, err)
		return
	}
	list, next, err := s.deps.Cameras.List(c.Request.Context(), f, cameraViewer(principal(c)))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, page("cameras", list, next))
}

func (s *Server) createCamera(c *gin.Context) {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	var sp camera.Spec
	if err := bindJSON(c, &sp); err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := sp.Check(crs); err != nil {
		writeError(c, s.log, err)
		return
	}
	cam, err := s.deps.Cameras.Create(c.Request.Context(), sp)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Header("Location", "/api/v1/cameras/"+strconv.FormatInt(cam.ID, 10))
	c.JSON(http.StatusCreated, cam)
}

func (s *Server) getCamera(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	cam, err := s.deps.Cameras.Get(c.Request.Context(), id, cameraViewer(principal(c)))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	s.streamStates(cam)
	c.JSON(http.StatusOK, cam)
}

func (s *Server) updateCamera(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	var p camera.Patch
	if err := bindJSON(c, &p); err != nil {
		writeError(c, s.log, err)
		return
	}
	cam, err := s.deps.Cameras.Update(c.Request.Context(), id, p, crs)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, cam)
}

func (s *Server) deleteCamera(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := s.deps.Cameras.Delete(c.Request.Context(), id); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}
