package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"gridwatch/camera/camsim"
	"gridwatch/camera/camsim/gbsim"
	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/geo"
)

const camsimUsage = `Usage: gridwatch camsim [flags]
       gridwatch camsim --gb28181 SERVER_ADDR [--gb-… flags]

Serves simulated RTSP cameras (H.264 and H.265, TCP) until interrupted, and
prints the main-stream URL of each camera, one a line (the password, if any,
redacted). Camera n serves rtsp://ADDR/cam/n/main (H.264 640x360),
rtsp://ADDR/cam/n/sub (H.264 320x180) and rtsp://ADDR/cam/n/h265 (H.265 640x360);
with --audio also main-aac, main-latm, main-pcma, main-pcmu, main-opus, h265-aac,
sub-aac and sub-pcma: the same pictures with sound (a beep at every keyframe).

With --gb28181 SERVER_ADDR it simulates GB/T 28181 devices instead: NVRs that
register with the platform at SERVER_ADDR (host:port of its SIP server) and
keep alive until interrupted, then unregister. Each has --gb-channels camera
channels that stream the H.264 clip as MPEG-PS over RTP when invited (with
--audio, G.711 A-law too), placed in the demo city's grids, spread over them
(unless --gb-no-position). Device n (from 1) has the ID of --gb-device-id with
n-1 added to its serial (digits 15-20); its channel m has the device's first
10 digits, type 131, the device's network digit and serial*100+m, so
device 32010600001180000001 has channels 32010600001310000101,
32010600001310000102, … Once every device has registered, it prints one line
a device: the device's ID, then its channels' IDs, separated by spaces. The
password comes from --gb-password or GRIDWATCH_CAMSIM_GB_PASSWORD and is never
printed.

Flags:
`

// The GB/T 28181 simulator's limits: a serial of six digits holds the
// device's serial times 100 plus the channel.
const (
	gbMaxChannels  = 99
	gbMaxSerial    = 9999
	gbStartAtOnce  = 64 // devices registering at the same time
	gbDefaultDevID = "32010600001180000001"
)

