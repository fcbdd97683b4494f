package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/camera"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/geo"
)

// GB/T 28181 devices: the devices registered (or provisioned) with the
// platform, their channels, a device's own password and datum, a catalog
// read again on demand, and the recordings a device holds for a camera.

func (s *Server) gb() (*gb28181.Store, error) {
	if s.deps.GBStore == nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "GB/T 28181 is not running on this server (start it with --gb28181-addr)")
	}
	return s.deps.GBStore, nil
}

// gbDeviceID is the :id of a device route, checked.
func gbDeviceID(c *gin.Context) (string, error) {
	id := c.Param("id")
	if !manscdp.ValidID(id) {
		return "", httpapi.ParamError("id", id, "not a 20-digit GB/T 28181 ID")
	}
	return id, nil
}

func (s *Server) listGBDevices(c *gin.Context) error {
	st, err := s.gb()
	if err != nil {
		return err
	}
	ds, err := st.Devices(c.Request.Context())
	return httpapi.JSON(c, http.StatusOK, gin.H{"devices": ds}, err)
}

func (s *Server) getGBDevice(c *gin.Context) error {
	st, err := s.gb()
	if err != nil {
		return err
	}
	id, err := gbDeviceID(c)
	if err != nil {
		return err
	}
	d, err := st.Device(c.Request.Context(), id)
	if err != nil {
		return err
	}
	chs, err := st.Channels(c.Request.Context(), id)
	return httpapi.JSON(c, http.StatusOK, gin.H{"device": d, "channels": chs}, err)
}

func (s *Server) putGBDevice(c *gin.Context) error {
	st, err := s.gb()
	if err != nil {
		return err
	}
	id, err := gbDeviceID(c)
	if err != nil {
		return err
	}
	var sp gb28181.DeviceSpec
	if err := httpapi.BindJSON(c, &sp); err != nil {
		return err
	}
	d, err := st.Configure(c.Request.Context(), id, sp)
	return httpapi.JSON(c, http.StatusOK, d, err)
}

// syncGBCatalog reads a device's catalog again now.
func (s *Server) syncGBCatalog(c *gin.Context) error {
	if _, err := s.gb(); err != nil {
		return err
	}
	id, err := gbDeviceID(c)
	if err != nil {
		return err
	}
	if s.deps.GB == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "GB/T 28181 signalling is not running on this server")
	}
	res, err := s.deps.GB.SyncCatalog(c.Request.Context(), id)
	if err != nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "%s", err.Error())
	}
	return httpapi.JSON(c, http.StatusOK, res, nil)
}

// gbDeviceStatus asks a device for its status now.
func (s *Server) gbDeviceStatus(c *gin.Context) error {
	if _, err := s.gb(); err != nil {
		return err
	}
	id, err := gbDeviceID(c)
	if err != nil {
		return err
	}
	if s.deps.GB == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "GB/T 28181 signalling is not running on this server")
	}
	m, err := s.deps.GB.Status(c.Request.Context(), id)
	if err != nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "%s", err.Error())
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"online": m.Online, "status": m.Status, "encode": m.Encode, "record": m.Record,
		"device_time": m.DeviceTime, "result": m.Result}, nil)
}

// placeGBChannel puts a channel that reported no position on the map.
func (s *Server) placeGBChannel(c *gin.Context) error {
	st, err := s.gb()
	if err != nil {
		return err
	}
	id, err := gbDeviceID(c)
	if err != nil {
		return err
	}
	var body struct {
		Location *camera.Point `json:"location"`
		CRS      string        `json:"crs"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		return err
	}
	if body.Location == nil || body.Location.Type != "Point" {
		return gridwatch.Errorf(gridwatch.EInvalid, `location: is required: {"type":"Point","coordinates":[lon,lat]}`).WithDetails(map[string]any{"field": "location"})
	}
	crs := geo.CRSWGS84
	if body.CRS != "" {
		if crs, err = geo.ParseCRS(body.CRS); err != nil {
			return err
		}
	}
	cam, err := st.Place(c.Request.Context(), id, body.Location.Coordinates[0], body.Location.Coordinates[1], crs)
	if err != nil {
		return err
	}
	got, err := s.deps.Cameras.Get(c.Request.Context(), cam, camera.Viewer{})
	return httpapi.JSON(c, http.StatusCreated, got, err)
}

// deviceRecordings lists the recordings a camera's GB/T 28181 device holds
// in a time range (RecordInfo), beside gridwatch's own.
func (s *Server) deviceRecordings(c *gin.Context) error {
	st, err := s.gb()
	if err != nil {
		return err
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return err
	}
	var from, to time.Time
	if err := httpapi.Span(c, &from, &to); err != nil {
		return err
	}
	if from.IsZero() || to.IsZero() || !to.After(from) {
		return httpapi.ParamError("to", c.Query("to"), "from and to are required, from before to")
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return err
	}
	dev, ch, err := st.CameraChannel(c.Request.Context(), id)
	if err != nil {
		return err
	}
	if s.deps.GB == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "GB/T 28181 signalling is not running on this server")
	}
	recs, err := s.deps.GB.Records(c.Request.Context(), dev, ch, from, to)
	if err != nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "%s", err.Error())
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"camera_id": id, "device": dev, "channel": ch, "recordings": recs}, nil)
}
