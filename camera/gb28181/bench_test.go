package gb28181_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/auth"
	"gridwatch/camera/camsim"
	"gridwatch/camera/camsim/gbsim"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
	"gridwatch/geo"
	"gridwatch/internal/domain"
	"gridwatch/internal/testdb"
	"gridwatch/internal/testtool"
)

// The benchmarks measure the platform: the simulated devices (gbsim) and
// RTSP cameras (camsim) whose CPU must not count as the platform's run in
// a child process, this test binary started again with benchChildEnv set
// to a benchChild spec. The child is told what to run in the spec, says
// what it did on stdout, one line at a time, and stops when its stdin
// closes. Its init (below) runs before TestMain, so the child starts no
// database of its own.
const benchChildEnv = "GRIDWATCH_GB_BENCH_CHILD"

func init() {
	if spec := os.Getenv(benchChildEnv); spec != "" {
		os.Exit(benchChildMain(spec))
	}
}

const (
	benchPlatformID = "34020000002000000001"
	benchPassword   = "bench-secret"
)

var benchHash = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}

// benchDeviceID is device i (from 0) of the child.
func benchDeviceID(i int) string { return fmt.Sprintf("3201060000118%07d", i+1) }

// benchChannelID is channel m (from 1) of device i.
func benchChannelID(i, m int) string { return fmt.Sprintf("3201060000131%05d%02d", i+1, m) }

// benchChild is what the child process runs.
type benchChild struct {
	// Devices simulated devices (IDs benchDeviceID) with Channels channels
	// each, registering with Server, AtOnce at a time (a device whose
	// registration fails tries again a second later, as devices do).
	Server    string
	Transport string
	Devices   int
	Channels  int
	AtOnce    int
	Keepalive time.Duration
	Audio     bool
	// Positions: the channels report positions in the demo city (one
	// grid after another); else none.
	Positions bool
	// RTSP simulated RTSP cameras (camsim, with sound) on loopback.
	RTSP int
	// Bare: the child is BenchmarkRegister1000's baseline (bareMain)
	// instead.
	Bare bool
}

// benchChildMain is the child: it prints "go" as it starts registering,
// "registered SECONDS RETRIES" once every device has, "rtsp ADDR" for the
// cameras, then "ready", and runs until its stdin closes.
func benchChildMain(raw string) int {
	var spec benchChild
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 2
	}
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	if spec.Bare {
		return bareMain()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if spec.RTSP > 0 {
		sim, err := camsim.New(camsim.Config{N: spec.RTSP, Addr: "127.0.0.1:0", Audio: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			return 1
		}
		go func() { _ = sim.Run(ctx) }()
		fmt.Println("rtsp", sim.Addr())
	}
	var places [][2]float64
	if spec.Positions {
		places = gridCentres()
	}
	cfgs := make([]gbsim.Config, spec.Devices)
	for i := range cfgs {
		var chans []gbsim.Channel
		for m := 1; m <= spec.Channels; m++ {
			ch := gbsim.Channel{ID: benchChannelID(i, m), Name: fmt.Sprintf("通道 %d-%d", i+1, m), NoPosition: places == nil}
			if places != nil {
				k := i*spec.Channels + m - 1
				p := places[k%len(places)]
				// A few metres apart when a grid holds several.
				ch.Lon, ch.Lat = p[0]+float64(k/len(places))*2e-5, p[1]
			}
			chans = append(chans, ch)
		}
		cfgs[i] = gbsim.Config{Server: spec.Server, Transport: spec.Transport, ServerID: benchPlatformID, DeviceID: benchDeviceID(i), Password: benchPassword,
			Channels: chans, Keepalive: spec.Keepalive, Audio: spec.Audio}
	}
	devs := make([]*gbsim.Device, len(cfgs))
	var retries atomic.Int64
	sem := make(chan struct{}, max(spec.AtOnce, 1))
	var wg sync.WaitGroup
	fmt.Println("go")
	start := time.Now()
	failed := make(chan error, len(cfgs))
	for i, cfg := range cfgs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for try := 0; ; try++ {
				rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
				d, err := gbsim.Start(rctx, cfg)
				rcancel()
				if err == nil {
					devs[i] = d
					return
				}
				if try == 10 {
					failed <- fmt.Errorf("device %s: %w", cfg.DeviceID, err)
					return
				}
				retries.Add(1)
				time.Sleep(time.Second)
			}
		})
	}
	wg.Wait()
	close(failed)
	if err, ok := <-failed; ok {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	if len(cfgs) > 0 {
		fmt.Println("registered", time.Since(start).Seconds(), retries.Load())
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	// One device is told to unregister (the live benchmarks' NVR); many
	// are left to the platform's keepalive watch: the run is over.
	if len(devs) == 1 {
		_ = devs[0].Close()
	}
	return 0
}

// gridCentres are the centres of the demo city's grids.
func gridCentres() [][2]float64 {
	city, err := geo.ParseFeatureCollection(geo.DemoCity(), geo.ParseOptions{})
	if err != nil {
		panic(err)
	}
	var out [][2]float64
	for _, f := range city {
		if f.Level != geo.LevelGrid {
			continue
		}
		ring := f.Geometry.Polygon(0).Coords()[0]
		ring = ring[:len(ring)-1]
		var c [2]float64
		for _, p := range ring {
			c[0] += p[0] / float64(len(ring))
			c[1] += p[1] / float64(len(ring))
		}
		out = append(out, c)
	}
	return out
}

// benchProcess is the running child process.
type benchProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
}