// faultNames lists the simulator's fault modes for the --fault help.
func faultNames() string {
	var names []string
	for _, f := range camsim.Faults() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

// runCamsim is `gridwatch camsim`: it serves simulated cameras (or, with
// --gb28181, simulated GB/T 28181 devices) until ctx ends.
func runCamsim(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("camsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, camsimUsage)
		fs.PrintDefaults()
	}
	n := fs.Int("n", 4, "number of cameras, numbered 1..n")
	addr := fs.String("addr", "127.0.0.1:8554", "RTSP listen address")
	fault := fs.String("fault", "", "fault for every camera: "+faultNames()+" (see camsim.Fault for what each does)")
	audio := fs.Bool("audio", false, "also serve the streams with sound (main-aac, main-pcma, …); with --gb28181, G.711 A-law in every channel's stream")
	// Env defaults are applied after parsing, so -h never prints a password.
	user := fs.String("user", "", "require this user name (env GRIDWATCH_CAMSIM_USER)")
	password := fs.String("password", "", "require this password (env GRIDWATCH_CAMSIM_PASSWORD)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var gb gbFlags
	fs.StringVar(&gb.server, "gb28181", "", "simulate GB/T 28181 devices registering with the platform at this SIP address (host:port) instead of RTSP cameras")
	fs.IntVar(&gb.devices, "gb-devices", 1, "GB/T 28181 devices (NVRs) to simulate")
	fs.IntVar(&gb.channels, "gb-channels", 4, fmt.Sprintf("camera channels of each device (0..%d)", gbMaxChannels))
	fs.StringVar(&gb.deviceID, "gb-device-id", gbDefaultDevID, "the first device's 20-digit ID; the next ones count up its serial")
	fs.StringVar(&gb.serverID, "gb-server-id", "34020000002000000001", "the platform's 20-digit SIP ID")
	fs.StringVar(&gb.realm, "gb-realm", "", "the platform's SIP realm (default: the first 10 digits of --gb-server-id)")
	fs.StringVar(&gb.password, "gb-password", "", "the devices' password (env GRIDWATCH_CAMSIM_GB_PASSWORD)")
	fs.StringVar(&gb.transport, "gb-transport", "udp", "SIP transport: udp or tcp")
	fs.StringVar(&gb.charset, "gb-charset", "GB2312", "encoding of the devices' MANSCDP bodies: GB2312 or UTF-8")
	fs.DurationVar(&gb.keepalive, "gb-keepalive", 60*time.Second, "keepalive interval")
	fs.BoolVar(&gb.noPosition, "gb-no-position", false, "report no position for any channel (they stay unplaced on the platform)")
	fs.DurationVar(&gb.alarmEvery, "gb-alarm-every", 0, "raise a motion alarm (video alarm, type 2) on a channel, in turn, this often (0: never)")
	fs.StringVar(&gb.localIP, "gb-local-ip", "", "the address the devices bind and announce (default: loopback for a loopback platform, else this host's route to it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("camsim: unexpected argument %q", fs.Arg(0))
	}
	if _, err := parseLevel(*logLevel); err != nil {
		return fmt.Errorf("camsim: --log-level %w", err)
	}
	// A flag of the other simulator is a mistake worth saying.
	var rtspOnly, gbOnly []string
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "n" || f.Name == "addr" || f.Name == "fault" || f.Name == "user" || f.Name == "password":
			rtspOnly = append(rtspOnly, "--"+f.Name)
		case strings.HasPrefix(f.Name, "gb-"):
			gbOnly = append(gbOnly, "--"+f.Name)
		}
	})
	log := NewLogger(&Config{LogLevel: *logLevel, LogFormat: "auto"}, stderr)
	if gb.server != "" {
		if len(rtspOnly) > 0 {
			return fmt.Errorf("camsim: %s set the RTSP cameras, which --gb28181 does not run (use --gb-devices, --gb-channels, --gb-password)", strings.Join(rtspOnly, ", "))
		}
		if gb.password == "" {
			gb.password = getenv("GRIDWATCH_CAMSIM_GB_PASSWORD")
		}
		gb.audio = *audio
		return runGBSim(ctx, gb, log, stdout)
	}
	if len(gbOnly) > 0 {
		return fmt.Errorf("camsim: %s need --gb28181 SERVER_ADDR (the platform's SIP address)", strings.Join(gbOnly, ", "))
	}
	if *user == "" {
		*user = getenv("GRIDWATCH_CAMSIM_USER")
	}
	if *password == "" {
		*password = getenv("GRIDWATCH_CAMSIM_PASSWORD")
	}

	sim, err := camsim.New(camsim.Config{
		N: *n, Addr: *addr, Logger: log,
		Username: *user, Password: *password,
		Fault: camsim.Fault(*fault), Audio: *audio,
	})
	if err != nil {
		return err
	}
	for cam := 1; cam <= *n; cam++ {
		fmt.Fprintln(stdout, redactURL(sim.URL(cam, camsim.StreamMain)))
	}
	return sim.Run(ctx)
}

// redactURL hides the password of a URL: it goes to a terminal or a log file.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unprintable URL)"
	}
	return u.Redacted()
}

// gbFlags are the GB/T 28181 simulator's settings.
type gbFlags struct {
	server             string
	devices, channels  int
	deviceID, serverID string
	realm, password    string
	transport, charset string
	keepalive          time.Duration
	noPosition, audio  bool
	localIP            string
	alarmEvery         time.Duration
}

