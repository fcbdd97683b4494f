package peerbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a relay under test, running in its own process.
type Server struct {
	Name string
	// URL is the RTSP URL viewers of camera n (from 1) play; User and
	// Password the credentials they present ("" for none).
	URL            func(n int) string
	User, Password string
	// MSE is how browsers watch it (nil: it has no MSE).
	MSE *MSE

	// Pprof is where a gridwatch built with -tags pprof serves Go's
	// profiler ("" for the peers).
	Pprof string

	cmd  *exec.Cmd
	done chan struct{}
	logs *tailBuffer
}

// Pid is the server process's ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Logs returns the end of what the server printed.
func (s *Server) Logs() string { return s.logs.String() }

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Exited is closed when the server's process has ended.
func (s *Server) Exited() <-chan struct{} { return s.done }

// FreePort returns a loopback TCP port nothing listens on now. The peers
// take their listen addresses from configuration files, so the port is
// chosen here and passed on; another process could take it in between,
// which the server's start then reports.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n different free ports (FreePort's caveat applies).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for len(ports) < n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

func start(name, dir string, argv []string, env []string) (*Server, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	logs := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Server{Name: name, cmd: cmd, done: make(chan struct{}), logs: logs}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

// waitTCP waits until addr accepts connections, the process exits or ctx
// ends; it polls, as an operator's health check would.
func (s *Server) waitTCP(ctx context.Context, addr string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited: %v\n%s", s.Name, s.cmd.ProcessState, s.Logs())
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not listening: %w\n%s", s.Name, addr, ctx.Err(), s.Logs())
		case <-tick.C:
		}
	}
}

