// Package camera owns the cameras: their registry (placement, view cone,
// stream URLs with credentials kept server-side), their assignment to the
// grid covering them and their links to every grid their view cone sees.
// Its sub-packages run the video: pull (camera sources in, supervisor),
// stream (the in-memory hub), live (on-demand streams, MSE and HLS out),
// rtspserve (RTSP out), record (recording and footage) and camsim
// (simulated cameras). The registry imports none of the video packages:
// camera/video joins the two, giving the live streams their sources from
// here and writing their status back.
package camera

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/paulmach/orb"
	orbgeo "github.com/paulmach/orb/geo"

	"gridwatch"
	"gridwatch/camera/streamurl"
	"gridwatch/geo"
)

// Camera is a camera as the API shows it: URLs without credentials.
type Camera struct {
	ID       int64   `json:"id"`
	Code     string  `json:"code"`
	Name     string  `json:"name"`
	Location Point   `json:"location"`
	Heading  float64 `json:"heading"`
	FOV      float64 `json:"fov"`
	Range    float64 `json:"range"`
	Cone     Polygon `json:"view_cone"`
	MainURL  string  `json:"main_url"`
	SubURL   string  `json:"sub_url"`
	HasCreds bool    `json:"has_credentials"`
	Enabled  bool    `json:"enabled"`
	Record   bool    `json:"record"`
	// RetentionDays keeps this camera's footage that many days; nil
	// follows the service's --recording-max-age.
	RetentionDays *int      `json:"retention_days"`
	Grid          *geo.Ref  `json:"grid"`
	Sees          []geo.Ref `json:"sees"`
	Status        string    `json:"status"`
	// StatusReason says why the camera is offline; StatusSince is when
	// the status last changed (nil: never pulled yet).
	StatusReason string     `json:"status_reason,omitempty"`
	StatusSince  *time.Time `json:"status_since"`
	// RecordingError says why a camera that should record does not (a
	// file its recorder could not open or write), since when; empty while
	// it records, and for a camera that does not record.
	RecordingError      string     `json:"recording_error,omitempty"`
	RecordingErrorSince *time.Time `json:"recording_error_since,omitempty"`
	// Streams are the live states of the camera's running streams (main,
	// sub): fps, bitrate, last keyframe, reconnects, uptime. The HTTP
	// layer fills them in from the video (pull.State); the registry does
	// not know them.
	Streams map[string]any `json:"streams,omitempty"`
	// ONVIF is how the camera is managed over ONVIF (nil: it is not).
	ONVIF *ONVIF `json:"onvif"`
	// Node is the id of the node that pulls the camera (its lease's
	// owner), nil while none does.
	Node      *string   `json:"node"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Source is how the video reaches a camera: its stream URLs with their
// credentials, which never leave the server, and whether it runs and
// records. (camera/video hands it to the live streams: this package knows
// nothing of them.)
type Source struct {
	ID      int64
	MainURL string // with credentials; never logged
	SubURL  string // "" when the camera has no sub stream
	Enabled bool
	Record  bool
}

// Stream statuses as the registry keeps them (cameras.status): a stream is
// connecting on its first attempt, online while pictures flow, offline
// after a failure.
const (
	StatusConnecting = "connecting"
	StatusOnline     = "online"
	StatusOffline    = "offline"
)

// StreamStatus is what the registry keeps of a stream's state.
type StreamStatus struct {
	Status string // StatusConnecting, StatusOnline or StatusOffline
	Reason string // why it is offline, without credentials
	Since  time.Time
}

// Point is a GeoJSON Point.
type Point struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"`
}

// Polygon is a GeoJSON Polygon.
type Polygon struct {
	Type        string         `json:"type"`
	Coordinates [][][2]float64 `json:"coordinates"`
}

// Spec is what defines a camera: the fields of a create or a full update.
type Spec struct {
	Code     string   `json:"code"`
	Name     string   `json:"name"`
	Location *Point   `json:"location"`
	Heading  *float64 `json:"heading"`
	FOV      *float64 `json:"fov"`
	Range    *float64 `json:"range"`
	MainURL  string   `json:"main_url"`
	SubURL   string   `json:"sub_url"`
	Record   bool     `json:"record"`
	Enabled  *bool    `json:"enabled"`
	// RetentionDays: 1 to MaxRetentionDays; nil or 0 follows the
	// service's default.
	RetentionDays *int `json:"retention_days"`
	// ONVIF, when given, manages the camera over ONVIF (see ONVIFSpec).
	ONVIF *ONVIFSpec `json:"onvif"`
}

// MaxRetentionDays is the longest a camera's footage may be kept: ten years.
const MaxRetentionDays = 3650

func fieldError(field, format string, args ...any) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "%s: %s", field, fmt.Sprintf(format, args...)).
		WithDetails(map[string]any{"field": field})
}

