// Package objtest runs a real S3-compatible object store for tests:
// SeaweedFS's `weed server -s3` on loopback ports, in a temporary directory,
// built once by scripts/install-weed.sh (which `make test` runs first).
package objtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gridwatch/internal/objstore"
	"gridwatch/internal/testtool"
)

// AccessKey and SecretKey are the test store's only identity.
const (
	AccessKey = "gwtestkey"
	SecretKey = "gwtestsecret"
)

// Weed is the path of the weed binary, built when missing (minutes, once).
func Weed(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("GRIDWATCH_WEED"); p != "" {
		return p
	}
	root, err := repoRoot()
	if err != nil {
		testtool.SkipOrFail(tb, "SeaweedFS: "+err.Error())
		return ""
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "install-weed.sh")).Output()
	if err != nil {
		testtool.SkipOrFail(tb, fmt.Sprintf("SeaweedFS (the object store of the several-node tests) could not be built by scripts/install-weed.sh: %v", err))
		return ""
	}
	return strings.TrimSpace(string(out))
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "install-weed.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/install-weed.sh not found above the test's directory")
		}
		dir = parent
	}
}

func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Start runs a store with bucket "footage" until the test ends and returns
// how to reach it (the bucket's URL with prefix "recordings").
func Start(tb testing.TB) objstore.Config {
	tb.Helper()
	weed := Weed(tb)
	dir := tb.TempDir()
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, []byte(`{"identities":[{"name":"gridwatch","credentials":[{"accessKey":"`+AccessKey+`","secretKey":"`+SecretKey+`"}],"actions":["Admin","Read","Write","List","Tagging"]}]}`), 0o600); err != nil {
		tb.Fatal(err)
	}
	p := freePorts(tb, 9)
	args := []string{"server", "-dir=" + dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-volume.max=8",
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-s3", "-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]), "-s3.config=" + conf,
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort=" + strconv.Itoa(p[8])}
	cmd := exec.Command(weed, args...)
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("weed: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		logf.Close()
	})
	cfg := objstore.Config{URL: "s3://footage/recordings", Endpoint: "http://127.0.0.1:" + strconv.Itoa(p[6]),
		Region: "us-east-1", PathStyle: true, AccessKey: AccessKey, SecretKey: SecretKey}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := objstore.CreateBucket(ctx, cfg)
		if err == nil {
			_, err = objstore.Open(ctx, cfg)
		}
		cancel()
		if err == nil {
			return cfg
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			tb.Fatalf("weed exited: %s", tail(string(b)))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			tb.Fatalf("weed's S3 not answering after 90 s: %v\n%s", err, tail(string(b)))
		}
		time.Sleep(100 * time.Millisecond) // polling the store until it answers
	}
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}
