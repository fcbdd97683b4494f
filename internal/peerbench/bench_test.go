package peerbench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gridwatch/camera/camsim"
	"gridwatch/internal/pgcluster"
)

// BenchmarkPeers is make bench-peers: go2rtc, MediaMTX and gridwatch, one
// after another, relay the same simulated cameras to the same viewers, at
// each load of GRIDWATCH_PEERS_LOADS (default 10x50,10x10,100x5: cameras ×
// viewers each) over RTSP, and go2rtc and gridwatch at each load of
// GRIDWATCH_PEERS_MSE_LOADS (default 10x50) over MSE, as browsers watch
// (GRIDWATCH_PEERS_PROTOCOLS: rtsp,mse picks). GRIDWATCH_PEERS_BIN is the folder with the three binaries
// (go2rtc, mediamtx, gridwatch; NAME.commit beside each says what it was
// built from); GRIDWATCH_PEERS_SERVERS picks some of them;
// GRIDWATCH_PEERS_OUT names the Markdown file the table goes to.
func BenchmarkPeers(b *testing.B) {
	bin := os.Getenv("GRIDWATCH_PEERS_BIN")
	if bin == "" {
		b.Fatal("GRIDWATCH_PEERS_BIN is not set: run make bench-peers, which builds go2rtc, MediaMTX and gridwatch into a folder and sets it")
	}
	loads, err := parseLoads(cmp.Or(os.Getenv("GRIDWATCH_PEERS_LOADS"), "10x50,10x10,100x5"))
	if err != nil {
		b.Fatal(err)
	}
	servers := strings.Split(cmp.Or(os.Getenv("GRIDWATCH_PEERS_SERVERS"), "go2rtc,mediamtx,gridwatch"), ",")
	for _, s := range servers {
		if _, err := os.Stat(filepath.Join(bin, s)); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
	var opts Options
	if w := os.Getenv("GRIDWATCH_PEERS_WINDOW"); w != "" {
		if opts.Window, err = time.ParseDuration(w); err != nil {
			b.Fatalf("GRIDWATCH_PEERS_WINDOW: %v", err)
		}
	}

	// GRIDWATCH_PEERS_PROFILE=DIR: a gridwatch built with -tags pprof
	// leaves its CPU profile over the window, and its heap and goroutines
	// at the window's end, in DIR.
	profiles := os.Getenv("GRIDWATCH_PEERS_PROFILE")

	rounds := 3
	if r := os.Getenv("GRIDWATCH_PEERS_ROUNDS"); r != "" {
		if rounds, err = strconv.Atoi(r); err != nil || rounds < 1 {
			b.Fatalf("GRIDWATCH_PEERS_ROUNDS: %q is not a positive number", r)
		}
	}

	ctx := context.Background()
	var pg *pgcluster.Cluster
	pgDir, err := os.MkdirTemp("", "peerbench-pg-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(pgDir)
	dbs := 0
	var results []Result
	mseLoads, err := parseLoads(cmp.Or(os.Getenv("GRIDWATCH_PEERS_MSE_LOADS"), "10x50"))
	if err != nil {
		b.Fatal(err)
	}
	type run struct {
		proto   string
		ld      Load
		servers []string
	}
	var plan []run
	for proto := range strings.SplitSeq(cmp.Or(os.Getenv("GRIDWATCH_PEERS_PROTOCOLS"), "rtsp,mse"), ",") {
		switch proto {
		case ProtoRTSP:
			for _, ld := range loads {
				plan = append(plan, run{proto, ld, servers})
			}
		case ProtoMSE:
			// MediaMTX has no MSE (its browsers play HLS or WebRTC).
			var with []string
			for _, name := range servers {
				if name != "mediamtx" {
					with = append(with, name)
				}
			}
			for _, ld := range mseLoads {
				plan = append(plan, run{proto, ld, with})
			}
		default:
			b.Fatalf("GRIDWATCH_PEERS_PROTOCOLS: %q is not rtsp or mse", proto)
		}
	}
	for _, step := range plan {
		ld, servers := step.ld, step.servers
		sim, err := camsim.New(camsim.Config{N: ld.Cameras, Addr: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		sctx, stopSim := context.WithCancel(ctx)
		simDone := make(chan struct{})
		go func() { defer close(simDone); _ = sim.Run(sctx) }()
		cams := make([]string, ld.Cameras)
		for i := range cams {
			cams[i] = sim.URL(i+1, "main")
		}
		runs := map[string][]Result{}
		// Each round starts with the next server, so that none is always
		// first after a load's cameras start, or always after the same one.
		for round := range rounds {
			for k := range servers {
				name := servers[(round+k)%len(servers)]
				b.Run(fmt.Sprintf("%s/load=%s/server=%s/round=%d", step.proto, ld, name, round+1), func(b *testing.B) {
					for b.Loop() {
						dir := b.TempDir()
						var s *Server
						var err error
						sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
						switch name {
						case "go2rtc":
							s, err = StartGo2RTC(sctx, filepath.Join(bin, name), dir, cams)
						case "mediamtx":
							s, err = StartMediaMTX(sctx, filepath.Join(bin, name), dir, cams)
						case "gridwatch":
							if pg == nil {
								pg, err = pgcluster.Start(sctx, pgcluster.Options{Dir: filepath.Join(pgDir, "pg"), Fast: true})
								if err != nil {
									b.Fatalf("postgres: %v", err)
								}
							}
							dbs++
							db := "peers" + strconv.Itoa(dbs)
							if err = pg.EnsureDatabase(sctx, db); err == nil {
								s, err = StartGridwatch(sctx, filepath.Join(bin, name), dir, pg.DSN(db), "peerbench-admin-token-0123456789", cams)
							}
						default:
							err = fmt.Errorf("unknown server %q", name)
						}
						cancel()
						if err != nil {
							b.Fatal(err)
						}
						o := opts
						o.Protocol = step.proto
						if profiles != "" {
							o.OnWindow = func(s *Server, window time.Duration) { profile(b, s, window, profiles) }
						}
						r, err := Measure(ctx, s, ld, o)
						s.Stop()
						if err != nil {
							b.Fatalf("%v\n--- %s log (tail) ---\n%s", err, name, s.Logs())
						}
						runs[name] = append(runs[name], r)
						b.ReportMetric(r.Cores, "cores")
						b.ReportMetric(float64(r.RSS)/(1<<20), "RSS-MiB")
						b.ReportMetric(r.CtxSw, "ctxsw/s")
						b.ReportMetric(r.WritesPerPicture, "writes/pic")
						b.ReportMetric(r.FPS, "fps/viewer")
						b.ReportMetric(float64(r.JoinP(0.5).Microseconds())/1000, "join-p50-ms")
						b.ReportMetric(float64(r.JoinP(0.95).Microseconds())/1000, "join-p95-ms")
					}
				})
			}
		}
		for _, name := range servers {
			if len(runs[name]) > 0 {
				results = append(results, Merge(runs[name]))
			}
		}
		stopSim()
		<-simDone
	}
	if pg != nil {
		pg.Close()
	}
	if out := os.Getenv("GRIDWATCH_PEERS_OUT"); out != "" && len(results) > 0 {
		table := Table(results, versions(bin, servers))
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("\n%s", table)
	}
}

func versions(bin string, servers []string) map[string]string {
	v := map[string]string{}
	for _, s := range servers {
		v[s] = Commit(filepath.Join(bin, s))
	}
	if v["gridwatch"] == "" {
		if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
			v["gridwatch"] = strings.TrimSpace(string(out))
		}
	}
	return v
}

func parseLoads(spec string) ([]Load, error) {
	var out []Load
	for f := range strings.SplitSeq(spec, ",") {
		c, v, ok := strings.Cut(strings.TrimSpace(f), "x")
		nc, err1 := strconv.Atoi(c)
		nv, err2 := strconv.Atoi(v)
		if !ok || err1 != nil || err2 != nil || nc < 1 || nv < 1 {
			return nil, fmt.Errorf("GRIDWATCH_PEERS_LOADS: %q is not CAMERASxVIEWERS", f)
		}
		out = append(out, Load{nc, nv})
	}
	return out, nil
}

// profile saves s's CPU profile over the window and its heap and goroutine
// profiles at its end in dir, named after the load; a server without a
// profiler is left alone.
func profile(b *testing.B, s *Server, window time.Duration, dir string) {
	if s.Pprof == "" {
		return
	}
	get := func(path, file string) {
		res, err := http.Get("http://" + s.Pprof + path)
		if err != nil {
			b.Logf("profile: %v (build gridwatch with -tags pprof)", err)
			return
		}
		defer res.Body.Close()
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			b.Log(err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, res.Body)
	}
	name := strings.ReplaceAll(b.Name(), "/", "_")
	get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(window.Seconds())-1)), name+".cpu.pprof")
	get("/debug/pprof/heap", name+".heap.pprof")
	get("/debug/pprof/goroutine?debug=1", name+".goroutines.txt")
	get("/debug/pprof/allocs", name+".allocs.pprof")
}
