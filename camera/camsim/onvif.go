package camsim

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"gridwatch/camera/onvif"
)

// The ONVIF device service of the simulated cameras: device, media and PTZ
// services over SOAP with WS-UsernameToken authentication (the simulator's
// Username and Password), at /onvif/{n}/device_service and the addresses
// its capabilities give. The PTZ head moves as told: a continuous move
// integrates its speed over time, so GetStatus reports where it has got
// to; presets and home are remembered per camera. Serve it with
// ONVIFHandler on any HTTP listener.

// ptzHead is a simulated camera's PTZ state.
type ptzHead struct {
	mu      sync.Mutex
	pos     onvif.Vector // at since
	vel     onvif.Vector
	since   time.Time
	until   time.Time // a move with a timeout stops then (zero: no timeout)
	presets []onvif.PresetXML
	at      map[string]onvif.Vector // preset token → position
}

// position is where the head is at now.
func (h *ptzHead) position(now time.Time) onvif.Vector {
	if !h.until.IsZero() && now.After(h.until) {
		now = h.until
	}
	dt := now.Sub(h.since).Seconds()
	clamp := func(v, lo float64) float64 { return math.Max(lo, math.Min(1, v)) }
	return onvif.Vector{
		Pan:  clamp(h.pos.Pan+h.vel.Pan*dt, -1),
		Tilt: clamp(h.pos.Tilt+h.vel.Tilt*dt, -1),
		Zoom: clamp(h.pos.Zoom+h.vel.Zoom*dt, 0),
	}
}

// set moves the head to p, at speed v from now.
func (h *ptzHead) set(now time.Time, p, v onvif.Vector) {
	h.pos, h.vel, h.since, h.until = p, v, now, time.Time{}
}

// moving reports whether the head moves at now.
func (h *ptzHead) moving(now time.Time) bool {
	return h.vel != (onvif.Vector{}) && (h.until.IsZero() || now.Before(h.until))
}

// ONVIFHandler serves the simulated cameras' ONVIF services.
func (s *Sim) ONVIFHandler() http.Handler {
	s.ptzOnce.Do(func() {
		s.heads = make([]*ptzHead, len(s.cams))
		for i := range s.heads {
			s.heads[i] = &ptzHead{since: time.Now(), at: map[string]onvif.Vector{}}
		}
	})
	return http.HandlerFunc(s.serveONVIF)
}

