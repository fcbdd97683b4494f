package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"

	"gridwatch/camera/camsim"
)

const camsimUsage = `Usage: gridwatch camsim [flags]

Serves simulated RTSP cameras (H.264 and H.265, TCP) until interrupted, and
prints the main-stream URL of each camera, one a line (the password, if any,
redacted). Camera n serves rtsp://ADDR/cam/n/main (H.264 640x360),
rtsp://ADDR/cam/n/sub (H.264 320x180) and rtsp://ADDR/cam/n/h265 (H.265 640x360);
with --audio also main-aac, main-latm, main-pcma, main-pcmu, main-opus, h265-aac,
sub-aac and sub-pcma: the same pictures with sound (a beep at every keyframe).

Flags:
`

// runCamsim is `gridwatch camsim`: it serves simulated cameras until ctx ends.
func runCamsim(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("camsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, camsimUsage)
		fs.PrintDefaults()
	}
	n := fs.Int("n", 4, "number of cameras, numbered 1..n")
	addr := fs.String("addr", "127.0.0.1:8554", "RTSP listen address")
	fault := fs.String("fault", "", "fault for every camera: disconnect, stall, loss, slices, slices32 or mute (sound announced, none sent)")
	audio := fs.Bool("audio", false, "also serve the streams with sound (main-aac, main-pcma, …)")
	// Env defaults are applied after parsing, so -h never prints a password.
	user := fs.String("user", "", "require this user name (env GRIDWATCH_CAMSIM_USER)")
	password := fs.String("password", "", "require this password (env GRIDWATCH_CAMSIM_PASSWORD)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		*user = getenv("GRIDWATCH_CAMSIM_USER")
	}
	if *password == "" {
		*password = getenv("GRIDWATCH_CAMSIM_PASSWORD")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("camsim: unexpected argument %q", fs.Arg(0))
	}
	if _, err := parseLevel(*logLevel); err != nil {
		return fmt.Errorf("camsim: --log-level %w", err)
	}
	log := NewLogger(&Config{LogLevel: *logLevel, LogFormat: "auto"}, stderr)

	sim, err := camsim.New(camsim.Config{
		N: *n, Addr: *addr, Logger: log,
		Username: *user, Password: *password,
		Fault: camsim.Fault(*fault), Audio: *audio,
	})
	if err != nil {
		return err
	}
	for cam := 1; cam <= *n; cam++ {
		fmt.Fprintln(stdout, redactURL(sim.URL(cam, camsim.StreamMain)))
	}
	return sim.Run(ctx)
}

// redactURL hides the password of a URL: it goes to a terminal or a log file.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unprintable URL)"
	}
	return u.Redacted()
}
