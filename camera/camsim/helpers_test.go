package camsim

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"gridwatch/camera/internal/rtsptest"
	"gridwatch/internal/testtool"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLong bounds every wait for something that should happen within a few
// frames.
const waitLong = rtsptest.WaitLong

// startSim runs a Sim on 127.0.0.1:0 for the test; cleanup cancels Run and
// fails the test if it does not return, or returns an error.
func startSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.N == 0 {
		cfg.N = 1
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(testtool.Run(t, waitLong, s.Run))
	return s
}

// playFaulted starts a Sim with camera 1 in fault f and plays camera 1's
// stream. With atStart the fault comes from the config; otherwise the
// stream plays healthy first, until before has read what it wants from the
// player, and the fault is set at runtime.
func playFaulted(t testing.TB, f Fault, atStart bool, stream string, before func(*rtsptest.Player)) (*Sim, *rtsptest.Player) {
	t.Helper()
	cfg := Config{}
	if atStart {
		cfg.Fault = f
	}
	s := startSim(t, cfg)
	p := rtsptest.Play(t, s.URL(1, stream))
	if !atStart {
		before(p)
		s.SetFault(1, f)
	}
	return s, p
}

func debugLogger(w *testtool.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
