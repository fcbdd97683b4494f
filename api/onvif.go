package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/audit"
	"gridwatch/camera"
	"gridwatch/camera/onvifcam"
)

// Cameras over ONVIF: probe a device by its address, list what
// WS-Discovery finds, and steer PTZ domes (cameras.ptz, in scope).

func (s *Server) onvifService() (*onvifcam.Service, error) {
	if s.deps.ONVIF == nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "ONVIF is not running on this server")
	}
	return s.deps.ONVIF, nil
}

// probeONVIF answers what the device at an address is and how it would
// be added: POST {url, username, password}.
func (s *Server) probeONVIF(c *gin.Context) error {
	svc, err := s.onvifService()
	if err != nil {
		return err
	}
	var req struct {
		URL      string `json:"url"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	p, err := svc.Probe(c.Request.Context(), req.URL, camera.ONVIFAccount{Username: req.Username, Password: req.Password})
	return httpapi.JSON(c, http.StatusOK, p, err)
}

// discoverONVIF lists the devices that answer a WS-Discovery probe, those
// not registered first.
func (s *Server) discoverONVIF(c *gin.Context) error {
	svc, err := s.onvifService()
	if err != nil {
		return err
	}
	found, err := svc.Discover(c.Request.Context())
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"devices": found})
	return nil
}

// prepareONVIF probes the device a camera's create or change names; it
// returns the stream URLs the device gives (nil: no ONVIF to probe).
func (s *Server) prepareONVIF(c *gin.Context, id int64, o *camera.ONVIFSpec) (*onvifcam.Resolved, error) {
	if o == nil {
		return nil, nil
	}
	if o.URL == "" {
		// Letting go of ONVIF needs no device; anything else without an
		// address is a mistake, not a removal.
		if o.Username != "" || o.Password != "" || o.MainProfile != "" || o.SubProfile != "" {
			return nil, gridwatch.Errorf(gridwatch.EInvalid, "onvif.url: required (give \"url\": \"\" alone to stop managing the camera over ONVIF)").
				WithDetails(map[string]any{"field": "onvif.url"})
		}
		return nil, nil
	}
	svc, err := s.onvifService()
	if err != nil {
		return nil, err
	}
	return svc.Prepare(c.Request.Context(), id, o)
}

// ptzCamera is camera :id if the caller may see it (its scope), for a PTZ call.
func (s *Server) ptzCamera(c *gin.Context, id int64) (*onvifcam.Service, error) {
	svc, err := s.onvifService()
	if err != nil {
		return nil, err
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return nil, err
	}
	return svc, nil
}

func (s *Server) ptzStatus(c *gin.Context, id int64) error {
	svc, err := s.ptzCamera(c, id)
	if err != nil {
		return err
	}
	st, err := svc.Status(c.Request.Context(), id, audit.ActorFrom(c.Request.Context()))
	return httpapi.JSON(c, http.StatusOK, st, err)
}

func (s *Server) ptzCommand(c *gin.Context, id int64) error {
	svc, err := s.ptzCamera(c, id)
	if err != nil {
		return err
	}
	var cmd onvifcam.Command
	if err := httpapi.BindJSON(c, &cmd); err != nil {
		return err
	}
	res, err := svc.Do(c.Request.Context(), id, cmd)
	return httpapi.JSON(c, http.StatusOK, res, err)
}