// check validates the flags; the errors name the flag.
func (g *gbFlags) check() error {
	host, port, err := net.SplitHostPort(g.server)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("camsim: --gb28181 %q: want the platform's SIP address as host:port", g.server)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("camsim: --gb28181 %q: the port must be 1..65535", g.server)
	}
	if !manscdp.ValidID(g.serverID) {
		return fmt.Errorf("camsim: --gb-server-id %q: want a 20-digit GB/T 28181 ID", g.serverID)
	}
	if !manscdp.ValidID(g.deviceID) {
		return fmt.Errorf("camsim: --gb-device-id %q: want a 20-digit GB/T 28181 ID", g.deviceID)
	}
	if g.devices < 1 {
		return fmt.Errorf("camsim: --gb-devices %d: want at least 1", g.devices)
	}
	if first := gbSerial(g.deviceID); first+g.devices-1 > gbMaxSerial {
		return fmt.Errorf("camsim: --gb-devices %d from serial %d: the serials must stay within %d (the channels' IDs hold serial*100+channel)", g.devices, first, gbMaxSerial)
	}
	if g.channels < 0 || g.channels > gbMaxChannels {
		return fmt.Errorf("camsim: --gb-channels %d: want 0..%d", g.channels, gbMaxChannels)
	}
	switch strings.ToLower(g.transport) {
	case "udp", "tcp":
		g.transport = strings.ToLower(g.transport)
	default:
		return fmt.Errorf("camsim: --gb-transport %q: want udp or tcp", g.transport)
	}
	switch strings.ToUpper(g.charset) {
	case "GB2312":
		g.charset = "GB2312"
	case "UTF-8", "UTF8":
		g.charset = "UTF-8"
	default:
		return fmt.Errorf("camsim: --gb-charset %q: want GB2312 or UTF-8", g.charset)
	}
	if g.keepalive < 100*time.Millisecond || g.keepalive > time.Hour {
		return fmt.Errorf("camsim: --gb-keepalive %v: want 100ms to 1h", g.keepalive)
	}
	if g.alarmEvery != 0 && g.alarmEvery < 100*time.Millisecond {
		return fmt.Errorf("camsim: --gb-alarm-every %v: want 0 (never) or at least 100ms", g.alarmEvery)
	}
	if g.localIP != "" && net.ParseIP(g.localIP) == nil {
		return fmt.Errorf("camsim: --gb-local-ip %q is not an IP address", g.localIP)
	}
	return nil
}

// gbSerial is the serial of an ID: its last six digits.
func gbSerial(id string) int {
	n, _ := strconv.Atoi(id[14:])
	return n
}

// gbDeviceID is the ID of device i (from 0) counting from first.
func gbDeviceID(first string, i int) string {
	return fmt.Sprintf("%s%06d", first[:14], gbSerial(first)+i)
}

// gbChannelID is the ID of channel m (from 1) of a device: the device's
// centre and industry, type 131 (camera), its network digit, and its
// serial*100+m.
func gbChannelID(device string, m int) string {
	return fmt.Sprintf("%s%d%s%06d", device[:10], manscdp.TypeCamera, device[13:14], gbSerial(device)*100+m)
}

// gbPlaces spreads n positions over the demo city's grids: position k is
// in grid k mod G, at its centre the first time round, then towards each
// corner in turn, a little nearer it each round (never beyond 60 % of the
// way, so inside a convex grid: the demo's are; a point that would fall
// outside is put at the centre).
func gbPlaces(n int) ([][2]float64, error) {
	city, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo city: %w", err)
	}
	var rings [][][2]float64
	for _, f := range city {
		if f.Level != geo.LevelGrid || f.Geometry.NumPolygons() == 0 {
			continue
		}
		var ring [][2]float64
		coords := f.Geometry.Polygon(0).Coords()[0]
		for _, c := range coords[:len(coords)-1] {
			ring = append(ring, [2]float64{c[0], c[1]})
		}
		if len(ring) >= 3 {
			rings = append(rings, ring)
		}
	}
	if len(rings) == 0 {
		return nil, errors.New("demo city: no grids")
	}
	out := make([][2]float64, n)
	for k := range out {
		ring := rings[k%len(rings)]
		round := k / len(rings)
		var c [2]float64
		for _, p := range ring {
			c[0] += p[0] / float64(len(ring))
			c[1] += p[1] / float64(len(ring))
		}
		out[k] = c
		if round == 0 {
			continue
		}
		corner := ring[(round-1)%len(ring)]
		lap := (round - 1) / len(ring)
		f := 0.6 * (1 - 1/float64(lap+2)) // 0.3, 0.4, 0.45, … → 0.6
		p := [2]float64{c[0] + (corner[0]-c[0])*f, c[1] + (corner[1]-c[1])*f}
		if inRing(ring, p) {
			out[k] = p
		}
	}
	return out, nil
}

// inRing reports whether p is inside ring (even-odd rule).
func inRing(ring [][2]float64, p [2]float64) bool {
	in := false
	for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
		a, b := ring[i], ring[j]
		if (a[1] > p[1]) != (b[1] > p[1]) && p[0] < (b[0]-a[0])*(p[1]-a[1])/(b[1]-a[1])+a[0] {
			in = !in
		}
	}
	return in
}

