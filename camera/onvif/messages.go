package onvif

import (
	"encoding/xml"
	"strconv"
	"strings"
	"time"
)

// The messages gridwatch sends and the simulator answers. Requests carry
// their service's namespace; answers are read by local names, as cameras
// differ in the prefixes and namespaces of the elements inside.

// GetSystemDateAndTime asks the device's clock (no authentication needed).
type GetSystemDateAndTime struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver10/device/wsdl GetSystemDateAndTime"`
}

// GetSystemDateAndTimeResponse is the device's UTC clock.
type GetSystemDateAndTimeResponse struct {
	XMLName xml.Name `xml:"GetSystemDateAndTimeResponse"`
	UTC     DateTime `xml:"SystemDateAndTime>UTCDateTime"`
}

// DateTime is ONVIF's date and time.
type DateTime struct {
	Hour   int `xml:"Time>Hour"`
	Minute int `xml:"Time>Minute"`
	Second int `xml:"Time>Second"`
	Year   int `xml:"Date>Year"`
	Month  int `xml:"Date>Month"`
	Day    int `xml:"Date>Day"`
}

// GetDeviceInformation asks who made the device.
type GetDeviceInformation struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver10/device/wsdl GetDeviceInformation"`
}

// GetDeviceInformationResponse says it.
type GetDeviceInformationResponse struct {
	XMLName         xml.Name `xml:"GetDeviceInformationResponse"`
	Manufacturer    string   `xml:"Manufacturer"`
	Model           string   `xml:"Model"`
	FirmwareVersion string   `xml:"FirmwareVersion"`
	SerialNumber    string   `xml:"SerialNumber"`
	HardwareID      string   `xml:"HardwareId"`
}

// GetCapabilities asks where the device's services are.
type GetCapabilities struct {
	XMLName  xml.Name `xml:"http://www.onvif.org/ver10/device/wsdl GetCapabilities"`
	Category string   `xml:"Category"`
}

// GetCapabilitiesResponse says where: the media and PTZ services' URLs.
type GetCapabilitiesResponse struct {
	XMLName xml.Name `xml:"GetCapabilitiesResponse"`
	Media   string   `xml:"Capabilities>Media>XAddr"`
	PTZ     string   `xml:"Capabilities>PTZ>XAddr"`
}

// GetProfiles asks the media profiles.
type GetProfiles struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver10/media/wsdl GetProfiles"`
}

// GetProfilesResponse lists them.
type GetProfilesResponse struct {
	XMLName  xml.Name     `xml:"GetProfilesResponse"`
	Profiles []ProfileXML `xml:"Profiles"`
}

// ProfileXML is one media profile as sent.
type ProfileXML struct {
	Token    string `xml:"token,attr"`
	Name     string `xml:"Name"`
	Encoding string `xml:"VideoEncoderConfiguration>Encoding"`
	Width    int    `xml:"VideoEncoderConfiguration>Resolution>Width"`
	Height   int    `xml:"VideoEncoderConfiguration>Resolution>Height"`
	PTZ      *struct {
		Token string `xml:"token,attr"`
	} `xml:"PTZConfiguration"`
}

// GetStreamURI asks a profile's RTSP URI.
type GetStreamURI struct {
	XMLName  xml.Name `xml:"http://www.onvif.org/ver10/media/wsdl GetStreamUri"`
	Stream   string   `xml:"StreamSetup>Stream"`
	Protocol string   `xml:"StreamSetup>Transport>Protocol"`
	Profile  string   `xml:"ProfileToken"`
}

// GetSnapshotURI asks a profile's snapshot URI.
type GetSnapshotURI struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver10/media/wsdl GetSnapshotUri"`
	Profile string   `xml:"ProfileToken"`
}

// MediaURIResponse is the answer to both (GetStreamUriResponse,
// GetSnapshotUriResponse: XMLName says which when written).
type MediaURIResponse struct {
	XMLName xml.Name
	URI     string `xml:"MediaUri>Uri"`
}

