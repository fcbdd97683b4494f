package record_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"gridwatch/camera"
	"gridwatch/camera/camsim"
	"gridwatch/camera/live"
	"gridwatch/camera/record"
	"gridwatch/camera/stream"
	"gridwatch/camera/video"
	"gridwatch/geo"
	"gridwatch/internal/objstore"
	"gridwatch/internal/objstore/objtest"
	"gridwatch/internal/testdb"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRangeQuery asks the footage index of one year of one-minute
// files from 20 cameras (10.5 million synthetic rows) what one camera
// recorded in an hour, at random times; the baseline is the same question
// answered by a sequential scan (the index disabled), in the same run.
func BenchmarkRangeQuery(b *testing.B) {
	pool := testdb.New(b)
	ctx := context.Background()
	start := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	for cam := 1; cam <= 20; cam++ {
		if _, err := pool.Exec(ctx, `INSERT INTO cameras (code, name, location, heading, fov, range_m, cone, main_url)
			VALUES ($1, 'bench', ST_SetSRID(ST_MakePoint(113.6, 34.7), 4326), 0, 60, 100,
				ST_Buffer(ST_SetSRID(ST_MakePoint(113.6, 34.7), 4326), 0.001), 'rtsp://127.0.0.1/x')`, fmt.Sprintf("B-%02d", cam)); err != nil {
			b.Fatal(err)
		}
	}
	t0 := time.Now()
	ddl, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// Load first, index after; a GiST build over 10.5M rows wants memory
	// (with the default 64 MB it is several times slower).
	for _, q := range []string{
		`DROP INDEX recordings_camera_span`,
		`SET maintenance_work_mem = '1GB'`,
		`INSERT INTO recordings (camera_id, span, path, bytes, codec, width, height, init_size, fragments)
		SELECT c.id, tstzrange('2025-11-01T00:00:00Z'::timestamptz + m * interval '1 minute', '2025-11-01T00:00:00Z'::timestamptz + (m + 1) * interval '1 minute'),
			c.id || '/' || m || '.mp4', 3750000, 'avc1.42c01e', 640, 360, 800, '[]'
		FROM cameras c, generate_series(0, 525599) m`,
		`CREATE INDEX recordings_camera_span ON recordings USING gist (camera_id, span)`,
		`ANALYZE recordings`,
	} {
		if _, err := ddl.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	ddl.Release()
	b.Logf("10.5M rows loaded and indexed in %v", time.Since(t0).Round(time.Second))
	store := record.NewStore(pool)
	var ids []int64
	rows, _ := pool.Query(ctx, `SELECT id FROM cameras ORDER BY id`)
	for rows.Next() {
		var id int64
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	query := func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			from := start.Add(time.Duration((i*7919)%8700) * time.Hour)
			recs, _, err := store.List(ctx, ids[i%len(ids)], from, from.Add(time.Hour))
			if err != nil || len(recs) < 60 {
				b.Fatalf("%d recordings in an hour: %v", len(recs), err)
			}
		}
	}
	// The baseline: the same question with the index turned off, asked 3
	// times (a sequential scan of 10.5M rows takes over a second).
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET enable_indexscan = off; SET enable_bitmapscan = off`); err != nil {
		b.Fatal(err)
	}
	var seq time.Duration
	for i := 0; i < 3; i++ {
		from := start.Add(time.Duration((i*7919)%8700) * time.Hour)
		t := time.Now()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM recordings WHERE camera_id = $1 AND span && tstzrange($2, $3)`,
			ids[i%len(ids)], from, from.Add(time.Hour)).Scan(&n); err != nil || n < 60 {
			b.Fatalf("%d: %v", n, err)
		}
		seq += time.Since(t)
	}
	// The connection goes back to the pool: with its planner as it was.
	if _, err := conn.Exec(ctx, `RESET enable_indexscan; RESET enable_bitmapscan`); err != nil {
		b.Fatal(err)
	}
	conn.Release()
	b.Run("impl=gist-index", func(b *testing.B) {
		query(b)
		b.ReportMetric(float64(seq.Milliseconds())/3, "seqscan-ms/op")
	})
}