// StartGo2RTC runs go2rtc (bin) with the cameras as its streams cam1…camN,
// its RTSP server on a free loopback port and everything else it would
// listen on turned off, except the HTTP API (MSE over WebSocket).
func StartGo2RTC(ctx context.Context, bin, dir string, cameras []string) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	rtsp, api := ports[0], ports[1]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "api:\n  listen: \"127.0.0.1:%d\"\nrtsp:\n  listen: \"127.0.0.1:%d\"\n", api, rtsp)
	cfg.WriteString("webrtc:\n  listen: \"\"\nrtmp:\n  listen: \"\"\nsrtp:\n  listen: \"\"\nlog:\n  level: error\nstreams:\n")
	for i, u := range cameras {
		fmt.Fprintf(&cfg, "  cam%d: %s\n", i+1, u)
	}
	path := filepath.Join(dir, "go2rtc.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	s, err := start("go2rtc", dir, []string{bin, "-config", path}, nil)
	if err != nil {
		return nil, err
	}
	s.URL = func(n int) string { return fmt.Sprintf("rtsp://127.0.0.1:%d/cam%d", rtsp, n) }
	// What go2rtc's own player (video-rtc.js) sends: the codecs the
	// browser takes.
	s.MSE = &MSE{
		URL:   func(n int) string { return fmt.Sprintf("ws://127.0.0.1:%d/api/ws?src=cam%d", api, n) },
		Hello: []byte(`{"type":"mse","value":"avc1.640029,avc1.64002A,avc1.640033,hvc1.1.6.L153.B0,mp4a.40.2,mp4a.40.5,flac,opus"}`),
	}
	if err := s.waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", rtsp)); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartMediaMTX runs MediaMTX (bin) with the cameras as paths cam1…camN
// pulled over TCP on demand, RTSP over TCP only on a free loopback port, and
// its other servers off.
func StartMediaMTX(ctx context.Context, bin, dir string, cameras []string) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	var cfg strings.Builder
	cfg.WriteString("logLevel: error\nrtsp: true\nrtspTransports: [tcp]\nrtspEncryption: \"no\"\n")
	fmt.Fprintf(&cfg, "rtspAddress: 127.0.0.1:%d\nrtspsAddress: 127.0.0.1:%d\n", ports[0], ports[1])
	cfg.WriteString("rtmp: false\nhls: false\nwebrtc: false\nsrt: false\nmoq: false\napi: false\nmetrics: false\npprof: false\nplayback: false\n")
	cfg.WriteString("paths:\n")
	for i, u := range cameras {
		fmt.Fprintf(&cfg, "  cam%d:\n    source: %s\n    rtspTransport: tcp\n    sourceOnDemand: true\n", i+1, u)
	}
	path := filepath.Join(dir, "mediamtx.yml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	s, err := start("mediamtx", dir, []string{bin, path}, nil)
	if err != nil {
		return nil, err
	}
	s.URL = func(n int) string { return fmt.Sprintf("rtsp://127.0.0.1:%d/cam%d", ports[0], n) }
	if err := s.waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", ports[0])); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartGridwatch runs `gridwatch serve` (bin) on the database dsn, with its
// HTTP and RTSP re-serve on free loopback ports, registers the cameras
// (not recording: a relay, like the peers) and returns once it is ready.
// Viewers present token as their Basic password.
func StartGridwatch(ctx context.Context, bin, dir, dsn, token string, cameras []string) (*Server, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	httpPort, rtspPort, pprofPort := ports[0], ports[1], ports[2]
	argv := []string{bin, "serve",
		"--addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", rtspPort),
		"--data-dir", dir, "--node-id", "peerbench", "--admin-token", token,
		"--log-level", "error", "--log-format", "text"}
	pprof := fmt.Sprintf("127.0.0.1:%d", pprofPort)
	s, err := start("gridwatch", dir, argv, []string{"DATABASE_URL=" + dsn, "GRIDWATCH_PPROF_ADDR=" + pprof})
	if err != nil {
		return nil, err
	}
	s.Pprof = pprof
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if err := s.waitReady(ctx, base+"/readyz"); err != nil {
		s.Stop()
		return nil, err
	}
	ids := make([]int64, len(cameras))
	for i, u := range cameras {
		body, _ := json.Marshal(map[string]any{
			"code": fmt.Sprintf("PEER-%03d", i+1), "name": fmt.Sprintf("Camera %d", i+1),
			"location": map[string]any{"type": "Point", "coordinates": []float64{118.78 + float64(i)*0.0005, 32.04}},
			"heading":  90, "fov": 60, "range": 50, "main_url": u, "record": false,
		})
		id, err := createCamera(ctx, base, token, body)
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("gridwatch: camera %d: %w", i+1, err)
		}
		ids[i] = id
	}
	s.URL = func(n int) string { return fmt.Sprintf("rtsp://127.0.0.1:%d/cameras/%d", rtspPort, ids[n-1]) }
	s.User, s.Password = "peerbench", token
	s.MSE = &MSE{
		URL: func(n int) string {
			return fmt.Sprintf("ws://127.0.0.1:%d/api/v1/cameras/%d/live?stream=main", httpPort, ids[n-1])
		},
		Header: http.Header{"Authorization": {"Bearer " + token}},
	}
	if err := s.waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", rtspPort)); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, url string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited: %v\n%s", s.Name, s.cmd.ProcessState, s.Logs())
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready: %w\n%s", s.Name, ctx.Err(), s.Logs())
		case <-tick.C:
		}
	}
}

func createCamera(ctx context.Context, base, token string, body []byte) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/cameras", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("POST /api/v1/cameras: %d %s", res.StatusCode, raw)
	}
	var cam struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(raw, &cam); err != nil || cam.ID == 0 {
		return 0, fmt.Errorf("POST /api/v1/cameras: no id in %s", raw)
	}
	return cam.ID, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Commit reads the commit a peer's binary was built from, as make
// bench-peers records it beside the binary (NAME.commit); "" when unknown.
func Commit(bin string) string {
	b, err := os.ReadFile(bin + ".commit")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

var errNoKeyframe = errors.New("no keyframe")

// Join measures a late joiner over RTSP: from dialling the server to the
// end of the first complete keyframe it receives.
func Join(ctx context.Context, s *Server, cam int) (time.Duration, error) {
	return join(ctx, func(ctx context.Context) (Viewer, error) { return Dial(ctx, s.URL(cam), s.User, s.Password) })
}

func join(ctx context.Context, dial func(context.Context) (Viewer, error)) (time.Duration, error) {
	t0 := time.Now()
	p, err := dial(ctx)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	ended := make(chan error, 1)
	go func() { ended <- p.Run() }()
	select {
	case <-p.FirstKeyframe():
		return time.Since(t0), nil
	case err := <-ended:
		return 0, fmt.Errorf("%w: %v", errNoKeyframe, err)
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: %v", errNoKeyframe, ctx.Err())
	}
}