func startBenchChild(b *testing.B, spec benchChild) *benchProcess {
	b.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &benchProcess{cmd: cmd, stdin: stdin, lines: make(chan string, 64), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	go func() { _ = cmd.Wait(); close(c.done) }()
	b.Cleanup(c.stop)
	return c
}

// expect waits for the child's next line, which must start with prefix,
// and returns the rest.
func (c *benchProcess) expect(b *testing.B, prefix string, within time.Duration) string {
	b.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			b.Fatalf("the child ended before %q", prefix)
		}
		rest, found := strings.CutPrefix(line, prefix)
		if !found {
			b.Fatalf("the child said %q, want %q", line, prefix)
		}
		return strings.TrimSpace(rest)
	case <-time.After(within):
		b.Fatalf("the child did not say %q within %s", prefix, within)
	}
	return ""
}

// stop closes its stdin and waits (killing it after 20 s).
func (c *benchProcess) stop() {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// cpu is the child's CPU time so far.
func (c *benchProcess) cpu() time.Duration {
	st, err := procStat(c.cmd.Process.Pid)
	if err != nil {
		return 0
	}
	return st.cpu
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procTick is a clock tick of /proc's CPU times (USER_HZ, 100 on Linux).
const procTick = 10 * time.Millisecond

type procTimes struct {
	ppid     int
	cpu      time.Duration // utime + stime
	children time.Duration // cutime + cstime: its children that ended
}

func procStat(pid int) (procTimes, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procTimes{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, the state
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	return procTimes{ppid: int(n(4)), cpu: time.Duration(n(14)+n(15)) * procTick, children: time.Duration(n(16)+n(17)) * procTick}, nil
}

// dbMeter measures the CPU of the PostgreSQL cluster the database is in:
// its postmaster, the children it has (backends, background workers) and
// those that ended (the postmaster's cutime and cstime).
type dbMeter struct{ postmaster int }

func newDBMeter(b *testing.B, pool *pgxpool.Pool) *dbMeter {
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	st, err := procStat(backend)
	if err != nil {
		b.Logf("no database CPU figure: %v", err)
		return nil
	}
	return &dbMeter{postmaster: st.ppid}
}

func (m *dbMeter) cpu() time.Duration {
	if m == nil {
		return 0
	}
	pm, err := procStat(m.postmaster)
	if err != nil {
		return 0
	}
	total := pm.cpu + pm.children
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if st, err := procStat(pid); err == nil && st.ppid == m.postmaster {
			total += st.cpu
		}
	}
	return total
}

// benchRig is a platform on a real database with the demo city, and what
// it tells: the devices online and the catalogs read.
type benchRig struct {
	pool  *pgxpool.Pool
	d     *domain.Domain
	store *gb28181.Store
	srv   *gb28181.Server
	stop  func()

	mu       sync.Mutex
	online   map[string]bool
	catalogs map[string]bool
	offline  int // devices that went offline
	change   chan struct{}
}

func newBenchRig(b *testing.B, tune func(*gb28181.Config)) *benchRig {
	b.Helper()
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	pool := testdb.New(b)
	d := domain.New(pool, domain.Options{Auth: auth.Options{Hash: benchHash}})
	if err := d.SeedDemo(context.Background(), domain.DemoOptions{}); err != nil {
		b.Fatal(err)
	}
	r := &benchRig{pool: pool, d: d, online: map[string]bool{}, catalogs: map[string]bool{}, change: make(chan struct{}, 1)}
	r.store = gb28181.NewStore(pool, d.Cameras, "node-a")
	cfg := gb28181.Config{Addr: "127.0.0.1:0", ID: benchPlatformID, Password: benchPassword, Store: r.store,
		Logger: slog.New(slog.DiscardHandler),
		OnDevice: func(id string, on bool) {
			r.mu.Lock()
			if on {
				r.online[id] = true
			} else {
				delete(r.online, id)
				r.offline++
			}
			r.mu.Unlock()
			r.kick()
		},
		OnCatalog: func(id string) {
			r.mu.Lock()
			r.catalogs[id] = true
			r.mu.Unlock()
			r.kick()
		},
	}
	if tune != nil {
		tune(&cfg)
	}
	srv, err := gb28181.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	r.srv = srv
	// Stopping marks every device offline, one transaction each: a
	// minute for a thousand on a loaded machine.
	r.stop = testtool.Run(b, time.Minute, srv.Run)
	b.Cleanup(r.stop)
	return r
}

func (r *benchRig) kick() {
	select {
	case r.change <- struct{}{}:
	default:
	}
}

// counts are the devices online, the catalogs read and the offline
// events so far.
func (r *benchRig) counts() (online, catalogs, offline int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.online), len(r.catalogs), r.offline
}

// wait waits for cond, checked at each change the platform tells.
func (r *benchRig) wait(b *testing.B, what string, within time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-r.change:
		case <-t.C:
		case <-deadline.C:
			on, cat, _ := r.counts()
			b.Fatalf("timed out waiting for %s (%d online, %d catalogs)", what, on, cat)
		}
	}
}