func (s *Sim) serveONVIF(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/onvif/")
	num, service, _ := strings.Cut(rest, "/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || s.camera(n) == nil {
		http.NotFound(w, r)
		return
	}
	if service == "snapshot.jpg" && r.Method == http.MethodGet {
		// As cameras do: HTTP Digest with the device's account.
		if s.cfg.Username != "" && !s.digestOK(r) {
			w.Header().Set("WWW-Authenticate", `Digest realm="camsim", qop="auth", algorithm=MD5, nonce="`+strconv.FormatInt(time.Now().UnixNano(), 16)+`"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		s.snapshot(w, n)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST a SOAP message", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var env onvif.Envelope
	if err := xml.Unmarshal(data, &env); err != nil {
		onvif.Respond(w, http.StatusBadRequest, onvif.FaultBody("ter:WellFormed", "not a SOAP envelope"))
		return
	}
	op := firstElement(env.Body.Inner)
	// The clock is open to all, so that a client can sign in the
	// device's time; everything else needs the account.
	if op != "GetSystemDateAndTime" && s.cfg.Username != "" {
		sec := env.Header.Security
		if sec == nil || !sec.UsernameToken.Check(s.cfg.Username, s.cfg.Password, time.Now(), 5*time.Minute) {
			onvif.Respond(w, http.StatusBadRequest, onvif.FaultBody("ter:NotAuthorized", "the user name or password is wrong"))
			return
		}
	}
	base := "http://" + r.Host + "/onvif/" + num
	head := s.heads[n-1]
	now := time.Now()
	switch service + "/" + op {
	case "device_service/GetSystemDateAndTime":
		u := now.UTC()
		onvif.Respond(w, 200, onvif.GetSystemDateAndTimeResponse{UTC: onvif.DateTime{
			Hour: u.Hour(), Minute: u.Minute(), Second: u.Second(), Year: u.Year(), Month: int(u.Month()), Day: u.Day()}})
	case "device_service/GetDeviceInformation":
		onvif.Respond(w, 200, onvif.GetDeviceInformationResponse{Manufacturer: "Gridwatch", Model: "camsim PTZ dome",
			FirmwareVersion: "1.0", SerialNumber: fmt.Sprintf("CAMSIM-%04d", n), HardwareID: "camsim"})
	case "device_service/GetCapabilities":
		onvif.Respond(w, 200, onvif.GetCapabilitiesResponse{Media: base + "/media_service", PTZ: base + "/ptz_service"})
	case "media_service/GetProfiles":
		var r onvif.GetProfilesResponse
		main := onvif.ProfileXML{Token: "main", Name: "mainStream", Encoding: "H264", Width: 640, Height: 360}
		main.PTZ = &struct {
			Token string `xml:"token,attr"`
		}{Token: "ptz"}
		h265 := onvif.ProfileXML{Token: "h265", Name: "mainStreamH265", Encoding: "H265", Width: 640, Height: 360}
		h265.PTZ = main.PTZ
		r.Profiles = []onvif.ProfileXML{main, {Token: "sub", Name: "subStream", Encoding: "H264", Width: 320, Height: 180}, h265}
		onvif.Respond(w, 200, r)
	case "media_service/GetStreamUri":
		var req onvif.GetStreamURI
		_ = xml.Unmarshal(env.Body.Inner, &req)
		name := StreamMain
		switch req.Profile {
		case "sub":
			name = StreamSub
		case "h265":
			name = StreamH265
		}
		u, _ := url.Parse(s.URL(n, name))
		u.User = nil // a device does not put its credentials in the URI
		onvif.Respond(w, 200, onvif.MediaURIResponse{XMLName: xml.Name{Local: "GetStreamUriResponse"}, URI: u.String()})
	case "media_service/GetSnapshotUri":
		onvif.Respond(w, 200, onvif.MediaURIResponse{XMLName: xml.Name{Local: "GetSnapshotUriResponse"}, URI: base + "/snapshot.jpg"})
	case "ptz_service/ContinuousMove":
		var req onvif.ContinuousMove
		_ = xml.Unmarshal(env.Body.Inner, &req)
		head.mu.Lock()
		head.set(now, head.position(now), onvif.Vector{Pan: req.Velocity.PanTilt.X, Tilt: req.Velocity.PanTilt.Y, Zoom: req.Velocity.Zoom.X})
		if d, ok := onvif.ParseDuration(req.Timeout); ok && d > 0 {
			head.until = now.Add(d)
		}
		head.mu.Unlock()
		onvif.Respond(w, 200, []byte(`<ContinuousMoveResponse xmlns="`+onvif.NSPTZ+`"/>`))
	case "ptz_service/Stop":
		head.mu.Lock()
		head.set(now, head.position(now), onvif.Vector{})
		head.mu.Unlock()
		onvif.Respond(w, 200, []byte(`<StopResponse xmlns="`+onvif.NSPTZ+`"/>`))
	case "ptz_service/GetStatus":
		head.mu.Lock()
		p, moving := head.position(now), head.moving(now)
		head.mu.Unlock()
		var r onvif.GetStatusResponse
		r.Position.PanTilt.X, r.Position.PanTilt.Y, r.Position.Zoom.X = p.Pan, p.Tilt, p.Zoom
		r.Moving = "IDLE"
		if moving {
			r.Moving = "MOVING"
		}
		onvif.Respond(w, 200, r)
	case "ptz_service/GetPresets":
		head.mu.Lock()
		r := onvif.GetPresetsResponse{Presets: append([]onvif.PresetXML(nil), head.presets...)}
		head.mu.Unlock()
		onvif.Respond(w, 200, r)
	case "ptz_service/SetPreset":
		var req onvif.SetPreset
		_ = xml.Unmarshal(env.Body.Inner, &req)
		head.mu.Lock()
		tok := strconv.Itoa(len(head.presets) + 1)
		head.presets = append(head.presets, onvif.PresetXML{Token: tok, Name: req.Name})
		head.at[tok] = head.position(now)
		head.mu.Unlock()
		onvif.Respond(w, 200, onvif.SetPresetResponse{Token: tok})
	case "ptz_service/GotoPreset":
		var req onvif.GotoPreset
		_ = xml.Unmarshal(env.Body.Inner, &req)
		head.mu.Lock()
		p, ok := head.at[req.Preset]
		if ok {
			head.set(now, p, onvif.Vector{})
		}
		head.mu.Unlock()
		if !ok {
			onvif.Respond(w, http.StatusBadRequest, onvif.FaultBody("ter:NoToken", "no preset "+req.Preset))
			return
		}
		onvif.Respond(w, 200, []byte(`<GotoPresetResponse xmlns="`+onvif.NSPTZ+`"/>`))
	case "ptz_service/GotoHomePosition":
		head.mu.Lock()
		head.set(now, onvif.Vector{}, onvif.Vector{})
		head.mu.Unlock()
		onvif.Respond(w, 200, []byte(`<GotoHomePositionResponse xmlns="`+onvif.NSPTZ+`"/>`))
	default:
		onvif.Respond(w, http.StatusBadRequest, onvif.FaultBody("ter:ActionNotSupported", "not supported: "+service+" "+op))
	}
}

// firstElement is the local name of the first element in raw XML.
func firstElement(inner []byte) string {
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

// digestOK checks a request's Digest authorization against the account
// (any nonce the simulator could have issued is taken).
func (s *Sim) digestOK(r *http.Request) bool {
	scheme, params, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return false
	}
	p := onvif.ParseChallenge(params)
	if p["username"] != s.cfg.Username || p["realm"] != "camsim" || p["uri"] != r.URL.RequestURI() {
		return false
	}
	want := onvif.DigestResponse(md5.New, s.cfg.Username, "camsim", s.cfg.Password, r.Method, p["uri"], p["nonce"], p["nc"], p["cnonce"], p["qop"])
	return subtle.ConstantTimeCompare([]byte(want), []byte(p["response"])) == 1
}

// snapshot serves a small JPEG whose shade follows the head's pan, so a
// test sees a move in the picture too.
func (s *Sim) snapshot(w http.ResponseWriter, n int) {
	head := s.heads[n-1]
	head.mu.Lock()
	p := head.position(time.Now())
	head.mu.Unlock()
	img := image.NewGray(image.Rect(0, 0, 160, 90))
	shade := uint8(127 + 120*p.Pan)
	for i := range img.Pix {
		img.Pix[i] = shade
	}
	img.Set(0, 0, color.Gray{Y: 0})
	var b bytes.Buffer
	_ = jpeg.Encode(&b, img, &jpeg.Options{Quality: 80})
	w.Header().Set("Content-Type", "image/jpeg")
	_, _ = w.Write(b.Bytes())
}
