package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a child process (gridwatch or its simulated cameras) with its
// output going to a log file, and a line of its stdout watched for.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	// lines receives the stdout lines until the process ends.
	lines chan string
}

// startProcess runs argv with stderr into logPath and stdout both there
// and onto lines.
func startProcess(name, logPath string, argv []string, env []string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = f
	out, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: f, lines: make(chan string, 256)}
	var copied sync.WaitGroup
	copied.Go(func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for more lines
			}
		}
	})
	go func() {
		copied.Wait()
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process's ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace before killing it.
func (p *process) stop(grace time.Duration) error {
	defer p.log.Close()
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.cmd.ProcessState)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("%s exited with %v after SIGTERM", p.name, p.cmd.ProcessState)
		}
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.name, grace)
	}
}

// waitLines collects n stdout lines that keep passes, or fails when the
// process ends or ctx does.
func (p *process) waitLines(ctx context.Context, n int, keep func(string) bool) ([]string, error) {
	var got []string
	for len(got) < n {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return nil, fmt.Errorf("%s ended before it was up (see %s)", p.name, p.log.Name())
			}
			if keep(l) {
				got = append(got, l)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: not up: %w (see %s)", p.name, ctx.Err(), p.log.Name())
		}
	}
	return got, nil
}

// freePort returns a loopback TCP port nothing listens on now; another
// process could take it before gridwatch binds it, which its start reports.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// procStat is what /proc says of a process.
type procStat struct {
	rss, threads, fds int64
}

// readProc reads pid's resident set, threads and open descriptors.
func readProc(pid int) (procStat, error) {
	var st procStat
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return st, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		switch name {
		case "VmRSS":
			st.rss = v * 1024
		case "Threads":
			st.threads = v
		}
	}
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return st, err
	}
	st.fds = int64(len(fds))
	return st, nil
}

// dirBytes sums the sizes of the regular files under dir (0 when absent).
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (retention), or not made yet
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// scrapeMetrics reads the named metrics from a Prometheus text page; a
// metric with several series (labels) is their sum.
func scrapeMetrics(ctx context.Context, client *http.Client, url, token string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", res.Status)
	}
	return parseMetrics(res.Body, names...)
}

// parseMetrics reads the named metrics from Prometheus text exposition.
func parseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !want[name] {
			continue
		}
		rest := line[len(name):]
		if strings.HasPrefix(rest, "{") {
			rest = rest[strings.LastIndexByte(rest, '}')+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", name, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return out, fmt.Errorf("/metrics has no %s", n)
		}
	}
	return out, nil
}