// heapInUse is the heap in use after a collection, and the goroutines.
func heapInUse() (uint64, int) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, runtime.NumGoroutine()
}

// BenchmarkRegister1000: 1,000 simulated NVRs (gbsim, two positioned
// channels each, keepalive every second) register at once with one
// platform on a real database with the demo city, which reads each one's
// DeviceInfo and catalog (2,000 channels become cameras in their grids)
// and subscribes to its catalog; then 10 s of steady keepalives (1,000 a
// second), over SIP on UDP and, apart, on TCP (a connection per device).
//
// The devices run in a child process, so the platform's CPU is this
// process's (getrusage; nothing else runs in it: the rig's callbacks
// only count). The database's CPU is its cluster's, from /proc (the
// postmaster, its backends, and those that ended), and the devices' is
// the child's, both given apart. Over UDP the window starts 33 s after
// the last device came online: sipgo keeps a request's server transaction
// 32 s after its answer (Timer J = 64×T1), so only then are the heap and
// the timers' work at their steady level.
//
// The baseline, in the same window: a bare sipgo server in another child
// process, answering every REGISTER and MESSAGE 200 and doing nothing
// else (no digest, no body parsed, no database), kept alive by another
// 1,000 devices the same way: what SIP over sipgo costs at the least. It
// runs beside the platform rather than before or after it because this
// machine's load moves, and with it the CPU time a keepalive takes.
//
// Metrics:
//   - s-to-online: from the child's first REGISTER until the platform has
//     written all 1,000 online; s-to-catalog: until all catalogs are in;
//   - ms-cpu/register, ms-db/register: platform and database CPU per
//     device over that burst (registration, DeviceInfo, catalog,
//     subscription);
//   - cpu-%/1000dev, db-cpu-%, dev-cpu-%: in the steady window, percent of
//     one core; µs-cpu/keepalive: the platform's CPU per keepalive, and
//     -bare the baseline's; ratio: the platform's over the baseline's;
//   - MB-heap, KB-heap/dev, goroutines/dev: the platform's heap in use (after
//     a collection) and goroutines with the devices online, over before
//     (-bare: the baseline's);
//   - offline-events: devices the platform took offline in the window
//     (missed keepalives); online-at-end: devices online after it, and
//     stale-at-end those of them whose last keepalive written is over 3 s
//     old; sip-udp-drops: datagrams the kernel dropped at the platform's
//     SIP socket in the window (its receive buffer full);
//   - ms-devices-list: Store.Devices (the API's device list) with 1,000
//     devices, the median of five;
//   - s-stop, online-after-stop: the platform stopped with its 1,000
//     devices online (a node restarting): how long Run took to return, and
//     the devices still marked online after it.
//
// With GRIDWATCH_GB_BENCH_PROFILE=DIR set, the window's CPU profile and the
// heap and goroutine profiles at its end are written to DIR.
func BenchmarkRegister1000(b *testing.B) {
	for _, transport := range []string{"udp", "tcp"} {
		b.Run(transport, func(b *testing.B) {
			for b.Loop() {
				benchRegister(b, transport)
			}
		})
	}
}