// gbConfigs are the devices' configurations.
func gbConfigs(g gbFlags, log *slog.Logger) ([]gbsim.Config, error) {
	var places [][2]float64
	if !g.noPosition {
		var err error
		if places, err = gbPlaces(g.devices * g.channels); err != nil {
			return nil, err
		}
	}
	localIP := g.localIP
	if localIP == "" {
		localIP = localIPFor(g.server)
	}
	cfgs := make([]gbsim.Config, g.devices)
	for i := range cfgs {
		id := gbDeviceID(g.deviceID, i)
		chans := make([]gbsim.Channel, g.channels)
		for m := range chans {
			ch := gbsim.Channel{ID: gbChannelID(id, m+1), Name: fmt.Sprintf("模拟通道 %d-%d", gbSerial(id), m+1), NoPosition: g.noPosition}
			if !g.noPosition {
				p := places[i*g.channels+m]
				ch.Lon, ch.Lat = p[0], p[1]
			}
			chans[m] = ch
		}
		cfgs[i] = gbsim.Config{Server: g.server, ServerID: g.serverID, Realm: g.realm, Transport: g.transport,
			DeviceID: id, Password: g.password, Name: fmt.Sprintf("模拟 NVR %d", gbSerial(id)), Manufacturer: "Gridwatch", Model: "camsim",
			Channels: chans, Keepalive: g.keepalive, Charset: g.charset, LocalIP: localIP, Audio: g.audio, Logger: log}
	}
	return cfgs, nil
}

// localIPFor is the local address that reaches server: loopback for a
// loopback (or unnamed) platform, else the source of this host's route to
// it.
func localIPFor(server string) string {
	host, _, _ := net.SplitHostPort(server)
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return "127.0.0.1"
	}
	c, err := net.Dial("udp", server) // no packet is sent
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// runGBSim registers the devices (gbStartAtOnce at a time), prints them,
// and keeps them alive until ctx ends; then they unregister. A device the
// platform refuses stops them all, with the reason.
func runGBSim(ctx context.Context, g gbFlags, log *slog.Logger, stdout io.Writer) error {
	if err := g.check(); err != nil {
		return err
	}
	cfgs, err := gbConfigs(g, log.With("component", "gbsim"))
	if err != nil {
		return err
	}
	devs := make([]*gbsim.Device, len(cfgs))
	startCtx, cancel := context.WithCancel(ctx)
	var failOnce sync.Once
	var failed error
	sem := make(chan struct{}, gbStartAtOnce)
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if startCtx.Err() != nil {
				return
			}
			d, err := gbsim.Start(startCtx, cfg)
			if err != nil {
				if startCtx.Err() == nil {
					// The others would most likely fail the same way.
					failOnce.Do(func() { failed = fmt.Errorf("camsim: device %s: %w", cfg.DeviceID, err) })
				}
				cancel()
				return
			}
			devs[i] = d
		})
	}
	wg.Wait()
	cancel()
	closeAll := func() {
		var cw sync.WaitGroup
		for _, d := range devs {
			if d != nil {
				cw.Go(func() { _ = d.Close() })
			}
		}
		cw.Wait()
	}
	if failed != nil || ctx.Err() != nil {
		closeAll()
		return failed
	}
	for _, cfg := range cfgs {
		ids := []string{cfg.DeviceID}
		for _, ch := range cfg.Channels {
			ids = append(ids, ch.ID)
		}
		fmt.Fprintln(stdout, strings.Join(ids, " "))
	}
	log.Info("camsim: GB/T 28181 devices registered", "server", g.server, "devices", len(cfgs), "channels", len(cfgs)*g.channels,
		"transport", g.transport, "keepalive", g.keepalive)
	if g.alarmEvery > 0 && g.channels > 0 {
		// Each channel in turn raises a motion alarm, as a camera's
		// motion detection would.
		tick := time.NewTicker(g.alarmEvery)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				closeAll()
				return nil
			case <-tick.C:
			}
			i := n % (len(devs) * g.channels)
			d, ch := devs[i/g.channels], cfgs[i/g.channels].Channels[i%g.channels].ID
			if err := d.Alarm(ch, 2, 5, time.Now(), "移动侦测 motion detected"); err != nil {
				log.Warn("camsim: alarm", "channel", ch, "err", err)
			} else {
				log.Info("camsim: alarm raised", "channel", ch)
			}
		}
	}
	<-ctx.Done()
	closeAll()
	return nil
}
