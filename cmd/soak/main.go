// Command soak runs gridwatch under a steady load for a long time and fails
// when something grows that should not (`make soak`; package
// internal/soak says what it does and why the bounds are what they are).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"gridwatch/internal/soak"
)

func main() {
	var c soak.Config
	flag.StringVar(&c.Gridwatch, "gridwatch", "bin/gridwatch", "the gridwatch binary under test")
	flag.DurationVar(&c.Duration, "duration", 0, "how long the load runs once the service is up (default 1h)")
	flag.DurationVar(&c.Warmup, "warmup", 0, "the start of the load the growth checks leave out (default a quarter of the duration, 45s to 5m)")
	flag.DurationVar(&c.Interval, "interval", 0, "sampling period (default 10s)")
	flag.StringVar(&c.Out, "out", "test-artifacts/soak", "where samples.csv, samples.svg, summary.md and the logs go")
	flag.StringVar(&c.DataDir, "data-dir", "", "gridwatch's data directory (default: a new temporary one, removed afterwards)")
	flag.BoolVar(&c.Keep, "keep", false, "keep the temporary data directory")
	flag.IntVar(&c.Cameras, "cameras", 0, "recording cameras (default 20: the demo's and simulated ones)")
	flag.IntVar(&c.Viewers, "viewers", 0, "live viewers at any time (default 100)")
	flag.Float64Var(&c.ReportsPerSecond, "reports", 0, "reports a second (default 5)")
	flag.DurationVar(&c.PreviewEvery, "preview-every", 0, "how often a redraw is previewed (default 15s)")
	flag.DurationVar(&c.ExportEvery, "export-every", 0, "how often footage is exported (default 30s)")
	flag.DurationVar(&c.TagEvery, "tag-every", 0, "how often a footage tag is edited (default 5s)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "soak: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	c.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := soak.Run(ctx, c)
	stop()
	switch {
	case errors.Is(err, soak.ErrFailed):
		fmt.Fprintf(os.Stderr, "soak: FAILED: see %s/summary.md\n", c.Out)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "soak: passed: see %s/summary.md\n", c.Out)
}
