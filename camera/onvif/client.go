package onvif

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Client talks to one ONVIF device. Its methods are safe for one caller at
// a time; Connect first.
type Client struct {
	// URL is the device service, e.g. http://10.0.0.9/onvif/device_service.
	URL                string
	Username, Password string
	HTTP               *http.Client     // default: a client with a 10 s timeout
	Now                func() time.Time // default time.Now

	offset     time.Duration // the device's clock minus ours
	media, ptz string        // service URLs from the capabilities
}

// Device is what a device says of itself.
type Device struct {
	Manufacturer, Model, Firmware, Serial, Hardware string
	// ClockOffset is the device's clock minus this server's: recordings
	// are indexed by time, so a camera far off is worth a warning.
	ClockOffset time.Duration
	Profiles    []Profile
	// PTZ is true when the device has a PTZ service.
	PTZ bool
}

// Profile is one media profile: a stream the device encodes.
type Profile struct {
	Token, Name, Encoding string
	Width, Height         int
	PTZ                   bool // the profile steers a PTZ head
}

// Preset is a saved PTZ position.
type Preset struct {
	Token string `json:"token"`
	Name  string `json:"name"`
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// token signs a request with the device's clock, which the device checks
// the token's time against.
func (c *Client) token() *UsernameToken {
	if c.Username == "" {
		return nil
	}
	t := NewToken(c.Username, c.Password, c.now().Add(c.offset))
	return &t
}

// Connect reads the device's clock (to sign requests in its time) and
// where its media and PTZ services are.
func (c *Client) Connect(ctx context.Context) error {
	var dt GetSystemDateAndTimeResponse
	asked := c.now()
	if err := call(ctx, c.http(), c.URL, nil, GetSystemDateAndTime{}, &dt); err != nil {
		return err
	}
	if u := dt.UTC; u.Year > 0 {
		dev := time.Date(u.Year, time.Month(u.Month), u.Day, u.Hour, u.Minute, u.Second, 0, time.UTC)
		// The device's second is truncated: compare with our time then.
		c.offset = dev.Sub(asked.Truncate(time.Second))
	}
	var caps GetCapabilitiesResponse
	if err := call(ctx, c.http(), c.URL, c.token(), GetCapabilities{Category: "All"}, &caps); err != nil {
		return err
	}
	if caps.Media == "" {
		return errors.New("onvif: the device has no media service")
	}
	c.media, c.ptz = caps.Media, caps.PTZ
	return nil
}

// Describe reads the device's information, clock offset and profiles.
func (c *Client) Describe(ctx context.Context) (*Device, error) {
	var info GetDeviceInformationResponse
	if err := call(ctx, c.http(), c.URL, c.token(), GetDeviceInformation{}, &info); err != nil {
		return nil, err
	}
	var ps GetProfilesResponse
	if err := call(ctx, c.http(), c.media, c.token(), GetProfiles{}, &ps); err != nil {
		return nil, err
	}
	d := &Device{Manufacturer: info.Manufacturer, Model: info.Model, Firmware: info.FirmwareVersion,
		Serial: info.SerialNumber, Hardware: info.HardwareID, ClockOffset: c.offset, PTZ: c.ptz != ""}
	for _, p := range ps.Profiles {
		d.Profiles = append(d.Profiles, Profile{Token: p.Token, Name: p.Name, Encoding: p.Encoding, Width: p.Width, Height: p.Height, PTZ: p.PTZ != nil})
	}
	return d, nil
}

// StreamURI is a profile's RTSP URI (RTP over RTSP, unicast).
func (c *Client) StreamURI(ctx context.Context, profile string) (string, error) {
	var r MediaURIResponse
	err := call(ctx, c.http(), c.media, c.token(), GetStreamURI{Stream: "RTP-Unicast", Protocol: "RTSP", Profile: profile}, &r)
	return r.URI, err
}

// SnapshotURI is a profile's JPEG snapshot URI.
func (c *Client) SnapshotURI(ctx context.Context, profile string) (string, error) {
	var r MediaURIResponse
	err := call(ctx, c.http(), c.media, c.token(), GetSnapshotURI{Profile: profile}, &r)
	return r.URI, err
}

func (c *Client) ptzURL() (string, error) {
	if c.ptz == "" {
		return "", errors.New("onvif: the device has no PTZ service")
	}
	return c.ptz, nil
}

// Move starts moving the head at a speed (pan, tilt, zoom in [-1, 1]); with
// a timeout, the device stops by itself after it (unless moved again).
func (c *Client) Move(ctx context.Context, profile string, speed Vector, timeout time.Duration) error {
	u, err := c.ptzURL()
	if err != nil {
		return err
	}
	if err := speed.check(-1); err != nil {
		return err
	}
	m := ContinuousMove{Profile: profile, Velocity: toXML(speed)}
	if timeout > 0 {
		m.Timeout = Duration(timeout)
	}
	return call(ctx, c.http(), u, c.token(), m, nil)
}

// Stop stops the head.
func (c *Client) Stop(ctx context.Context, profile string) error {
	u, err := c.ptzURL()
	if err != nil {
		return err
	}
	return call(ctx, c.http(), u, c.token(), Stop{Profile: profile, PanTilt: true, Zoom: true}, nil)
}

// Position is where the head points, and whether it moves.
func (c *Client) Position(ctx context.Context, profile string) (Vector, bool, error) {
	u, err := c.ptzURL()
	if err != nil {
		return Vector{}, false, err
	}
	var r GetStatusResponse
	if err := call(ctx, c.http(), u, c.token(), GetStatus{Profile: profile}, &r); err != nil {
		return Vector{}, false, err
	}
	return fromXML(r.Position), r.Moving == "MOVING", nil
}

// Presets lists the saved positions.
func (c *Client) Presets(ctx context.Context, profile string) ([]Preset, error) {
	u, err := c.ptzURL()
	if err != nil {
		return nil, err
	}
	var r GetPresetsResponse
	if err := call(ctx, c.http(), u, c.token(), GetPresets{Profile: profile}, &r); err != nil {
		return nil, err
	}
	out := make([]Preset, len(r.Presets))
	for i, p := range r.Presets {
		out[i] = Preset{Token: p.Token, Name: p.Name}
	}
	return out, nil
}

// GotoPreset moves to a saved position.
func (c *Client) GotoPreset(ctx context.Context, profile, preset string) error {
	u, err := c.ptzURL()
	if err != nil {
		return err
	}
	return call(ctx, c.http(), u, c.token(), GotoPreset{Profile: profile, Preset: preset}, nil)
}

// SetPreset saves the current position under a name; it returns the
// preset's token.
func (c *Client) SetPreset(ctx context.Context, profile, name string) (string, error) {
	u, err := c.ptzURL()
	if err != nil {
		return "", err
	}
	var r SetPresetResponse
	err = call(ctx, c.http(), u, c.token(), SetPreset{Profile: profile, Name: name}, &r)
	return r.Token, err
}

// Home moves to the home position.
func (c *Client) Home(ctx context.Context, profile string) error {
	u, err := c.ptzURL()
	if err != nil {
		return err
	}
	return call(ctx, c.http(), u, c.token(), GotoHomePosition{Profile: profile}, nil)
}

// check says what is out of range in a speed (lo: the least zoom).
func (v Vector) check(lo float64) error {
	for _, x := range []struct {
		name string
		v    float64
	}{{"pan", v.Pan}, {"tilt", v.Tilt}, {"zoom", v.Zoom}} {
		if x.v < -1 || x.v > 1 || x.name == "zoom" && x.v < lo {
			return fmt.Errorf("onvif: %s speed %g is outside [-1, 1]", x.name, x.v)
		}
	}
	return nil
}
