package camera

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
)

// ONVIF is how a camera is managed over ONVIF, as shown: its device
// service's address, never the account it signs in with.
type ONVIF struct {
	URL      string `json:"url"`
	HasCreds bool   `json:"has_credentials"`
	// Profile is the media profile PTZ commands name.
	Profile string `json:"profile"`
	// Device is what the device said of itself at its last check (nil:
	// never checked).
	Device *DeviceInfo `json:"device"`
}

// DeviceInfo is what an ONVIF device says of itself.
type DeviceInfo struct {
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	Firmware     string `json:"firmware"`
	Serial       string `json:"serial"`
	Hardware     string `json:"hardware"`
	// ClockOffsetMS is the camera's clock minus this server's: footage is
	// indexed by time, so a camera far off is worth a warning.
	ClockOffsetMS int64           `json:"clock_offset_ms"`
	PTZ           bool            `json:"ptz"`
	Profiles      []DeviceProfile `json:"profiles"`
	CheckedAt     time.Time       `json:"checked_at"`
}

// DeviceProfile is one of a device's media profiles.
type DeviceProfile struct {
	Token    string `json:"token"`
	Name     string `json:"name"`
	Encoding string `json:"encoding"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	PTZ      bool   `json:"ptz"`
}

// ONVIFSpec registers a camera by its ONVIF address: with it, main_url and
// sub_url may be left out and come from the device's profiles (main_profile,
// default the first; sub_profile, default the next smaller one, "none" for
// no sub stream), signed in with the same account. In a change, a url of ""
// stops managing the camera over ONVIF, and the same url without a
// username keeps the account stored.
type ONVIFSpec struct {
	URL         string `json:"url"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	MainProfile string `json:"main_profile"`
	SubProfile  string `json:"sub_profile"`

	// Set by the prober (camera/onvifcam) before the store writes them.
	Profile string      `json:"-"`
	Device  *DeviceInfo `json:"-"`
}

// ONVIFAccount is the account a camera's ONVIF device is signed into with.
type ONVIFAccount struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// CheckONVIFURL checks a device service address: http or https with a
// host, no credentials in it. Its errors never repeat the URL.
func CheckONVIFURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldError("onvif.url", "is not an http:// or https:// device service address, e.g. http://10.0.0.9/onvif/device_service")
	}
	if u.User != nil {
		return fieldError("onvif.url", "must not hold credentials: give them as onvif.username and onvif.password")
	}
	return nil
}

// checkONVIF checks the parts of a spec's ONVIF the store writes.
func (o *ONVIFSpec) check() error {
	if o == nil || o.URL == "" {
		return nil
	}
	if err := CheckONVIFURL(o.URL); err != nil {
		return err
	}
	if len(o.Username) > 128 || len(o.Password) > 256 || strings.ContainsAny(o.Username, "\x00\r\n") {
		return fieldError("onvif.username", "is too long or holds control characters")
	}
	return nil
}

// writeONVIF stores o (nil: leave as is; an empty URL: no ONVIF) for
// camera id, in tx.
func writeONVIF(ctx context.Context, tx pgx.Tx, id int64, o *ONVIFSpec) error {
	if o == nil {
		return nil
	}
	if o.URL == "" {
		_, err := tx.Exec(ctx, `UPDATE cameras SET onvif_url = '', onvif_secret = '{}', onvif_profile = '', onvif_device = NULL WHERE id = $1`, id)
		if err == nil {
			_, err = tx.Exec(ctx, `DELETE FROM camera_ptz_control WHERE camera_id = $1`, id)
		}
		return err
	}
	secret := map[string]any{}
	if o.Username != "" {
		secret = map[string]any{"username": o.Username, "password": o.Password}
	}
	var device any
	if o.Device != nil {
		device = o.Device
	}
	_, err := tx.Exec(ctx, `UPDATE cameras SET onvif_url = $2, onvif_secret = $3, onvif_profile = $4, onvif_device = $5 WHERE id = $1`,
		id, o.URL, secret, o.Profile, device)
	if err != nil {
		return fmt.Errorf("camera %d: onvif: %w", id, err)
	}
	return nil
}

// scanONVIF turns the stored columns into what a camera shows.
func scanONVIF(u string, hasCreds bool, profile string, device []byte) *ONVIF {
	if u == "" {
		return nil
	}
	o := &ONVIF{URL: u, HasCreds: hasCreds, Profile: profile}
	if len(device) > 0 {
		var d DeviceInfo
		if json.Unmarshal(device, &d) == nil {
			o.Device = &d
		}
	}
	return o
}

// ONVIFAccess is what steering a camera needs: its device address, account
// and PTZ profile. Never shown, never logged.
type ONVIFAccess struct {
	URL     string
	Account ONVIFAccount
	Profile string
	Device  *DeviceInfo
}

// ONVIFAccess returns camera id's ONVIF access (URL "" when it has none).
func (s *Store) ONVIFAccess(ctx context.Context, id int64) (*ONVIFAccess, error) {
	var a ONVIFAccess
	var device []byte
	err := s.pool.QueryRow(ctx, `SELECT onvif_url, onvif_secret, onvif_profile, onvif_device FROM cameras WHERE id = $1`, id).
		Scan(&a.URL, &a.Account, &a.Profile, &device)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("camera %d: onvif: %w", id, err)
	}
	if o := scanONVIF(a.URL, false, a.Profile, device); o != nil {
		a.Device = o.Device
	}
	return &a, nil
}

// SetDevice stores what camera id's device said at a check (and the
// profile PTZ commands name, when profile is not "").
func (s *Store) SetDevice(ctx context.Context, id int64, d *DeviceInfo, profile string) error {
	_, err := s.pool.Exec(ctx, `UPDATE cameras SET onvif_device = $2, onvif_profile = CASE WHEN $3 = '' THEN onvif_profile ELSE $3 END WHERE id = $1 AND onvif_url <> ''`, id, d, profile)
	return err
}

// Ref names a camera.
type Ref struct {
	ID   int64  `json:"id"`
	Code string `json:"code"`
	Name string `json:"name"`
}