// BenchmarkExport60s exports 60 s of recorded footage (25 fps, ~0.5
// Mbit/s, in one-minute files of 2 s fragments), end to end: plan, copy,
// hash, manifest.
func BenchmarkExport60s(b *testing.B) {
	pool := testdb.New(b)
	ctx := context.Background()
	dir := b.TempDir()
	cams := camera.NewStore(pool)
	sp := camera.Spec{Code: "EXP-1", Name: "bench", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{113.68, 34.79}}, MainURL: "rtsp://127.0.0.1/x"}
	if err := sp.Check(geo.CRSWGS84); err != nil {
		b.Fatal(err)
	}
	cam, err := cams.Create(ctx, sp)
	if err != nil {
		b.Fatal(err)
	}
	store := record.NewStore(pool)
	rec := record.NewRecorder(record.Config{Dir: dir}, store)
	// 62 s of the simulator's clip, published as fast as the recorder takes it.
	aus, err := camsim.ClipAccessUnits(camsim.ClipMain)
	if err != nil {
		b.Fatal(err)
	}
	hub := stream.NewHub(stream.HubOptions{Queue: 4000})
	params, err := stream.NewParams(aus[0][0], aus[0][1])
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = rec.Record(rctx, cam.ID, hub) }()
	for n := 0; n <= 62*25; n++ {
		<-time.After(0)
		au := aus[n%len(aus)]
		dts := int64(n) * 3600
		hub.Publish(&stream.AccessUnit{DTS: dts, PTS: dts, Duration: 3600, NALUs: au, Key: params.Kind.IsKey(au), Params: params,
			Received: t0.Add(stream.Duration(dts))})
		if n == 0 {
			// The recorder must be subscribed before the rest is published.
			for v, _ := hub.Viewers(); v == 0; v, _ = hub.Viewers() {
				<-time.After(time.Millisecond)
			}
		}
	}
	for st := hub.Stats(); st.Frames < 62*25; st = hub.Stats() {
		<-time.After(time.Millisecond)
	}
	<-time.After(100 * time.Millisecond) // let the recorder drain its queue
	stop()
	<-done
	from, to := t0.Add(time.Second), t0.Add(61*time.Second)
	x := record.NewExporter(store, rec, filepath.Join(dir, "exports"))
	xctx, xstop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); x.Run(xctx) }()
	defer func() { xstop(); wg.Wait() }()
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := x.Request(ctx, cam.ID, from, to, nil, "bench")
		if err != nil {
			b.Fatal(err)
		}
		for {
			e, err = x.Get(ctx, e.ID)
			if err != nil || e.Status == "failed" {
				b.Fatalf("export: %v %v", err, e.Error)
			}
			if e.Status == "done" {
				break
			}
			<-time.After(time.Millisecond) // the export runs in the background: poll as a client would
		}
		bytes = *e.Bytes
	}
	b.StopTimer()
	b.ReportMetric(float64(bytes)/(1<<20), "MiB/export")
	st, _ := os.Stat(dir)
	_ = st
}

// BenchmarkRecord20 records 20 simulated cameras (~0.5 Mbit/s each) for one
// second per iteration: the cores the whole process uses (cameras, pulling
// and recording) and the bytes written per byte of video received — to the
// local disk ("local"), or to the disk and then to an S3 object store
// (SeaweedFS on loopback, "s3": files of 5 s, uploaded as they close; the
// store's own CPU is not counted, it is another process).
func BenchmarkRecord20(b *testing.B) {
	b.Run("local", func(b *testing.B) { benchRecord20(b, nil) })
	b.Run("s3", func(b *testing.B) {
		cfg := objtest.Start(b)
		objs, err := objstore.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		benchRecord20(b, objs)
	})
}

func benchRecord20(b *testing.B, objs *objstore.Store) {
	pool := testdb.New(b)
	dir := b.TempDir()
	sim, err := camsim.New(camsim.Config{N: 20, Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	cams := camera.NewStore(pool)
	for i := 1; i <= 20; i++ {
		sp := camera.Spec{Code: fmt.Sprintf("R-%02d", i), Name: "bench", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{113.68, 34.79}},
			MainURL: sim.URL(i, "main"), Record: true}
		if err := sp.Check(geo.CRSWGS84); err != nil {
			b.Fatal(err)
		}
		if _, err := cams.Create(context.Background(), sp); err != nil {
			b.Fatal(err)
		}
	}
	cfg := record.Config{Dir: dir}
	if objs != nil {
		cfg.Objects, cfg.FileDuration = objs, 5*time.Second
	}
	rec := record.NewRecorder(cfg, record.NewStore(pool))
	m := live.NewManager(live.Config{Sources: video.Sources{Cameras: cams}, Record: rec.Record})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sim.Run(ctx) })
	wg.Go(func() { _ = m.Run(ctx) })
	wg.Go(func() { rec.RunUploads(ctx, time.Second) })
	defer func() { cancel(); wg.Wait() }()
	<-time.After(3 * time.Second) // every camera connected and recording
	// What the files hold, and what of it went to the store, from the
	// index: the local copies of uploaded files are gone from the disk.
	indexed := func() (files, uploaded int64) {
		_ = pool.QueryRow(context.Background(), `SELECT coalesce(sum(bytes), 0), coalesce(sum(bytes) FILTER (WHERE object_key IS NOT NULL), 0) FROM recordings`).Scan(&files, &uploaded)
		return files, uploaded
	}
	received := func() int64 {
		var n int64
		for _, s := range m.Stats() {
			n += s.Hub.Bytes
		}
		return n
	}
	f0, u0 := indexed()
	r0, c0, t0 := received(), cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-time.After(time.Second)
	}
	b.StopTimer()
	f1, u1 := indexed()
	r := received() - r0
	b.ReportMetric((cpuTime()-c0).Seconds()/time.Since(t0).Seconds(), "cores")
	b.ReportMetric(float64(f1-f0+u1-u0)/float64(r), "written/received")
	b.ReportMetric(float64(u1-u0)/float64(r), "uploaded/received")
	b.ReportMetric(float64(r)*8/time.Since(t0).Seconds()/20/1e6, "Mbit/s/camera")
	b.ReportMetric(0, "ns/op")
}
