package soak

import (
	"encoding/csv"
	"io"
	"math"
	"strconv"
	"time"
)

// Sample is one look at the service under load: what the process holds
// (from /proc and its /metrics), what PostgreSQL holds, what is on disk,
// and what the load did since the previous sample.
type Sample struct {
	At      time.Time
	Elapsed time.Duration // since the load started

	// The gridwatch process.
	RSS        int64 // VmRSS, bytes
	HeapAlloc  int64 // go_memstats_heap_alloc_bytes
	HeapInuse  int64 // go_memstats_heap_inuse_bytes
	Goroutines int64 // go_goroutines
	Threads    int64 // /proc/PID/status Threads
	FDs        int64 // entries of /proc/PID/fd

	// PostgreSQL: the service's connections (pg_stat_activity, the
	// sampler's own left out) and sizes (pg_total_relation_size, bytes).
	PGConns                                       int64
	DBBytes                                       int64 // pg_database_size
	Incidents, IncidentEvents, Events, Recordings int64
	Audit, Viewings, Tags, Exports                int64

	// Footage: bytes under <data-dir>/recordings, bytes the index says
	// were written, and cameras that wrote footage in the last 30 s.
	RecordingBytes, IndexedBytes, RecordingCameras int64

	// Event latency of the interval: from a report's acknowledgement to
	// its incident.created event on the stream (0 when the event came
	// before the answer); Sent* from the moment the report was sent; N is
	// how many arrived.
	EventP50, EventP95 time.Duration
	SentP50, SentP95   time.Duration
	EventN             int64

	// The load of the interval (counts since the previous sample), and the
	// viewers watching at the sample.
	Reports, ReportErrors       int64
	Viewers                     int64
	Joins, JoinErrors, Pictures int64
	Previews, PreviewErrors     int64
	ExportsDone, ExportErrors   int64
	TagEdits, TagErrors         int64
	EventsMissed, Reconnects    int64
}

// column is one column of the CSV: its name and how a sample gives it.
type column struct {
	name string
	get  func(*Sample) float64
}

func i64(f func(*Sample) int64) func(*Sample) float64 {
	return func(s *Sample) float64 { return float64(f(s)) }
}

func ms(f func(*Sample) time.Duration) func(*Sample) float64 {
	return func(s *Sample) float64 { return math.Round(float64(f(s))/1e3) / 1e3 }
}

// columns are the CSV's columns after t_s and at, in order.
var columns = []column{
	{"rss_bytes", i64(func(s *Sample) int64 { return s.RSS })},
	{"heap_alloc_bytes", i64(func(s *Sample) int64 { return s.HeapAlloc })},
	{"heap_inuse_bytes", i64(func(s *Sample) int64 { return s.HeapInuse })},
	{"goroutines", i64(func(s *Sample) int64 { return s.Goroutines })},
	{"threads", i64(func(s *Sample) int64 { return s.Threads })},
	{"open_fds", i64(func(s *Sample) int64 { return s.FDs })},
	{"pg_connections", i64(func(s *Sample) int64 { return s.PGConns })},
	{"db_bytes", i64(func(s *Sample) int64 { return s.DBBytes })},
	{"incidents_bytes", i64(func(s *Sample) int64 { return s.Incidents })},
	{"incident_events_bytes", i64(func(s *Sample) int64 { return s.IncidentEvents })},
	{"events_bytes", i64(func(s *Sample) int64 { return s.Events })},
	{"recordings_table_bytes", i64(func(s *Sample) int64 { return s.Recordings })},
	{"audit_log_bytes", i64(func(s *Sample) int64 { return s.Audit })},
	{"viewing_sessions_bytes", i64(func(s *Sample) int64 { return s.Viewings })},
	{"footage_tags_bytes", i64(func(s *Sample) int64 { return s.Tags })},
	{"exports_bytes", i64(func(s *Sample) int64 { return s.Exports })},
	{"recording_bytes", i64(func(s *Sample) int64 { return s.RecordingBytes })},
	{"indexed_recording_bytes", i64(func(s *Sample) int64 { return s.IndexedBytes })},
	{"recording_cameras", i64(func(s *Sample) int64 { return s.RecordingCameras })},
	{"event_p50_ms", ms(func(s *Sample) time.Duration { return s.EventP50 })},
	{"event_p95_ms", ms(func(s *Sample) time.Duration { return s.EventP95 })},
	{"event_from_send_p50_ms", ms(func(s *Sample) time.Duration { return s.SentP50 })},
	{"event_from_send_p95_ms", ms(func(s *Sample) time.Duration { return s.SentP95 })},
	{"events", i64(func(s *Sample) int64 { return s.EventN })},
	{"events_missed", i64(func(s *Sample) int64 { return s.EventsMissed })},
	{"sse_reconnects", i64(func(s *Sample) int64 { return s.Reconnects })},
	{"reports", i64(func(s *Sample) int64 { return s.Reports })},
	{"report_errors", i64(func(s *Sample) int64 { return s.ReportErrors })},
	{"viewers", i64(func(s *Sample) int64 { return s.Viewers })},
	{"viewer_joins", i64(func(s *Sample) int64 { return s.Joins })},
	{"viewer_join_errors", i64(func(s *Sample) int64 { return s.JoinErrors })},
	{"viewer_pictures", i64(func(s *Sample) int64 { return s.Pictures })},
	{"previews", i64(func(s *Sample) int64 { return s.Previews })},
	{"preview_errors", i64(func(s *Sample) int64 { return s.PreviewErrors })},
	{"exports", i64(func(s *Sample) int64 { return s.ExportsDone })},
	{"export_errors", i64(func(s *Sample) int64 { return s.ExportErrors })},
	{"tag_edits", i64(func(s *Sample) int64 { return s.TagEdits })},
	{"tag_errors", i64(func(s *Sample) int64 { return s.TagErrors })},
}

// WriteCSV writes the samples as CSV: a header, then a row per sample with
// the seconds since the load started, the time (RFC 3339) and every column;
// counts of the load are per interval, latencies in milliseconds.
func WriteCSV(w io.Writer, samples []Sample) error {
	cw := csv.NewWriter(w)
	head := []string{"t_s", "at"}
	for _, c := range columns {
		head = append(head, c.name)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for i := range samples {
		s := &samples[i]
		row := []string{strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 1, 64), s.At.UTC().Format(time.RFC3339)}
		for _, c := range columns {
			row = append(row, strconv.FormatFloat(c.get(s), 'f', -1, 64))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
