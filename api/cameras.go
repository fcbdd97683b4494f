package api

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/camera"
	"gridwatch/geo"
)

func (s *Server) listCameras(c *gin.Context) error {
	var f camera.Filter
	var err error
	if f.GridID, err = httpapi.IDQuery(c, "grid", "a grid"); err != nil {
		return err
	}
	return s.cameraList(c, f)
}

func (s *Server) gridCameras(c *gin.Context, id int64) error {
	return s.cameraList(c, camera.Filter{GridID: id})
}

func (s *Server) cameraList(c *gin.Context, f camera.Filter) error {
	var err error
	if b := c.Query("bbox"); b != "" {
		bb, err := geo.ParseBBox(b)
		if err != nil {
			return err
		}
		f.BBox = &bb
	}
	if st := c.Query("status"); st != "" {
		if st != "online" && st != "connecting" && st != "offline" {
			return httpapi.ParamError("status", st, "want online, connecting or offline")
		}
		f.Status = st
	}
	if f.Limit, f.After, err = httpapi.PageParams(c); err != nil {
		return err
	}
	list, next, err := s.deps.Cameras.List(c.Request.Context(), f, httpapi.CameraViewer(httpapi.Principal(c)))
	return httpapi.JSON(c, http.StatusOK, httpapi.Page("cameras", list, next), err)
}

// bindInCRS reads ?crs= and then the JSON body into v, whose coordinates
// are in that CRS.
func bindInCRS(c *gin.Context, v any) (geo.CRS, error) {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		return crs, err
	}
	return crs, httpapi.BindJSON(c, v)
}

func (s *Server) createCamera(c *gin.Context) error {
	var sp camera.Spec
	crs, err := bindInCRS(c, &sp)
	if err != nil {
		return err
	}
	// A camera added by its ONVIF address takes its streams from the device
	// unless given.
	r, err := s.prepareONVIF(c, 0, sp.ONVIF)
	if err != nil {
		return err
	}
	if r != nil && sp.MainURL == "" {
		sp.MainURL, sp.SubURL = r.MainURL, r.SubURL
	}
	if err := sp.Check(crs); err != nil {
		return err
	}
	cam, err := s.deps.Cameras.Create(c.Request.Context(), sp)
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/cameras/"+strconv.FormatInt(cam.ID, 10))
	c.JSON(http.StatusCreated, cam)
	return nil
}

func (s *Server) getCamera(c *gin.Context, id int64) error {
	cam, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	s.streamStates(cam)
	c.JSON(http.StatusOK, cam)
	return nil
}

func (s *Server) updateCamera(c *gin.Context, id int64) error {
	var p camera.Patch
	crs, err := bindInCRS(c, &p)
	if err != nil {
		return err
	}
	// A new ONVIF address brings its streams unless they are given too.
	r, err := s.prepareONVIF(c, id, p.ONVIF)
	if err != nil {
		return err
	}
	if r != nil && p.MainURL == nil {
		p.MainURL, p.SubURL = &r.MainURL, &r.SubURL
	}
	cam, err := s.deps.Cameras.Update(c.Request.Context(), id, p, crs)
	return httpapi.JSON(c, http.StatusOK, cam, err)
}

func (s *Server) deleteCamera(c *gin.Context, id int64) error {
	return httpapi.NoContent(c, s.deps.Cameras.Delete(c.Request.Context(), id))
}
