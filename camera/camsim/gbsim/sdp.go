package gbsim

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// offer is what the device reads of a platform's SDP offer (GB/T
// 28181-2016 Annex F: RFC 4566 plus the y= SSRC and f= media lines).
type offer struct {
	name       string // s=: Play, Playback or Download
	ip         string // c= (the video medium's, else the session's)
	port       int
	tcp        bool   // TCP/RTP/AVP
	setup      string // a=setup: of the video medium, for TCP
	ps         bool   // a payload type maps to PS/90000
	ssrc       string // y=
	start, end int64  // t=, Unix seconds
	speed      float64
}

// maxSDP bounds an SDP body.
const maxSDP = 16 << 10

// parseOffer reads an INVITE's SDP. Platforms write GB's SDP loosely, so
// lines are read leniently; what the device needs must be there.
func parseOffer(body []byte) (offer, error) {
	var o offer
	if len(body) == 0 {
		return o, errors.New("INVITE without SDP")
	}
	if len(body) > maxSDP {
		return o, fmt.Errorf("SDP of %d bytes", len(body))
	}
	var sessionIP, mediaIP string
	media, video := false, false
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, "\r ")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		v := strings.TrimSpace(line[2:])
		switch line[0] {
		case 's':
			o.name = v
		case 'c':
			f := strings.Fields(v)
			if len(f) != 3 || f[0] != "IN" {
				return o, fmt.Errorf("SDP: bad connection line %q", v)
			}
			ip := strings.Split(f[2], "/")[0]
			if !media {
				sessionIP = ip
			} else if video {
				mediaIP = ip
			}
		case 't':
			f := strings.Fields(v)
			if len(f) == 2 {
				o.start, _ = strconv.ParseInt(f[0], 10, 64)
				o.end, _ = strconv.ParseInt(f[1], 10, 64)
			}
		case 'm':
			media = true
			f := strings.Fields(v)
			video = len(f) >= 3 && f[0] == "video" && o.port == 0
			if !video {
				continue
			}
			p, err := strconv.Atoi(f[1])
			if err != nil || p <= 0 || p > 65535 {
				return o, fmt.Errorf("SDP: bad video port %q", f[1])
			}
			o.port = p
			switch proto := strings.ToUpper(f[2]); proto {
			case "RTP/AVP":
			case "TCP/RTP/AVP", "RTP/AVP/TCP":
				o.tcp = true
			default:
				return o, fmt.Errorf("SDP: transport %q", f[2])
			}
		case 'a':
			if !video {
				continue
			}
			if s, ok := strings.CutPrefix(v, "setup:"); ok {
				o.setup = strings.ToLower(strings.TrimSpace(s))
			}
			if s, ok := strings.CutPrefix(v, "rtpmap:"); ok {
				if _, enc, ok := strings.Cut(s, " "); ok && strings.EqualFold(strings.TrimSpace(enc), "PS/90000") {
					o.ps = true
				}
			}
			if s, ok := strings.CutPrefix(v, "downloadspeed:"); ok {
				o.speed, _ = strconv.ParseFloat(strings.TrimSpace(s), 64)
			}
		case 'y':
			o.ssrc = v
		}
	}
	if o.port == 0 {
		return o, errors.New("SDP: no video medium")
	}
	if !o.ps {
		return o, errors.New("SDP: PS/90000 not offered")
	}
	o.ip = sessionIP
	if mediaIP != "" {
		o.ip = mediaIP
	}
	if net.ParseIP(o.ip) == nil {
		return o, fmt.Errorf("SDP: connection address %q is not an IP", o.ip)
	}
	if o.tcp {
		switch o.setup {
		case "passive", "active":
		case "":
			o.setup = "passive" // the platform listens, as most do
		default:
			return o, fmt.Errorf("SDP: setup %q", o.setup)
		}
	}
	switch strings.ToLower(o.name) {
	case "play", "":
		o.name = "Play"
	case "playback":
		o.name = "Playback"
	case "download":
		o.name = "Download"
	default:
		return o, fmt.Errorf("SDP: session %q, want Play, Playback or Download", o.name)
	}
	if o.name != "Play" && o.end <= o.start {
		return o, fmt.Errorf("SDP: %s of t=%d %d", o.name, o.start, o.end)
	}
	return o, nil
}

