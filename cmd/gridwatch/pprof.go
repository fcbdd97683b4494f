//go:build pprof

package main

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // the profiler, only in binaries built with -tags pprof
	"os"
	"time"
)

// A binary built with -tags pprof (make bench-peers PROFILE=1) serves Go's
// profiler on GRIDWATCH_PPROF_ADDR (a loopback host:port), for finding
// where a relay's CPU and memory go. Release builds have none of it.
func init() {
	addr := os.Getenv("GRIDWATCH_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() {
		s := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
		slog.Warn("profiler listening", "addr", addr, "err", s.ListenAndServe())
	}()
}
