package testtool

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Probe is what ffprobe, an independent client, says of a file or stream
// (-of json): the entries the caller asked for, the others left zero.
type Probe struct {
	Streams []ProbeStream `json:"streams"`
	Format  struct {
		Duration string `json:"duration"`
	} `json:"format"`
	// Out is ffprobe's output as it came, for failure messages.
	Out []byte `json:"-"`
}

// ProbeStream is one stream of a Probe.
type ProbeStream struct {
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	// ReadFrames is how many frames ffprobe decoded (-count_frames).
	ReadFrames string `json:"nb_read_frames"`
	// Duration is the stream's own duration (stream=duration).
	Duration string `json:"duration"`
	// StartTime is when the stream starts (stream=start_time).
	StartTime string `json:"start_time"`
}

// Start is when the stream starts, in seconds, 0 when ffprobe gave none.
func (s ProbeStream) Start() float64 {
	d, _ := strconv.ParseFloat(s.StartTime, 64)
	return d
}

// Seconds is the stream's duration, 0 when ffprobe gave none.
func (s ProbeStream) Seconds() float64 {
	d, _ := strconv.ParseFloat(s.Duration, 64)
	return d
}

// Seconds is the container's duration, 0 when ffprobe gave none.
func (p Probe) Seconds() float64 {
	d, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return d
}

// FFprobe runs ffprobe -v error -of json with args (the entries to show,
// then the input) and decodes what it says. The test is skipped when
// ffprobe is missing (see Require), and fails, with ffprobe's stderr, when
// ffprobe fails or takes over a minute.
func FFprobe(tb testing.TB, args ...string) Probe {
	tb.Helper()
	ffprobe := Require(tb, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffprobe, append([]string{"-v", "error", "-of", "json"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ffprobe %v: %v\n%s", args, err, stderr.String())
	}
	p := Probe{Out: out}
	if err := json.Unmarshal(out, &p); err != nil {
		tb.Fatalf("ffprobe %v said %q: %v", args, out, err)
	}
	return p
}
