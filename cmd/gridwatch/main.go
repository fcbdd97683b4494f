// Command gridwatch is the grid-governance command centre's one binary:
// `serve` runs the API and dashboard, `migrate` applies migrations, `demo`
// seeds a demo city and serves it, `version` prints the build version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time: -ldflags "-X main.version=…".
var version = "dev"

const usage = `gridwatch — grid-governance command centre

Usage:
  gridwatch serve   [flags]   run the API and dashboard
  gridwatch demo    [flags]   seed the demo city (if absent) and serve it; --seed-only to just seed
  gridwatch migrate [flags]   apply database migrations and exit
  gridwatch pii keys|rotate|prune [flags]   the keys residents' personal data are sealed with
  gridwatch version           print the version

Run 'gridwatch serve -h' for the flags; each has a GRIDWATCH_… environment variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gridwatch:", err)
		}
		stop()
		os.Exit(2)
	}
}

// run dispatches a subcommand; it returns when the command is done or ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "camsim":
		return runCamsim(ctx, rest, getenv, stdout, stderr)
	case "pii":
		return runPII(ctx, rest, getenv, stdout, stderr)
	case "serve", "migrate", "demo":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	seedOnly := false
	if cmd == "demo" {
		rest, seedOnly = takeFlag(rest, "--seed-only")
	}
	cfg, err := LoadConfig(cmd, rest, getenv, stderr)
	if err != nil {
		return err
	}
	m := NewMain(cfg, NewLogger(cfg, stderr))
	switch cmd {
	case "migrate":
		m.MigrateOnly = true
	case "demo":
		m.SeedDemo = true
		m.Camsim = true
		m.DemoNVR = true
		m.DemoTasks = true
		m.DemoYear = true
		m.DemoBase = true
		m.MigrateOnly = seedOnly
	}
	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		return err
	}
	if m.AdminPassword != "" {
		// Shown once, on the terminal, never in the log.
		fmt.Fprintf(stdout, "\nFirst start: created user \"admin\" with password %s\nSign in and change it (POST /api/v1/me/password). It is not shown again.\n\n", m.AdminPassword)
	}
	if m.MigrateOnly {
		return m.Close()
	}
	fmt.Fprintf(stdout, "Gridwatch %s is up: %s\n", version, m.URL())
	<-ctx.Done()
	return m.Close()
}

// takeFlag removes a boolean flag from args and reports whether it was there.
func takeFlag(args []string, name string) ([]string, bool) {
	out := args[:0:0]
	found := false
	for _, a := range args {
		if a == name || a == "-"+name[2:] {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}
