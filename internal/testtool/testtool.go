// Package testtool holds what tests of several packages need: external
// tools that `make test` installs, and a log sink safe to read while
// servers still write to it.
package testtool

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Require returns the path of an external program (ffprobe, ffmpeg). When it
// is missing the test fails under `make test`, and is skipped elsewhere.
func Require(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(tb, fmt.Sprintf("%s not installed (scripts/install-deps.sh test installs it): %v", name, err))
	}
	return p
}

// SkipOrFail ends a test that lacks something make test provides: a
// failure under `make test` (GRIDWATCH_REQUIRE_ALL=1) or in CI, a skip
// that says why elsewhere.
func SkipOrFail(tb testing.TB, why string) {
	tb.Helper()
	if RequireAll() {
		tb.Fatal(why)
	}
	tb.Skip("skipped outside CI: " + why)
}

// RequireAll reports whether every external part must be there (make test, CI).
func RequireAll() bool { return os.Getenv("GRIDWATCH_REQUIRE_ALL") == "1" || os.Getenv("CI") != "" }

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