func benchRegister(b *testing.B, transport string) {
	const (
		devices   = 1000
		channels  = 2
		keepalive = time.Second
		window    = 10 * time.Second
	)
	settle := 2 * time.Second
	if transport == "udp" {
		settle = 33 * time.Second
	}
	// The baseline first: its devices register before the platform's, so
	// they do not share its registration burst, and keep alive through
	// the same window.
	bare := startBenchChild(b, benchChild{Bare: true})
	bareAddr := bare.expect(b, "bare", time.Minute)
	bareHeap0 := bare.heap(b)
	bareDevs := startBenchChild(b, benchChild{Server: bareAddr, Transport: transport, Devices: devices, AtOnce: devices, Keepalive: keepalive})
	bareDevs.expect(b, "go", time.Minute)
	bareDevs.expect(b, "registered", 3*time.Minute)
	bareDevs.expect(b, "ready", time.Minute)
	if h := bare.heap(b); h.registered != devices {
		b.Fatalf("the baseline has %d devices registered, want %d", h.registered, devices)
	}

	r := newBenchRig(b, func(c *gb28181.Config) {
		c.Keepalive, c.MissedKeepalives = keepalive, 3
	})
	db := newDBMeter(b, r.pool)
	heap0, g0 := heapInUse()
	cpu0, db0 := selfCPU(), db.cpu()
	ch := startBenchChild(b, benchChild{Server: r.srv.Addr(), Transport: transport, Devices: devices, Channels: channels, AtOnce: devices,
		Keepalive: keepalive, Positions: true})
	ch.expect(b, "go", time.Minute)
	start := time.Now()
	r.wait(b, "all online", 3*time.Minute, func() bool { on, _, _ := r.counts(); return on == devices })
	toOnline := time.Since(start)
	r.wait(b, "all catalogs", 3*time.Minute, func() bool { _, cat, _ := r.counts(); return cat == devices })
	toCatalog := time.Since(start)
	burstCPU, burstDB := selfCPU()-cpu0, db.cpu()-db0
	reg := ch.expect(b, "registered", time.Minute)
	ch.expect(b, "ready", time.Minute)
	var cameras int
	if err := r.pool.QueryRow(context.Background(), `SELECT count(*) FROM gb_channels WHERE camera_id IS NOT NULL`).Scan(&cameras); err != nil {
		b.Fatal(err)
	}
	if cameras != devices*channels {
		b.Fatalf("%d channels became cameras, want %d", cameras, devices*channels)
	}
	time.Sleep(time.Until(start.Add(toOnline + settle)))

	_, port, _ := net.SplitHostPort(r.srv.Addr())
	_, _, off0 := r.counts()
	drops0 := udpDrops(port)
	cpu1, db1, dev1, bare1 := selfCPU(), db.cpu(), ch.cpu(), bare.cpu()
	prof := os.Getenv("GRIDWATCH_GB_BENCH_PROFILE")
	if prof != "" {
		f, err := os.Create(filepath.Join(prof, "register-"+transport+"-cpu.prof"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
	}
	t1 := time.Now()
	time.Sleep(window)
	wall := time.Since(t1)
	cpu, dbc, dev, barec := selfCPU()-cpu1, db.cpu()-db1, ch.cpu()-dev1, bare.cpu()-bare1
	if prof != "" {
		pprof.StopCPUProfile()
	}
	drops := udpDrops(port) - drops0
	_, _, off1 := r.counts()
	heap1, g1 := heapInUse()
	bareHeap1 := bare.heap(b)
	if prof != "" {
		for _, name := range []string{"heap", "goroutine"} {
			f, err := os.Create(filepath.Join(prof, "register-"+transport+"-"+name+".prof"))
			if err != nil {
				b.Fatal(err)
			}
			_ = pprof.Lookup(name).WriteTo(f, 0)
			f.Close()
		}
	}
	ctx := context.Background()
	var online, stale int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE online),
		count(*) FILTER (WHERE online AND last_keepalive < now() - interval '3 seconds') FROM gb_devices`).Scan(&online, &stale); err != nil {
		b.Fatal(err)
	}
	// The device list as the API reads it, with 1,000 devices: the median
	// of five.
	var lists []time.Duration
	for range 5 {
		t := time.Now()
		list, err := r.store.Devices(ctx)
		if err != nil || len(list) != devices {
			b.Fatalf("device list: %d, %v", len(list), err)
		}
		lists = append(lists, time.Since(t))
	}
	slices.Sort(lists)
	// The node stops with its devices online, as in a restart: it marks
	// them offline on the way out, within its own 3 s.
	t := time.Now()
	r.stop()
	stopped := time.Since(t)
	var left int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM gb_devices WHERE online`).Scan(&left); err != nil {
		b.Fatal(err)
	}

	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	perKeepalive := func(d time.Duration) float64 {
		return float64(d.Microseconds()) / (wall.Seconds() * devices / keepalive.Seconds())
	}
	b.ReportMetric(toOnline.Seconds(), "s-to-online")
	b.ReportMetric(toCatalog.Seconds(), "s-to-catalog")
	b.ReportMetric(float64(burstCPU.Microseconds())/1000/devices, "ms-cpu/register")
	b.ReportMetric(float64(burstDB.Microseconds())/1000/devices, "ms-db/register")
	b.ReportMetric(pct(cpu), "cpu-%/1000dev")
	b.ReportMetric(pct(barec), "cpu-%/1000dev-bare")
	b.ReportMetric(pct(dbc), "db-cpu-%")
	b.ReportMetric(pct(dev), "dev-cpu-%")
	b.ReportMetric(perKeepalive(cpu), "µs-cpu/keepalive")
	b.ReportMetric(perKeepalive(barec), "µs-cpu/keepalive-bare")
	b.ReportMetric(cpu.Seconds()/barec.Seconds(), "ratio")
	b.ReportMetric(float64(int64(heap1)-int64(heap0))/(1<<20), "MB-heap")
	b.ReportMetric(float64(int64(heap1)-int64(heap0))/1024/devices, "KB-heap/dev")
	b.ReportMetric(float64(bareHeap1.inuse-bareHeap0.inuse)/1024/devices, "KB-heap/dev-bare")
	b.ReportMetric(float64(g1-g0)/devices, "goroutines/dev")
	b.ReportMetric(float64(bareHeap1.goroutines-bareHeap0.goroutines)/devices, "goroutines/dev-bare")
	b.ReportMetric(float64(off1-off0), "offline-events")
	b.ReportMetric(float64(online), "online-at-end")
	b.ReportMetric(float64(stale), "stale-at-end")
	b.ReportMetric(float64(drops), "sip-udp-drops")
	b.ReportMetric(float64(lists[2].Microseconds())/1000, "ms-devices-list")
	b.ReportMetric(stopped.Seconds(), "s-stop")
	b.ReportMetric(float64(left), "online-after-stop")
	b.ReportMetric(0, "ns/op")
	b.Logf("%s: the devices saw themselves all registered after %s (s, retries)", transport, reg)
	ch.stop()
	bareDevs.stop()
	bare.stop()
}

