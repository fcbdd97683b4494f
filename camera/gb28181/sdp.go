package gb28181

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Transports of a channel's media (GB/T 28181-2016 §9.2, Annex C). In TCP
// passive the platform listens and the device connects; in TCP active the
// device listens and the platform connects.
const (
	UDP        = "udp"
	TCPPassive = "tcp-passive"
	TCPActive  = "tcp-active"
)

// CheckTransport validates a media transport name.
func CheckTransport(t string) error {
	switch t {
	case UDP, TCPPassive, TCPActive:
		return nil
	}
	return fmt.Errorf("media transport %q is not udp, tcp-passive or tcp-active", t)
}

// offer is the SDP the platform sends in an INVITE.
type offer struct {
	platform  string // the platform's ID
	channel   string
	ip        string
	port      int
	transport string
	ssrc      string
	// Playback: from..to (zero: live).
	from, to time.Time
}

func (o offer) String() string {
	var b strings.Builder
	name := "Play"
	if !o.from.IsZero() {
		name = "Playback"
	}
	proto := "RTP/AVP"
	if o.transport != UDP {
		proto = "TCP/RTP/AVP"
	}
	fmt.Fprintf(&b, "v=0\r\no=%s 0 0 IN IP4 %s\r\ns=%s\r\n", o.platform, o.ip, name)
	if name == "Playback" {
		fmt.Fprintf(&b, "u=%s:0\r\n", o.channel)
	}
	fmt.Fprintf(&b, "c=IN IP4 %s\r\n", o.ip)
	if name == "Playback" {
		fmt.Fprintf(&b, "t=%d %d\r\n", o.from.Unix(), o.to.Unix())
	} else {
		b.WriteString("t=0 0\r\n")
	}
	fmt.Fprintf(&b, "m=video %d %s 96 97 98\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\na=rtpmap:97 MPEG4/90000\r\na=rtpmap:98 H264/90000\r\n", o.port, proto)
	switch o.transport {
	case TCPPassive:
		b.WriteString("a=setup:passive\r\na=connection:new\r\n")
	case TCPActive:
		b.WriteString("a=setup:active\r\na=connection:new\r\n")
	}
	fmt.Fprintf(&b, "y=%s\r\n", o.ssrc)
	return b.String()
}

// answer is what the platform needs of a device's SDP answer.
type answer struct {
	ip      string
	port    int
	tcp     bool
	setup   string // active or passive, for TCP
	ssrc    string
	payload []string
}

// maxSDP bounds an SDP body.
const maxSDP = 16 << 10

// parseAnswer reads a device's SDP answer. Devices write SDP loosely (GB's
// y= and f= lines are not RFC 4566), so it is read line by line, leniently,
// but what matters must be there and make sense.
func parseAnswer(body []byte) (answer, error) {
	var a answer
	if len(body) > maxSDP {
		return a, fmt.Errorf("SDP answer of %d bytes is too long", len(body))
	}
	var sessionIP, mediaIP string
	inVideo := false
	sawMedia := false
	for n, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, "\r ")
		if len(line) < 2 || line[1] != '=' {
			if strings.TrimSpace(line) != "" {
				return a, fmt.Errorf("SDP answer line %d is not type=value: %q", n+1, trunc(line))
			}
			continue
		}
		v := line[2:]
		switch line[0] {
		case 'c':
			f := strings.Fields(v)
			if len(f) != 3 || f[0] != "IN" {
				return a, fmt.Errorf("SDP answer line %d: bad connection %q", n+1, trunc(v))
			}
			ip := strings.Split(f[2], "/")[0]
			if net.ParseIP(ip) == nil {
				return a, fmt.Errorf("SDP answer line %d: connection address %q is not an IP", n+1, trunc(ip))
			}
			if sawMedia {
				mediaIP = ip
			} else {
				sessionIP = ip
			}
		case 'm':
			sawMedia = true
			f := strings.Fields(v)
			inVideo = len(f) >= 3 && f[0] == "video"
			if !inVideo {
				continue
			}
			p, err := strconv.Atoi(f[1])
			if err != nil || p < 0 || p > 65535 {
				return a, fmt.Errorf("SDP answer line %d: bad port %q", n+1, trunc(f[1]))
			}
			a.port = p
			a.tcp = strings.HasPrefix(strings.ToUpper(f[2]), "TCP/")
			a.payload = f[3:]
		case 'a':
			if !inVideo {
				continue
			}
			if s, ok := strings.CutPrefix(v, "setup:"); ok {
				a.setup = strings.TrimSpace(s)
			}
		case 'y':
			a.ssrc = strings.TrimSpace(v)
		}
	}
	if !sawMedia || a.payload == nil {
		return a, fmt.Errorf("SDP answer has no video medium")
	}
	a.ip = sessionIP
	if mediaIP != "" {
		a.ip = mediaIP
	}
	if a.ip == "" {
		return a, fmt.Errorf("SDP answer has no connection address")
	}
	return a, nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