// Check validates a spec, converting its location from crs to WGS-84.
func (s *Spec) Check(crs geo.CRS) error {
	s.Code = strings.TrimSpace(s.Code)
	s.Name = strings.TrimSpace(s.Name)
	switch {
	case s.Code == "" || len(s.Code) > 64 || strings.Trim(s.Code, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "":
		return fieldError("code", "is required: 1 to 64 letters, digits, '.', '_' or '-'")
	case s.Name == "" || len([]rune(s.Name)) > 200:
		return fieldError("name", "is required (up to 200 characters)")
	case s.Location == nil || s.Location.Type != "Point":
		return fieldError("location", `is required: {"type":"Point","coordinates":[lon,lat]}`)
	}
	lon, lat := s.Location.Coordinates[0], s.Location.Coordinates[1]
	if err := geo.CheckLonLat(lon, lat); err != nil {
		return fieldError("location", "%s", strings.TrimPrefix(gridwatch.ErrorMessage(err), "point "))
	}
	lon, lat = crs.ToWGS84(lon, lat)
	s.Location.Coordinates = [2]float64{lon, lat}
	for _, f := range []struct {
		name   string
		v      *float64
		lo, hi float64
		def    float64
	}{{"heading", s.Heading, 0, 360, 0}, {"fov", s.FOV, 0, 360, 60}, {"range", s.Range, 0, 5000, 100}} {
		if f.v == nil {
			continue
		}
		if math.IsNaN(*f.v) || *f.v < f.lo || *f.v > f.hi || (f.name != "heading" && *f.v == 0) {
			return fieldError(f.name, "%v is out of range (%v to %v)", *f.v, f.lo, f.hi)
		}
	}
	if s.Heading == nil {
		s.Heading = ptr(0.0)
	}
	*s.Heading = math.Mod(*s.Heading, 360)
	if s.FOV == nil {
		s.FOV = ptr(60.0)
	}
	if s.Range == nil {
		s.Range = ptr(100.0)
	}
	if d := s.RetentionDays; d != nil && (*d < 0 || *d > MaxRetentionDays) {
		return fieldError("retention_days", "%d is out of range (1 to %d days; 0 or null follows the service default)", *d, MaxRetentionDays)
	}
	if d := s.RetentionDays; d != nil && *d == 0 {
		s.RetentionDays = nil
	}
	if err := s.ONVIF.check(); err != nil {
		return err
	}
	if err := checkStreamURL("main_url", s.MainURL, true); err != nil {
		return err
	}
	return checkStreamURL("sub_url", s.SubURL, false)
}

func ptr[T any](v T) *T { return &v }

// checkStreamURL accepts rtsp:// and rtsps:// URLs. Its errors never
// repeat the URL: it may hold a password.
func checkStreamURL(field, raw string, required bool) error {
	if raw == "" {
		if required {
			return fieldError(field, "is required: rtsp://[user:password@]host[:port]/path")
		}
		return nil
	}
	if rest, ok := strings.CutPrefix(raw, "gb28181://"); ok {
		// A GB/T 28181 channel: gb28181://DEVICE/CHANNEL, both 20-digit IDs.
		dev, ch, _ := strings.Cut(rest, "/")
		if !gbID(dev) || !gbID(ch) {
			return fieldError(field, "a GB/T 28181 stream is gb28181://DEVICE/CHANNEL with two 20-digit IDs")
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		return fieldError(field, "is not an rtsp:// or rtsps:// URL with a host (value not shown: it may hold credentials)")
	}
	return nil
}

// gbID reports whether s is a 20-digit GB/T 28181 ID.
func gbID(s string) bool {
	return len(s) == 20 && strings.Trim(s, "0123456789") == ""
}

// Redact returns a stream URL without its credentials, and whether it had
// any (see camera/streamurl for what counts as one).
func Redact(raw string) (string, bool) {
	public, secret := streamurl.Split(raw)
	return public, !secret.Empty()
}

// splitURL is streamurl.Split with the secret ready to store ([] when none).
func splitURL(raw string) (string, streamurl.Secret) {
	public, secret := streamurl.Split(raw)
	if secret == nil {
		secret = streamurl.Secret{}
	}
	return public, secret
}

// joinURL puts a stored URL's credentials back. A secret that does not fit
// is an internal error naming the field, never its value.
func joinURL(field, public string, secret streamurl.Secret) (string, error) {
	raw, err := streamurl.Join(public, secret)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return raw, nil
}

// keepCredentials is the URL to store when a change gives next for a URL
// stored as old (both with their credentials): next as given when it
// brings credentials (or removes the URL); else old's credentials kept —
// all of them when next is old as shown, its user:password@ when next
// changes the URL. Credentials in the path or query of a changed URL
// cannot be placed again: that is refused, asking for the URL in full.
func keepCredentials(field, old, next string) (string, error) {
	nextPublic, nextSecret := streamurl.Split(next)
	oldPublic, oldSecret := streamurl.Split(old)
	if next == "" || !nextSecret.Empty() || oldSecret.Empty() {
		return next, nil
	}
	if nextPublic == oldPublic {
		return old, nil
	}
	i := strings.Index(oldPublic, "://")
	j := strings.Index(nextPublic, "://")
	if len(oldSecret) == 1 && i >= 0 && j >= 0 && oldSecret[0].At == i+3 && strings.HasSuffix(oldSecret[0].Text, "@") {
		return nextPublic[:j+3] + oldSecret[0].Text + nextPublic[j+3:], nil
	}
	return "", fieldError(field, "the stored credentials are in the URL's path or query and cannot be carried over to a changed URL: give the URL with its credentials")
}

// ViewCone is the ground area a camera sees: a sector of radius rangeM
// metres around heading (degrees clockwise from north) spanning fov
// degrees, computed on the sphere, as a closed ring.
func ViewCone(lon, lat, heading, fov, rangeM float64) orb.Ring {
	c := orb.Point{lon, lat}
	steps := max(int(math.Ceil(fov/5)), 2)
	var ring orb.Ring
	if fov < 360 {
		ring = append(ring, c)
	}
	start := heading - fov/2
	for i := 0; i <= steps; i++ {
		if fov >= 360 && i == steps {
			break
		}
		ring = append(ring, orbgeo.PointAtBearingAndDistance(c, start+fov*float64(i)/float64(steps), rangeM))
	}
	ring = append(ring, ring[0])
	// Counter-clockwise, as RFC 7946 wants exterior rings.
	if ring.Orientation() == orb.CW {
		ring.Reverse()
	}
	return ring
}
