package camsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"gridwatch/camera/onvif"
)

// ServeDiscovery answers WS-Discovery probes on conn, as the simulated
// cameras' ONVIF devices: one ProbeMatch per camera, whose device service
// is under onvifBase (the http://host:port an ONVIFHandler is served on).
// It returns when ctx ends (closing conn) or conn fails. Bind conn to the
// multicast group to be found by a real probe, or to a loopback port for
// tests (gridwatch's --onvif-discovery-addr then points at it).
func (s *Sim) ServeDiscovery(ctx context.Context, conn net.PacketConn, onvifBase string) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	matches := make([]onvif.Found, len(s.cams))
	for i := range s.cams {
		n := i + 1
		matches[i] = onvif.Found{
			Endpoint: fmt.Sprintf("urn:uuid:6a1d0000-ca75-4000-8000-%012d", n),
			XAddrs:   []string{fmt.Sprintf("%s/onvif/%d/device_service", onvifBase, n)},
			Scopes: []string{onvif.Scope("name", fmt.Sprintf("camsim-%d", n)), onvif.Scope("hardware", "camsim PTZ dome"),
				onvif.Scope("location", "gridwatch"), onvif.Scope("type", "ptz")},
		}
	}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		id, types, err := onvif.ParseProbe(buf[:n])
		if err != nil {
			continue
		}
		// A probe for other kinds of devices is not ours to answer.
		if len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return t == "dn:NetworkVideoTransmitter" || t == "NetworkVideoTransmitter" }) {
			continue
		}
		if _, err := conn.WriteTo(onvif.ProbeMatchesMessage(id, matches), from); err != nil {
			s.log.Warn("onvif discovery: answering a probe", "err", err)
		}
	}
}
