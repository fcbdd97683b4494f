// Package testtool holds what tests of several packages need: external
// tools that `make test` installs, and a log sink safe to read while
// servers still write to it.
package testtool

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Require returns the path of an external program (ffprobe, ffmpeg). When it
// is missing the test fails under `make test` (GRIDWATCH_REQUIRE_ALL=1) and
// is skipped, saying why, elsewhere.
func Require(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("GRIDWATCH_REQUIRE_ALL") == "1" || os.Getenv("CI") != "" {
			tb.Fatalf("%s is required: scripts/install-deps.sh test installs it (%v)", name, err)
		}
		tb.Skipf("skipped outside CI: %s not installed (scripts/install-deps.sh test installs it)", name)
	}
	return p
}

// LogBuffer is a log sink tests may read while the code under test still
// writes to it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