// playback reports whether the offer asks for a recording.
func (o offer) playback() bool { return o.name != "Play" }

// span is a recording's start and end.
func (o offer) span() (time.Time, time.Time) {
	return time.Unix(o.start, 0), time.Unix(o.end, 0)
}

// answerSDP is the device's answer: it sends PS on payload type 96 from
// ip:port (UDP), from port 9 (TCP, connecting: setup active) or listening
// at port (TCP, setup passive).
func answerSDP(o offer, channel, ip string, port int, ssrc string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=%s 0 0 IN IP4 %s\r\ns=%s\r\nc=IN IP4 %s\r\n", channel, ip, o.name, ip)
	if o.playback() {
		fmt.Fprintf(&b, "t=%d %d\r\n", o.start, o.end)
	} else {
		b.WriteString("t=0 0\r\n")
	}
	proto := "RTP/AVP"
	if o.tcp {
		proto = "TCP/RTP/AVP"
	}
	fmt.Fprintf(&b, "m=video %d %s 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\n", port, proto)
	if o.tcp {
		setup := "active"
		if o.setup == "active" {
			setup = "passive"
		}
		fmt.Fprintf(&b, "a=setup:%s\r\na=connection:new\r\n", setup)
	}
	fmt.Fprintf(&b, "y=%s\r\n", ssrc)
	return []byte(b.String())
}

// parseSSRC reads GB's decimal SSRC (10 digits: 0 live or 1 playback,
// then the domain's 5 digits and a 4-digit number) as the RTP SSRC.
func parseSSRC(s string) (uint32, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > 0xffffffff {
		return 0, false
	}
	return uint32(n), true
}

// subjectSSRC reads the SSRC from a Subject header,
// "CHANNELID:SSRC,SERVERID:0".
func subjectSSRC(subject string) string {
	first, _, _ := strings.Cut(subject, ",")
	_, ssrc, _ := strings.Cut(first, ":")
	return strings.TrimSpace(ssrc)
}

// mansrtsp is a MANSRTSP playback command (GB/T 28181-2016 Annex B) from
// an INFO.
type mansrtsp struct {
	method string  // PLAY, PAUSE, TEARDOWN
	seek   float64 // Range: npt=N-; -1 without
	scale  float64 // Scale; 0 without
}

// parseMANSRTSP reads an INFO body such as
// "PLAY RTSP/1.0\r\nCSeq: 2\r\nRange: npt=100-\r\nScale: 2.0\r\n".
func parseMANSRTSP(body []byte) (mansrtsp, error) {
	c := mansrtsp{seek: -1}
	lines := strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n")
	if len(lines) == 0 {
		return c, errors.New("MANSRTSP: empty")
	}
	f := strings.Fields(lines[0])
	if len(f) < 2 || !strings.Contains(strings.ToUpper(f[1]), "RTSP/") { // RTSP/1.0, some write MANSRTSP/1.0
		return c, fmt.Errorf("MANSRTSP: request line %q", lines[0])
	}
	c.method = strings.ToUpper(f[0])
	switch c.method {
	case "PLAY", "PAUSE", "TEARDOWN":
	default:
		return c, fmt.Errorf("MANSRTSP: method %q", f[0])
	}
	for _, l := range lines[1:] {
		name, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "range":
			r, ok := strings.CutPrefix(v, "npt=")
			if !ok {
				return c, fmt.Errorf("MANSRTSP: range %q", v)
			}
			from, _, _ := strings.Cut(r, "-")
			from = strings.TrimSpace(from)
			if from == "" || from == "now" {
				continue
			}
			n, err := strconv.ParseFloat(from, 64)
			if err != nil || n < 0 {
				return c, fmt.Errorf("MANSRTSP: range %q", v)
			}
			c.seek = n
		case "scale":
			// Negative is reverse play, which the device plays forward.
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n == 0 || math.IsInf(n, 0) || math.IsNaN(n) {
				return c, fmt.Errorf("MANSRTSP: scale %q", v)
			}
			c.scale = math.Abs(n)
		}
	}
	return c, nil
}
