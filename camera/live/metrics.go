package live

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the running streams to Prometheus: status, rates,
// viewers and counters per camera stream.
type Collector struct {
	m                                       *Manager
	up, fps, bitrate, viewers, lastKey      *prometheus.Desc
	frames, bytes, skips, drops, reconnects *prometheus.Desc
	// The node's transcodes (H.265 to H.264), not per stream.
	tcRunning, tcStarted, tcCPU, tcRefused *prometheus.Desc
}

// NewCollector returns a collector over m.
func NewCollector(m *Manager) *Collector {
	l := []string{"camera", "stream"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("gridwatch_camera_"+name, help, l, nil)
	}
	return &Collector{m: m,
		up:         d("up", "1 while the stream is online, 0 while connecting or offline"),
		fps:        d("fps", "pictures per second received"),
		bitrate:    d("bitrate_bits", "video bits per second received"),
		viewers:    d("viewers", "viewers of the stream (browsers, RTSP clients, HLS muxers)"),
		lastKey:    d("last_keyframe_timestamp_seconds", "when the last keyframe arrived"),
		frames:     d("frames_total", "pictures received since the stream started"),
		bytes:      d("bytes_total", "video bytes received since the stream started"),
		skips:      d("viewer_skips_total", "times a slow viewer skipped to the next keyframe"),
		drops:      d("viewer_drops_total", "viewers dropped for being too slow"),
		reconnects: d("reconnects_total", "reconnections to the camera"),
		tcRunning:  prometheus.NewDesc("gridwatch_transcodes", "cameras being transcoded to H.264 now (one ffmpeg each)", nil, nil),
		tcStarted:  prometheus.NewDesc("gridwatch_transcodes_started_total", "transcodes started", nil, nil),
		tcCPU:      prometheus.NewDesc("gridwatch_transcode_cpu_seconds_total", "CPU time the transcoding ffmpeg processes have used", nil, nil),
		tcRefused:  prometheus.NewDesc("gridwatch_transcodes_refused_total", "transcodes refused at the node's limit (--transcode-max)", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.fps, c.bitrate, c.viewers, c.lastKey, c.frames, c.bytes, c.skips, c.drops, c.reconnects,
		c.tcRunning, c.tcStarted, c.tcCPU, c.tcRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	tc := &c.m.transcodes
	ch <- prometheus.MustNewConstMetric(c.tcRunning, prometheus.GaugeValue, float64(tc.running.Load()))
	ch <- prometheus.MustNewConstMetric(c.tcStarted, prometheus.CounterValue, float64(tc.started.Load()))
	ch <- prometheus.MustNewConstMetric(c.tcCPU, prometheus.CounterValue, tc.cpu().Seconds())
	ch <- prometheus.MustNewConstMetric(c.tcRefused, prometheus.CounterValue, float64(tc.refusals.Load()))
	for _, s := range c.m.Stats() {
		l := []string{strconv.FormatInt(s.Key.Camera, 10), s.Key.Stream}
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		n := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
		}
		up := 0.0
		if s.State.Status == "online" {
			up = 1
		}
		g(c.up, up)
		g(c.fps, s.State.FPS)
		g(c.bitrate, float64(s.State.Bitrate))
		g(c.viewers, float64(s.Hub.Viewers))
		if !s.Hub.LastKey.IsZero() {
			g(c.lastKey, float64(s.Hub.LastKey.UnixMilli())/1000)
		}
		n(c.frames, float64(s.Hub.Frames))
		n(c.bytes, float64(s.Hub.Bytes))
		n(c.skips, float64(s.Hub.Skips))
		n(c.drops, float64(s.Hub.Drops))
		n(c.reconnects, float64(s.State.Reconnects))
	}
}