// udpDrops is the kernel's count of datagrams dropped at the UDP sockets
// bound to port (the last column of /proc/net/udp).
func udpDrops(port string) int64 {
	p, _ := strconv.Atoi(port)
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	suffix := fmt.Sprintf(":%04X", p)
	var n int64
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		d, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
		n += d
	}
	return n
}

// bareHeap is what the baseline's child says of itself.
type bareHeap struct {
	inuse, goroutines, registered int64
}

// heap asks the baseline's child for its heap in use (after a
// collection), goroutines and the devices registered.
func (c *benchProcess) heap(b *testing.B) bareHeap {
	b.Helper()
	if _, err := io.WriteString(c.stdin, "heap\n"); err != nil {
		b.Fatal(err)
	}
	var h bareHeap
	if _, err := fmt.Sscan(c.expect(b, "heap", time.Minute), &h.inuse, &h.goroutines, &h.registered); err != nil {
		b.Fatal(err)
	}
	return h
}

// bareMain is the baseline's child: a bare sipgo server on UDP and TCP
// (one port) that answers every REGISTER and MESSAGE 200. It prints
// "bare ADDR", answers "heap" on stdin with "heap INUSE GOROUTINES
// REGISTERED", and ends when its stdin closes.
func bareMain() int {
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(benchPlatformID),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	var mu sync.Mutex
	registered := map[string]bool{}
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		if f := req.From(); f != nil {
			mu.Lock()
			registered[f.Address.User] = true
			mu.Unlock()
		}
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Expires", "3600"))
		_ = tx.Respond(res)
	})
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	var udp net.PacketConn
	var tcp net.Listener
	for {
		if udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			fmt.Fprintln(os.Stderr, "bare:", err)
			return 1
		}
		if tcp, err = net.Listen("tcp", udp.LocalAddr().String()); err == nil {
			break
		}
		udp.Close()
	}
	go func() { _ = srv.ServeUDP(udp) }()
	go func() { _ = srv.ServeTCP(tcp) }()
	fmt.Println("bare", udp.LocalAddr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "heap" {
			inuse, g := heapInUse()
			mu.Lock()
			n := len(registered)
			mu.Unlock()
			fmt.Println("heap", inuse, g, n)
		}
	}
	_ = srv.Close()
	return 0
}

