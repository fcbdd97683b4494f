package onvif_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"gridwatch/camera/onvif"
)

// A probe sent to the simulator's discovery port on loopback finds each
// simulated camera once, with its device service address and scopes, and
// that address answers as an ONVIF device.
func TestDiscover(t *testing.T) {
	sim, addr := device(t)
	base := strings.TrimSuffix(addr, "/onvif/1/device_service")
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.ServeDiscovery(ctx, conn, base) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeDiscovery: %v", err)
		}
	})
	found, err := onvif.Discover(ctx, onvif.DiscoverOptions{Addr: conn.LocalAddr().String(), Wait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The probe goes twice; the device answers twice; each device is listed once.
	if len(found) != 1 {
		t.Fatalf("found %d devices, want 1: %+v", len(found), found)
	}
	f := found[0]
	if f.URL != addr || f.Name != "camsim-1" || f.Hardware != "camsim PTZ dome" || !strings.HasPrefix(f.Endpoint, "urn:uuid:") {
		t.Errorf("found %+v", f)
	}
	c := &onvif.Client{URL: f.URL, Username: "admin", Password: "Hik12345"}
	if err := c.Connect(ctx); err != nil {
		t.Errorf("the address discovered does not answer: %v", err)
	}

	// Nobody answering is an empty list, not an error; a cancelled wait ends at once.
	quiet, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	got, err := onvif.Discover(ctx, onvif.DiscoverOptions{Addr: quiet.LocalAddr().String(), Wait: 200 * time.Millisecond})
	if err != nil || len(got) != 0 {
		t.Errorf("a silent network: %v, %v", got, err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := onvif.Discover(cctx, onvif.DiscoverOptions{Addr: quiet.LocalAddr().String(), Wait: time.Minute}); err == nil {
		t.Error("a cancelled discovery returned no error")
	}
	if _, err := onvif.Discover(ctx, onvif.DiscoverOptions{Addr: "not an address"}); err == nil || !strings.Contains(err.Error(), "not an address") {
		t.Errorf("a bad address: %v", err)
	}
	if _, err := onvif.Discover(ctx, onvif.DiscoverOptions{Interface: "no-such-if0", Wait: time.Millisecond}); err == nil || !strings.Contains(err.Error(), "no-such-if0") {
		t.Errorf("a bad interface: %v", err)
	}
}

// What a device answers is read as it is written; answers to other probes
// and matches without an address are left out.
func TestProbeMatches(t *testing.T) {
	id := "uuid:11111111-2222-4333-8444-555555555555"
	probe := onvif.ProbeMessage(id)
	gotID, types, err := onvif.ParseProbe(probe)
	if err != nil || gotID != id || len(types) != 1 || types[0] != "dn:NetworkVideoTransmitter" {
		t.Fatalf("probe read back: %q %v %v", gotID, types, err)
	}
	m := onvif.Found{Endpoint: "urn:uuid:x", XAddrs: []string{"urn:not-http", "http://10.0.0.9/onvif/device_service"},
		Scopes: []string{onvif.Scope("name", "东门 dome"), onvif.Scope("location", "block 3")}}
	out, err := onvif.ParseProbeMatches(onvif.ProbeMatchesMessage(id, []onvif.Found{m, {Endpoint: "urn:uuid:y"}}), id)
	if err != nil || len(out) != 1 {
		t.Fatalf("matches: %+v %v", out, err)
	}
	if f := out[0]; f.URL != "http://10.0.0.9/onvif/device_service" || f.Name != "东门 dome" || f.Location != "block 3" {
		t.Errorf("match %+v", f)
	}
	if _, err := onvif.ParseProbeMatches(onvif.ProbeMatchesMessage("uuid:other", []onvif.Found{m}), id); err == nil {
		t.Error("an answer to another probe was taken")
	}
	if _, _, err := onvif.ParseProbe(onvif.ProbeMatchesMessage(id, []onvif.Found{m})); err == nil {
		t.Error("matches read as a probe")
	}
}

// FuzzDiscovery: any datagram is a probe, matches or an error, never a panic.
func FuzzDiscovery(f *testing.F) {
	f.Add(onvif.ProbeMessage("uuid:a"))
	f.Add(onvif.ProbeMatchesMessage("uuid:a", []onvif.Found{{Endpoint: "urn:uuid:b", XAddrs: []string{"http://h/onvif"}, Scopes: []string{"onvif://www.onvif.org/name/%zz"}}}))
	f.Add([]byte(`<Envelope><Body><ProbeMatches><ProbeMatch><XAddrs>http://[::1</XAddrs></ProbeMatch></ProbeMatches></Body></Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = onvif.ParseProbe(data)
		out, err := onvif.ParseProbeMatches(data, "")
		if err == nil {
			for _, m := range out {
				if m.Endpoint == "" || m.URL == "" {
					t.Fatalf("a match without endpoint or URL: %+v", m)
				}
			}
		}
	})
}
