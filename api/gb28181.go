package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/audit"
	"gridwatch/camera"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
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

// gbKnownDevice is the :id of a route that asks the device itself: a
// device known to the store (404 otherwise), with the signalling running.
func (s *Server) gbKnownDevice(c *gin.Context) (string, error) {
	st, err := s.gb()
	if err != nil {
		return "", err
	}
	id, err := gbDeviceID(c)
	if err != nil {
		return "", err
	}
	if s.deps.GB == nil {
		return "", gridwatch.Errorf(gridwatch.EUnavailable, "GB/T 28181 signalling is not running on this server")
	}
	if _, err := st.Device(c.Request.Context(), id); err != nil {
		return "", err
	}
	return id, nil
}

// syncGBCatalog reads a device's catalog again now.
func (s *Server) syncGBCatalog(c *gin.Context) error {
	id, err := s.gbKnownDevice(c)
	if err != nil {
		return err
	}
	res, err := s.deps.GB.SyncCatalog(c.Request.Context(), id)
	if err != nil && res.Channels > 0 {
		// Part of it came and was applied: said so beside what it did.
		return httpapi.JSON(c, http.StatusOK, gin.H{"channels": res.Channels, "added": res.Added, "updated": res.Updated,
			"unplaced": res.Unplaced, "gone": res.Gone, "refused": res.Refused, "partial": gridwatch.ErrorMessage(err)}, nil)
	}
	return httpapi.JSON(c, http.StatusOK, res, err)
}

// gbDeviceStatus asks a device for its status now.
func (s *Server) gbDeviceStatus(c *gin.Context) error {
	id, err := s.gbKnownDevice(c)
	if err != nil {
		return err
	}
	m, err := s.deps.GB.Status(c.Request.Context(), id)
	if err != nil {
		return err
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
	if from.IsZero() {
		return httpapi.ParamError("from", c.Query("from"), "required: an RFC 3339 time")
	}
	if to.IsZero() || !to.After(from) {
		return httpapi.ParamError("to", c.Query("to"), "required: an RFC 3339 time after from")
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
		return err
	}
	return httpapi.JSON(c, http.StatusOK, gin.H{"camera_id": id, "device": dev, "channel": ch, "recordings": recs}, nil)
}

// Device playback: a recording the device holds, played through
// gridwatch (MSE, like a live stream) with pause, seek and speed.

func (s *Server) playbacks() (*gb28181.Playbacks, error) {
	if s.deps.GBPlaybacks == nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "GB/T 28181 is not running on this server (start it with --gb28181-addr)")
	}
	return s.deps.GBPlaybacks, nil
}

// startDevicePlayback plays camera :id's recording held on its device.
func (s *Server) startDevicePlayback(c *gin.Context) error {
	pbs, err := s.playbacks()
	if err != nil {
		return err
	}
	st, err := s.gb()
	if err != nil {
		return err
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return err
	}
	var body struct {
		From      time.Time `json:"from"`
		To        time.Time `json:"to"`
		Transport string    `json:"transport"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		return err
	}
	if err := requireSpan(body.From, body.To); err != nil {
		return err
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return err
	}
	dev, ch, err := st.CameraChannel(c.Request.Context(), id)
	if err != nil {
		return err
	}
	pb, err := pbs.Start(c.Request.Context(), id, dev, ch, body.From, body.To, body.Transport)
	if err != nil {
		return err
	}
	state, err := pbs.Get(pb.ID)
	return httpapi.JSON(c, http.StatusCreated, state, err)
}

// devicePlayback is playback :pb if the caller may see its camera.
func (s *Server) devicePlayback(c *gin.Context) (*gb28181.Playbacks, gb28181.PlaybackState, error) {
	pbs, err := s.playbacks()
	if err != nil {
		return nil, gb28181.PlaybackState{}, err
	}
	st, err := pbs.Get(c.Param("pb"))
	if err != nil {
		return nil, st, err
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), st.Camera, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return nil, st, gridwatch.Errorf(gridwatch.ENotFound, "no device playback %s", c.Param("pb"))
	}
	return pbs, st, nil
}

func (s *Server) getDevicePlayback(c *gin.Context) error {
	_, st, err := s.devicePlayback(c)
	return httpapi.JSON(c, http.StatusOK, st, err)
}

func (s *Server) controlDevicePlayback(c *gin.Context) error {
	pbs, st, err := s.devicePlayback(c)
	if err != nil {
		return err
	}
	var cmd gb28181.Command
	if err := httpapi.BindJSON(c, &cmd); err != nil {
		return err
	}
	st, err = pbs.Control(c.Request.Context(), st.ID, cmd)
	return httpapi.JSON(c, http.StatusOK, st, err)
}

func (s *Server) stopDevicePlayback(c *gin.Context) error {
	pbs, st, err := s.devicePlayback(c)
	if err != nil {
		return err
	}
	return httpapi.NoContent(c, pbs.Stop(st.ID))
}

// devicePlaybackMSE streams a device playback as fMP4 over a WebSocket,
// as liveMSE does a live stream.
func (s *Server) devicePlaybackMSE(c *gin.Context) error {
	pbs, st, err := s.devicePlayback(c)
	if err != nil {
		return err
	}
	return s.serveMSE(c, st.Camera, "device", audit.Playback, func(context.Context) (*stream.Hub, func() (pull.State, bool), func(), error) {
		hub, state, release, err := pbs.Acquire(st.ID)
		return hub, func() (pull.State, bool) { return state(), true }, release, err
	})
}

// startDeviceFetch brings what camera :id's device holds of a range, and
// gridwatch does not, into gridwatch's footage.
func (s *Server) startDeviceFetch(c *gin.Context) error {
	if s.deps.GBFetches == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "fetching from GB/T 28181 devices is not running on this server")
	}
	st, err := s.gb()
	if err != nil {
		return err
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return err
	}
	var body struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		return err
	}
	if err := requireSpan(body.From, body.To); err != nil {
		return err
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return err
	}
	dev, ch, err := st.CameraChannel(c.Request.Context(), id)
	if err != nil {
		return err
	}
	f, err := s.deps.GBFetches.Start(c.Request.Context(), id, dev, ch, body.From, body.To)
	return httpapi.JSON(c, http.StatusAccepted, f, err)
}

// getDeviceFetch is camera :id's latest fetch from its device.
func (s *Server) getDeviceFetch(c *gin.Context) error {
	if s.deps.GBFetches == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "fetching from GB/T 28181 devices is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return err
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return err
	}
	f, err := s.deps.GBFetches.Get(id)
	return httpapi.JSON(c, http.StatusOK, f, err)
}

// requireSpan names the time of a range a body lacks.
func requireSpan(from, to time.Time) error {
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"from", from}, {"to", to}} {
		if f.t.IsZero() {
			return gridwatch.Errorf(gridwatch.EInvalid, "%s: is required (an RFC 3339 time)", f.name).WithDetails(map[string]any{"field": f.name})
		}
	}
	return nil
}
