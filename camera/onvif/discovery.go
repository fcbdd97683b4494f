package onvif

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/ipv4"
)

// WS-Discovery (the 2005/04 draft ONVIF devices answer): a client sends a
// Probe for NetworkVideoTransmitter over UDP to the multicast group
// 239.255.255.250:3702; each device answers with a ProbeMatch, unicast to
// the probe's source, giving its device service address (XAddrs) and
// scopes (name, hardware, location). Both sides are here: Discover for
// gridwatch, the Probe reader and ProbeMatches writer for the simulator.

// DiscoveryAddr is the WS-Discovery multicast group and port.
const DiscoveryAddr = "239.255.255.250:3702"

const (
	nsAddressing = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsDiscovery  = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
	nsNetwork    = "http://www.onvif.org/ver10/network/wsdl"
	actionProbe  = nsDiscovery + "/Probe"
	actionMatch  = nsDiscovery + "/ProbeMatches"
)

// probeGap is the wait before the probe's repeat.
const probeGap = 100 * time.Millisecond

// maxDatagram bounds a discovery message read.
const maxDatagram = 64 << 10

// Found is a device that answered a probe.
type Found struct {
	// Endpoint is the device's stable id (urn:uuid:…).
	Endpoint string `json:"endpoint"`
	// XAddrs are its device service URLs; URL is the first http(s) one.
	XAddrs []string `json:"xaddrs"`
	URL    string   `json:"url"`
	// Name, Hardware and Location come from its onvif:// scopes.
	Name     string   `json:"name"`
	Hardware string   `json:"hardware"`
	Location string   `json:"location"`
	Scopes   []string `json:"scopes"`
	Types    []string `json:"types"`
}

// DiscoverOptions say where and how long to look.
type DiscoverOptions struct {
	// Addr is where the probe goes: DiscoveryAddr by default; a unicast
	// host:port asks one responder (tests, a known subnet's relay).
	Addr string
	// Interface names the network interface the multicast probe leaves
	// by (default: the system's choice).
	Interface string
	// Wait is how long answers are collected (default 2 s, at most the
	// context's deadline).
	Wait time.Duration
}

// Discover sends a probe and returns the devices that answered within the
// wait, each once (by endpoint), in the order they answered.
func Discover(ctx context.Context, opts DiscoverOptions) ([]Found, error) {
	addr := opts.Addr
	if addr == "" {
		addr = DiscoveryAddr
	}
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("onvif discovery: address %q: %w", addr, err)
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("onvif discovery: %w", err)
	}
	defer conn.Close()
	if opts.Interface != "" {
		ifi, err := net.InterfaceByName(opts.Interface)
		if err != nil {
			return nil, fmt.Errorf("onvif discovery: interface %q: %w", opts.Interface, err)
		}
		if to.IP.IsMulticast() {
			if err := ipv4.NewPacketConn(conn).SetMulticastInterface(ifi); err != nil {
				return nil, fmt.Errorf("onvif discovery: interface %q: %w", opts.Interface, err)
			}
		}
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	// A context that ends cuts the wait short (set after the deadline, so
	// that it wins).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	id := messageID()
	probe := ProbeMessage(id)
	// UDP may lose the probe: it is sent twice (SOAP-over-UDP's repeat).
	for i := range 2 {
		if i > 0 {
			// SOAP-over-UDP's repeat, a little later, past a burst of loss.
			time.Sleep(min(probeGap, time.Until(deadline)/4))
		}
		if _, err := conn.WriteToUDP(probe, to); err != nil && i == 0 {
			return nil, fmt.Errorf("onvif discovery: sending the probe: %w", err)
		}
	}
	var out []Found
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if ctx.Err() != nil && len(out) == 0 {
					return nil, ctx.Err()
				}
				return out, nil
			}
			return out, fmt.Errorf("onvif discovery: %w", err)
		}
		matches, err := ParseProbeMatches(buf[:n], id)
		if err != nil {
			continue // not an answer to this probe
		}
		for _, m := range matches {
			if !slices.ContainsFunc(out, func(f Found) bool { return f.Endpoint == m.Endpoint }) {
				out = append(out, m)
			}
		}
	}
}

func messageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return "uuid:" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ProbeMessage is a WS-Discovery Probe for ONVIF video devices.
func ProbeMessage(id string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<e:Envelope xmlns:e="` + NSEnvelope + `" xmlns:w="` + nsAddressing + `" xmlns:d="` + nsDiscovery + `" xmlns:dn="` + nsNetwork + `">`)
	b.WriteString(`<e:Header><w:MessageID>`)
	_ = xml.EscapeText(&b, []byte(id))
	b.WriteString(`</w:MessageID><w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>`)
	b.WriteString(`<w:Action e:mustUnderstand="true">` + actionProbe + `</w:Action></e:Header>`)
	b.WriteString(`<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>`)
	return b.Bytes()
}

// discoveryEnvelope reads a probe or its matches (local names: devices
// differ in prefixes and some in namespace versions).
type discoveryEnvelope struct {
	XMLName xml.Name `xml:"Envelope"`
	Header  struct {
		MessageID string `xml:"MessageID"`
		RelatesTo string `xml:"RelatesTo"`
		Action    string `xml:"Action"`
	} `xml:"Header"`
	Body struct {
		Probe *struct {
			Types string `xml:"Types"`
		} `xml:"Probe"`
		Matches []struct {
			Endpoint string `xml:"EndpointReference>Address"`
			Types    string `xml:"Types"`
			Scopes   string `xml:"Scopes"`
			XAddrs   string `xml:"XAddrs"`
		} `xml:"ProbeMatches>ProbeMatch"`
	} `xml:"Body"`
}

// ParseProbe reads a Probe: its message id and the types it asks for.
func ParseProbe(data []byte) (id string, types []string, err error) {
	var env discoveryEnvelope
	if err := xml.Unmarshal(data, &env); err != nil {
		return "", nil, fmt.Errorf("onvif discovery: not a SOAP envelope: %w", err)
	}
	if env.Body.Probe == nil {
		return "", nil, errors.New("onvif discovery: not a probe")
	}
	if env.Header.MessageID == "" {
		return "", nil, errors.New("onvif discovery: the probe has no message id")
	}
	return env.Header.MessageID, strings.Fields(env.Body.Probe.Types), nil
}

// ParseProbeMatches reads the answer to probe id (empty: any probe's).
func ParseProbeMatches(data []byte, id string) ([]Found, error) {
	var env discoveryEnvelope
	if err := xml.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("onvif discovery: not a SOAP envelope: %w", err)
	}
	if id != "" && strings.TrimSpace(env.Header.RelatesTo) != id {
		return nil, errors.New("onvif discovery: an answer to another probe")
	}
	if len(env.Body.Matches) == 0 {
		return nil, errors.New("onvif discovery: no probe match")
	}
	out := make([]Found, 0, len(env.Body.Matches))
	for _, m := range env.Body.Matches {
		f := Found{Endpoint: strings.TrimSpace(m.Endpoint), XAddrs: strings.Fields(m.XAddrs), Scopes: strings.Fields(m.Scopes), Types: strings.Fields(m.Types)}
		if f.Endpoint == "" || len(f.XAddrs) == 0 {
			continue
		}
		for _, x := range f.XAddrs {
			if u, err := url.Parse(x); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
				f.URL = x
				break
			}
		}
		if f.URL == "" {
			continue
		}
		for _, s := range f.Scopes {
			rest, ok := strings.CutPrefix(s, "onvif://www.onvif.org/")
			if !ok {
				continue
			}
			key, val, _ := strings.Cut(rest, "/")
			if v, err := url.PathUnescape(val); err == nil {
				val = v
			}
			switch key {
			case "name":
				f.Name = val
			case "hardware":
				f.Hardware = val
			case "location":
				f.Location = val
			}
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("onvif discovery: no usable probe match (an endpoint and an http device address are needed)")
	}
	return out, nil
}

// ProbeMatchesMessage is a device's answer to probe relatesTo.
func ProbeMatchesMessage(relatesTo string, matches []Found) []byte {
	var b bytes.Buffer
	text := func(s string) { _ = xml.EscapeText(&b, []byte(s)) }
	b.WriteString(xml.Header)
	b.WriteString(`<e:Envelope xmlns:e="` + NSEnvelope + `" xmlns:w="` + nsAddressing + `" xmlns:d="` + nsDiscovery + `" xmlns:dn="` + nsNetwork + `">`)
	b.WriteString(`<e:Header><w:MessageID>`)
	text(messageID())
	b.WriteString(`</w:MessageID><w:RelatesTo>`)
	text(relatesTo)
	b.WriteString(`</w:RelatesTo><w:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</w:To>`)
	b.WriteString(`<w:Action>` + actionMatch + `</w:Action></e:Header><e:Body><d:ProbeMatches>`)
	for _, m := range matches {
		b.WriteString(`<d:ProbeMatch><w:EndpointReference><w:Address>`)
		text(m.Endpoint)
		b.WriteString(`</w:Address></w:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>`)
		text(strings.Join(m.Scopes, " "))
		b.WriteString(`</d:Scopes><d:XAddrs>`)
		text(strings.Join(m.XAddrs, " "))
		b.WriteString(`</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch>`)
	}
	b.WriteString(`</d:ProbeMatches></e:Body></e:Envelope>`)
	return b.Bytes()
}

// Scope is an onvif:// scope of key (name, hardware, location…) and value.
func Scope(key, value string) string {
	return "onvif://www.onvif.org/" + key + "/" + url.PathEscape(value)
}