// liveSet is one stream per channel pulled into a hub by a supervisor,
// each hub with one subscriber (video and sound) counting what it gets.
type liveSet struct {
	sups     []*pull.Supervisor
	pictures []atomic.Int64
	sounds   []atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startLive(sources []pull.Source, urls []string) *liveSet {
	n := max(len(sources), len(urls))
	ls := &liveSet{pictures: make([]atomic.Int64, n), sounds: make([]atomic.Int64, n)}
	ctx, cancel := context.WithCancel(context.Background())
	ls.cancel = cancel
	for i := range n {
		hub := stream.NewHub(stream.HubOptions{})
		sub := hub.SubscribeAV()
		cfg := pull.Config{Hub: hub}
		if sources != nil {
			cfg.Source = sources[i]
		} else {
			cfg.URL = urls[i]
		}
		sup := pull.NewSupervisor(cfg)
		ls.sups = append(ls.sups, sup)
		ls.wg.Go(func() { _ = sup.Run(ctx) })
		ls.wg.Go(func() {
			defer hub.Close()
			defer sub.Close()
			var buf []*stream.AccessUnit
			for {
				aus, err := sub.Next(ctx, buf[:0])
				if err != nil {
					return
				}
				for _, au := range aus {
					if au.IsAudio() {
						ls.sounds[i].Add(1)
					} else {
						ls.pictures[i].Add(1)
					}
				}
				clear(aus)
				buf = aus
			}
		})
	}
	return ls
}

// warm waits until every stream has brought pictures pictures.
func (ls *liveSet) warm(b *testing.B, what string, pictures int64) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for i := range ls.pictures {
		for ls.pictures[i].Load() < pictures {
			if time.Now().After(deadline) {
				b.Fatalf("%s stream %d: %d pictures in a minute; state %+v", what, i, ls.pictures[i].Load(), ls.sups[i].State())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (ls *liveSet) totals() (pictures, sounds int64) {
	for i := range ls.pictures {
		pictures += ls.pictures[i].Load()
		sounds += ls.sounds[i].Load()
	}
	return pictures, sounds
}

func (ls *liveSet) stop() {
	ls.cancel()
	ls.wg.Wait()
}

// liveFigures add up one kind of stream's windows.
type liveFigures struct {
	wall, cpu, dev   time.Duration
	pictures, sounds int64
	heap             int64
}

// BenchmarkLiveGB20 pulls 20 live GB/T 28181 channels (one simulated NVR
// streaming the H.264 640x360 25 fps clip with G.711 A-law, PS over RTP
// over UDP) with pull.Supervisor into 20 hubs with one subscriber each,
// and, as the baseline in the same run, the same clip and sound from 20
// simulated RTSP cameras (camsim's main-pcma: RTP over RTSP/TCP) pulled
// the same way. The simulators run in a child process; the figure is this
// process's CPU (getrusage) per second of wall time, per channel: the
// platform's SIP, the media sockets, the program-stream demuxing (GB) or
// the RTP depacketising (RTSP), the supervisors, the hubs and one reader
// each. The kinds take turns (GB, RTSP, GB, RTSP; 5 s each after 2 s of
// warm-up) so a change in the machine's load falls on both. The child's
// CPU in the same windows (the simulators' side: PS muxing vs RTSP
// serving) is reported apart as dev-cpu-….
func BenchmarkLiveGB20(b *testing.B) {
	const (
		channels = 20
		window   = 5 * time.Second
		rounds   = 2
	)
	for b.Loop() {
		r := newBenchRig(b, nil)
		ch := startBenchChild(b, benchChild{Server: r.srv.Addr(), Devices: 1, Channels: channels, AtOnce: 1, Keepalive: 10 * time.Second,
			Audio: true, RTSP: channels})
		rtspAddr := ch.expect(b, "rtsp", time.Minute)
		ch.expect(b, "go", time.Minute)
		ch.expect(b, "registered", time.Minute)
		ch.expect(b, "ready", time.Minute)
		dev := benchDeviceID(0)
		r.wait(b, "the catalog", time.Minute, func() bool { _, cat, _ := r.counts(); return cat == 1 })
		time.Sleep(time.Second)
		heap0, _ := heapInUse()
		// Idle: the platform with the NVR registered, nothing streaming.
		idle0, idleT := selfCPU(), time.Now()
		time.Sleep(2 * time.Second)
		idle := float64((selfCPU() - idle0).Microseconds()) / 1000 / time.Since(idleT).Seconds()

		var gb, rtsp liveFigures
		run := func(kind string, f *liveFigures) {
			var ls *liveSet
			if kind == "gb" {
				var srcs []pull.Source
				for m := 1; m <= channels; m++ {
					srcs = append(srcs, gb28181.Source{Server: r.srv, Device: dev, Channel: benchChannelID(0, m), Transport: gb28181.UDP})
				}
				ls = startLive(srcs, nil)
			} else {
				var urls []string
				for cam := 1; cam <= channels; cam++ {
					urls = append(urls, fmt.Sprintf("rtsp://%s/cam/%d/%s", rtspAddr, cam, camsim.StreamMainPCMA))
				}
				ls = startLive(nil, urls)
			}
			defer ls.stop()
			ls.warm(b, kind, 50) // 2 s
			p0, s0 := ls.totals()
			cpu0, dev0, t0 := selfCPU(), ch.cpu(), time.Now()
			time.Sleep(window)
			f.wall += time.Since(t0)
			f.cpu += selfCPU() - cpu0
			f.dev += ch.cpu() - dev0
			p1, s1 := ls.totals()
			f.pictures += p1 - p0
			f.sounds += s1 - s0
			h, _ := heapInUse()
			f.heap = max(f.heap, int64(h)-int64(heap0))
			for i, sup := range ls.sups {
				if st := sup.State(); st.Status != pull.StatusOnline || !strings.Contains(st.Audio, "G.711") {
					b.Errorf("%s stream %d: %+v", kind, i, st)
				}
			}
		}
		for range rounds {
			run("gb", &gb)
			run("rtsp", &rtsp)
		}
		perChannel := func(f liveFigures, d time.Duration) float64 {
			return float64(d.Microseconds()) / 1000 / f.wall.Seconds() / channels
		}
		fps := func(f liveFigures) float64 { return float64(f.pictures) / f.wall.Seconds() / channels }
		b.ReportMetric(perChannel(gb, gb.cpu), "cpu-ms/s/channel-gb")
		b.ReportMetric(perChannel(rtsp, rtsp.cpu), "cpu-ms/s/channel-rtsp")
		b.ReportMetric(float64(gb.cpu)/gb.wall.Seconds()/(float64(rtsp.cpu)/rtsp.wall.Seconds()), "ratio")
		b.ReportMetric(perChannel(gb, gb.dev), "dev-cpu-ms/s/channel-gb")
		b.ReportMetric(perChannel(rtsp, rtsp.dev), "dev-cpu-ms/s/channel-rtsp")
		b.ReportMetric(idle, "idle-cpu-ms/s")
		b.ReportMetric(fps(gb), "fps-gb")
		b.ReportMetric(fps(rtsp), "fps-rtsp")
		b.ReportMetric(float64(gb.sounds)/gb.wall.Seconds()/channels, "sounds/s-gb")
		b.ReportMetric(float64(rtsp.sounds)/rtsp.wall.Seconds()/channels, "sounds/s-rtsp")
		b.ReportMetric(float64(gb.heap)/1024/channels, "KB-heap/channel-gb")
		b.ReportMetric(float64(rtsp.heap)/1024/channels, "KB-heap/channel-rtsp")
		b.ReportMetric(0, "ns/op")
		ch.stop()
	}
}

// BenchmarkInviteFirstPicture: a viewer of a channel nobody watches. From
// the supervisor's start (the INVITE: a media port, INVITE, 200, ACK, the
// device's first RTP) until the hub's subscriber has the first picture,
// 30 times per media transport, p50 and p95. The device is in this
// process (the figure is a latency, not a CPU share); gbsim starts every
// stream at a keyframe, as devices asked for a live stream do, so no GOP
// is waited for.
func BenchmarkInviteFirstPicture(b *testing.B) {
	const invites = 30
	r := newBenchRig(b, nil)
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	dev, err := gbsim.Start(sctx, gbsim.Config{Server: r.srv.Addr(), ServerID: benchPlatformID, DeviceID: benchDeviceID(0), Password: benchPassword,
		Channels: []gbsim.Channel{{ID: benchChannelID(0, 1), Name: "首帧", NoPosition: true}}, Audio: true})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dev.Close() })
	r.wait(b, "the catalog", time.Minute, func() bool { _, cat, _ := r.counts(); return cat == 1 })

	for _, transport := range []string{gb28181.UDP, gb28181.TCPPassive, gb28181.TCPActive} {
		b.Run(transport, func(b *testing.B) {
			for b.Loop() {
				var took []time.Duration
				for range invites {
					hub := stream.NewHub(stream.HubOptions{})
					sub := hub.Subscribe()
					sup := pull.NewSupervisor(pull.Config{Hub: hub,
						Source: gb28181.Source{Server: r.srv, Device: benchDeviceID(0), Channel: benchChannelID(0, 1), Transport: transport}})
					rctx, stop := context.WithCancel(ctx)
					done := make(chan struct{})
					start := time.Now()
					go func() { _ = sup.Run(rctx); close(done) }()
					nctx, ncancel := context.WithTimeout(ctx, 30*time.Second)
					aus, err := sub.Next(nctx, nil)
					d := time.Since(start)
					ncancel()
					stop()
					<-done
					sub.Close()
					hub.Close()
					if err != nil || len(aus) == 0 || !aus[0].Key {
						b.Fatalf("%s: %d pictures, %v; state %+v", transport, len(aus), err, sup.State())
					}
					took = append(took, d)
					deadline := time.Now().Add(10 * time.Second)
					for dev.Streams() > 0 {
						if time.Now().After(deadline) {
							b.Fatal("the device's stream did not end")
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				slices.Sort(took)
				p := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000 }
				b.ReportMetric(p(0.5), "ms-p50")
				b.ReportMetric(p(0.95), "ms-p95")
				b.ReportMetric(p(1), "ms-max")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}