// Vector is a PTZ position or speed: pan and tilt in [-1, 1], zoom in
// [0, 1] (a speed: zoom in [-1, 1]).
type Vector struct {
	Pan  float64 `json:"pan"`
	Tilt float64 `json:"tilt"`
	Zoom float64 `json:"zoom"`
}

// ptzVector is a Vector as sent.
type ptzVector struct {
	PanTilt struct {
		X float64 `xml:"x,attr"`
		Y float64 `xml:"y,attr"`
	} `xml:"PanTilt"`
	Zoom struct {
		X float64 `xml:"x,attr"`
	} `xml:"Zoom"`
}

func toXML(v Vector) ptzVector {
	var x ptzVector
	x.PanTilt.X, x.PanTilt.Y, x.Zoom.X = v.Pan, v.Tilt, v.Zoom
	return x
}

func fromXML(x ptzVector) Vector { return Vector{Pan: x.PanTilt.X, Tilt: x.PanTilt.Y, Zoom: x.Zoom.X} }

// ContinuousMove starts moving at a speed.
type ContinuousMove struct {
	XMLName  xml.Name  `xml:"http://www.onvif.org/ver20/ptz/wsdl ContinuousMove"`
	Profile  string    `xml:"ProfileToken"`
	Velocity ptzVector `xml:"Velocity"`
	// Timeout (an xs:duration, PT2S) stops the move by itself: the
	// device's own dead man's switch, should the stop never come.
	Timeout string `xml:"Timeout,omitempty"`
}

// Duration writes d as an xs:duration in seconds (PT1.5S).
func Duration(d time.Duration) string {
	return "PT" + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
}

// ParseDuration reads the simple xs:durations devices get: PTnS, PTnM, PTnH
// and their sums (PT1M30S); ok false for anything else.
func ParseDuration(s string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "PT")
	if !ok || rest == "" {
		return 0, false
	}
	var total time.Duration
	for rest != "" {
		i := strings.IndexAny(rest, "HMS")
		if i <= 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || v < 0 || v > 1e6 {
			return 0, false
		}
		unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}[rest[i]]
		total += time.Duration(v * float64(unit))
		rest = rest[i+1:]
	}
	return total, true
}

// Stop stops moving.
type Stop struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver20/ptz/wsdl Stop"`
	Profile string   `xml:"ProfileToken"`
	PanTilt bool     `xml:"PanTilt"`
	Zoom    bool     `xml:"Zoom"`
}

// GetStatus asks where the head is.
type GetStatus struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver20/ptz/wsdl GetStatus"`
	Profile string   `xml:"ProfileToken"`
}

// GetStatusResponse says it.
type GetStatusResponse struct {
	XMLName  xml.Name  `xml:"GetStatusResponse"`
	Position ptzVector `xml:"PTZStatus>Position"`
	Moving   string    `xml:"PTZStatus>MoveStatus>PanTilt"`
}

// GetPresets asks the presets.
type GetPresets struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver20/ptz/wsdl GetPresets"`
	Profile string   `xml:"ProfileToken"`
}

// GetPresetsResponse lists them.
type GetPresetsResponse struct {
	XMLName xml.Name    `xml:"GetPresetsResponse"`
	Presets []PresetXML `xml:"Preset"`
}

// PresetXML is one preset as sent.
type PresetXML struct {
	Token string `xml:"token,attr"`
	Name  string `xml:"Name"`
}

// GotoPreset moves to a preset.
type GotoPreset struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver20/ptz/wsdl GotoPreset"`
	Profile string   `xml:"ProfileToken"`
	Preset  string   `xml:"PresetToken"`
}

// SetPreset saves the current position as a preset.
type SetPreset struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver20/ptz/wsdl SetPreset"`
	Profile string   `xml:"ProfileToken"`
	Name    string   `xml:"PresetName"`
}

// SetPresetResponse names the preset's token.
type SetPresetResponse struct {
	XMLName xml.Name `xml:"SetPresetResponse"`
	Token   string   `xml:"PresetToken"`
}

// GotoHomePosition moves home.
type GotoHomePosition struct {
	XMLName xml.Name `xml:"http://www.onvif.org/ver20/ptz/wsdl GotoHomePosition"`
	Profile string   `xml:"ProfileToken"`
}
