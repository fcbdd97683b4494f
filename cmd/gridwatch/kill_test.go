package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/camera/camsim"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/database"
	"gridwatch/internal/pgcluster"
	"gridwatch/migrations"
)

// The kill tests (issue 14): a gridwatch child process (this test binary
// run as main, spawned by the harness of nodes_test.go, its data directory
// kept across restarts) is killed with SIGKILL at a seeded random moment
// of one kind of work — a boundary change, a bulk ingest, an export, a
// recording file's close, the migrations of a first start — and started
// again on the same data directory and database. Each test then checks that nothing is half
// done: the work is either whole or cleanly failed, and visible as such.
// The database work runs against a PostgreSQL of the test's own
// (DATABASE_URL: the migrations need a fresh database each time); the
// recordings and exports, features of one node on its disk, run as one
// node does by default, on the private cluster under its data directory,
// which the kill leaves running and the restart takes over. PostgreSQL
// itself is not killed here: what a killed client left open it rolls
// back (the database's own faults are other tests').
//
// Each test logs its seed (GRIDWATCH_KILL_SEED=<seed> replays it) and one
// "RELIABILITY:" line: iterations, what was checked, what was lost and the
// restart-to-ready time (from the new process's start to /readyz 200).

// killer runs one node through kills and restarts.
type killer struct {
	t    *testing.T
	nc   *nodeCluster
	id   string
	rng  *rand.Rand
	seed uint64
	node *gwNode
	// admin is a connection to the cluster's postgres database.
	admin *pgx.Conn
	// embedded: the node runs its private cluster (else DATABASE_URL).
	embedded bool
	// ready are the restart-to-ready times of the restarts after a kill.
	ready []time.Duration
}

// newKiller runs node id against a PostgreSQL of the test's own
// (DATABASE_URL), as several nodes and the migrations need.
func newKiller(t *testing.T, id string) *killer {
	t.Helper()
	k := &killer{t: t, id: id}
	k.seedRNG()
	nc := newNodeCluster(t)
	k.nc = nc
	// The test's own connections carry a name of their own: settle
	// waits for the others.
	node := nc.dsn
	nc.dsn = node + " " + testApp
	nc.query("SELECT 1")
	nc.dsn = node
	k.admin = k.connect(nc.pg.DSN("postgres"))
	return k
}

// newEmbeddedKiller runs node id on its private cluster under its data
// directory, the default of one node: a kill leaves that postgres running
// and the restart takes it over (stops it, starts it again).
func newEmbeddedKiller(t *testing.T, id string) *killer {
	t.Helper()
	k := &killer{t: t, id: id, embedded: true}
	k.seedRNG()
	dir := dataDir(t)
	nc := &nodeCluster{t: t, nodes: map[string]*gwNode{}, dirs: map[string]string{id: dir}}
	k.nc = nc
	t.Cleanup(func() {
		for _, n := range nc.nodes {
			n.kill()
			if t.Failed() {
				t.Logf("--- node %s (%v) log (tail) ---\n%s", n.id, n.cmd.ProcessState, tail(n.logs.String(), 60))
			}
		}
		if nc.db != nil {
			nc.db.Close(context.Background())
		}
		if k.admin != nil {
			k.admin.Close(context.Background())
		}
		// The postgres a killed node left running.
		if c, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: filepath.Join(dir, "pg")}); err == nil {
			c.Close()
		}
	})
	return k
}

// testApp names the test's own database connections.
const testApp = "application_name=gridwatch-test"

func (k *killer) seedRNG() {
	k.t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GRIDWATCH_KILL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			k.t.Fatalf("GRIDWATCH_KILL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	k.t.Logf("kill seed %d (GRIDWATCH_KILL_SEED=%d replays it)", seed, seed)
	k.seed, k.rng = seed, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// connect opens a connection of the test's own to dsn.
func (k *killer) connect(dsn string) *pgx.Conn {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn+" "+testApp)
	if err != nil {
		k.t.Fatal(err)
	}
	if !k.embedded {
		k.t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c
}

// reconnect connects again to the private cluster a restart took over.
func (k *killer) reconnect() {
	k.t.Helper()
	sock := filepath.Join(k.nc.dirs[k.id], "pg", "run")
	// The socket's name is .s.PGSQL.5432 (pgcluster's socketPort).
	dsn := func(db string) string {
		return fmt.Sprintf("host='%s' port=5432 user=postgres dbname='%s' sslmode=disable", sock, db)
	}
	for _, c := range []*pgx.Conn{k.nc.db, k.admin} {
		if c != nil {
			c.Close(context.Background())
		}
	}
	k.nc.db, k.admin = k.connect(dsn("gridwatch")), k.connect(dsn("postgres"))
}

// settle waits until the killed node's database sessions have ended:
// PostgreSQL ends (and rolls back) a session whose client died when it
// next reads from or writes to it, and a COMMIT already sent may still
// land until then.
func (k *killer) settle() {
	k.t.Helper()
	waitFor(k.t, time.Minute, "the killed node's database sessions to end", func() bool {
		var n int
		if err := k.admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> $1`,
			strings.TrimPrefix(testApp, "application_name=")).Scan(&n); err != nil {
			k.t.Fatal(err)
		}
		return n == 0
	})
}

// start starts the node and waits until it is ready; after a kill, the
// time that took is kept as a restart-to-ready time.
func (k *killer) start(afterKill bool) *gwNode {
	k.t.Helper()
	began := time.Now()
	k.node = k.nc.spawn(k.id)
	took := waitReady(k.t, k.node, began)
	if k.embedded {
		k.reconnect()
	}
	if afterKill {
		k.ready = append(k.ready, took)
	}
	return k.node
}

// startWithCity starts the node and imports the demo city into it.
func (k *killer) startWithCity() *gwNode {
	k.t.Helper()
	node := k.start(false)
	if code := post(k.t, http.DefaultClient, node.url+"/api/v1/grids/import", geo.DemoCity(), nil); code != http.StatusCreated {
		k.t.Fatalf("import the demo city: %d", code)
	}
	return node
}

// between is a random duration in [lo, hi).
func (k *killer) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(k.rng.Int64N(int64(hi-lo)))
}

// killAt kills the node with SIGKILL at at and waits for it to be gone.
func (k *killer) killAt(at time.Time) {
	k.t.Helper()
	// The random moment before a kill is the point of the test.
	<-time.After(time.Until(at))
	if err := k.node.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		k.t.Fatalf("kill: %v", err)
	}
	<-k.node.done
	k.settle()
}

// reliability logs the line the coordinator collects.
func (k *killer) reliability(kind string, iterations int, checked, lost string) {
	k.t.Helper()
	p50, p95 := percentile(k.ready, 0.50), percentile(k.ready, 0.95)
	k.t.Logf("RELIABILITY: kill=%s iterations=%d seed=%d restart_to_ready_p50=%v restart_to_ready_p95=%v lost=%q checked=%q",
		kind, iterations, k.seed, p50.Round(time.Millisecond), p95.Round(time.Millisecond), lost, checked)
}

// percentile is the p-th (0 to 1) of ds by the nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// readyClient gives up on a node that does not answer yet.
var readyClient = &http.Client{Timeout: 3 * time.Second}

// waitReady waits until node n, started at began, answers /readyz with
// 200, and returns how long that took. Its address is the one it prints
// once up: after a kill, the dead process's row in nodes still looks alive
// for a lease, so the row (nodeCluster.waitUp) may name the dead address.
func waitReady(t *testing.T, n *gwNode, began time.Time) time.Duration {
	t.Helper()
	deadline := began.Add(2 * time.Minute)
	for {
		select {
		case <-n.done:
			t.Fatalf("node %s exited before it was ready: %s", n.id, tail(n.logs.String(), 40))
		default:
		}
		if n.url == "" {
			if _, rest, ok := strings.Cut(n.logs.String(), " is up: "); ok {
				n.url, _, _ = strings.Cut(rest, "\n")
				n.url = strings.TrimSpace(n.url)
			}
		}
		if n.url != "" {
			if res, err := readyClient.Get(n.url + "/readyz"); err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return time.Since(began)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready after 2 min: %s", n.id, tail(n.logs.String(), 40))
		}
		time.Sleep(10 * time.Millisecond) // polled as a load balancer would
	}
}

// waitFor polls cond every 10 ms until it holds, failing after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	waitEvery(t, within, 10*time.Millisecond, what, cond)
}

// waitEvery is waitFor polling every every.
func waitEvery(t *testing.T, within, every time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(every) // polled: the state is in the database
	}
}

// one reads one value of a single-row query.
func one[T any](nc *nodeCluster, sql string, args ...any) T {
	nc.t.Helper()
	rows := nc.query(sql, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		nc.t.Fatalf("%s: %d rows, want one value", sql, len(rows))
	}
	v, ok := rows[0][0].(T)
	if !ok {
		nc.t.Fatalf("%s: %T, want %T", sql, rows[0][0], v)
	}
	return v
}

// --- migrations ---

// TestKillMigrations kills the first start of a fresh database while it
// migrates, several times, each on a new database. Right after the kill
// the schema is exactly that of the migrations recorded (a prefix of
// them, none half applied: compared with a database migrated with just
// those); after the restart every migration is recorded and the schema
// is the full one.
func TestKillMigrations(t *testing.T) {
	k := newKiller(t, "mig")
	nc := k.nc
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	all, err := database.LoadMigrations(migrations.FS())
	if err != nil {
		t.Fatal(err)
	}
	// ref(n) is the schema of a database migrated in process with the
	// first n migrations, with its row counts unless n is all of them.
	refs := map[int]string{}
	ref := func(n int) string {
		if s, ok := refs[n]; ok {
			return s
		}
		refs[n] = schemaOf(t, ctx, nc, fmt.Sprintf("ref_%d", n), n < len(all), func(dsn string) {
			migrateFirst(t, ctx, dsn, n)
		})
		return refs[n]
	}

	// A first start that is not killed: how long its migrations take,
	// from the process's start.
	db := 0
	fresh := func() (string, *pgx.Conn) {
		db++
		name := fmt.Sprintf("gw_%d", db)
		if err := nc.pg.EnsureDatabase(ctx, name); err != nil {
			t.Fatal(err)
		}
		nc.dsn = nc.pg.DSN(name)
		return name, k.connect(nc.dsn)
	}
	applied := func(conn *pgx.Conn) []int {
		if !tableExists(t, ctx, conn, "schema_migrations") {
			return nil
		}
		rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	name0, conn := fresh()
	began := time.Now()
	k.node = nc.spawn(k.id)
	var first, done time.Duration
	waitFor(t, 2*time.Minute, "the first start's migrations", func() bool {
		vs := applied(conn)
		if len(vs) > 0 && first == 0 {
			first = time.Since(began)
		}
		if len(vs) == len(all) {
			done = time.Since(began)
			return true
		}
		return false
	})
	waitReady(t, k.node, began)
	if got, want := schemaOf(t, ctx, nc, name0, false, nil), ref(len(all)); got != want {
		t.Fatalf("the schema of an uninterrupted first start differs from the migrations applied in process:\n%s", diffLines(want, got))
	}
	k.node.kill()
	t.Logf("uninterrupted first start: the first migration recorded after %v, the last after %v", first, done)

	// The migrations take a fraction of a second: a delay from the
	// process's start would mostly land before or after them. Each kill
	// instead aims at a random migration: once k are recorded (k at
	// random, the table polled every 2 ms), it comes after a random part
	// of two migrations' mean time.
	const iterations = 6
	per := (done - first) / time.Duration(len(all))
	var at []int
	for i := range iterations {
		name, conn := fresh()
		k.id = fmt.Sprintf("mig-%d", i)
		aim := k.rng.IntN(len(all))
		delay := k.between(0, 2*per)
		began := time.Now()
		k.node = nc.spawn(k.id)
		deadline := began.Add(2 * time.Minute)
		for len(applied(conn)) < aim || (aim == 0 && !tableExists(t, ctx, conn, "schema_migrations")) {
			if time.Now().After(deadline) {
				t.Fatalf("iteration %d: %d migrations not recorded after 2 min: %s", i, aim, tail(k.node.logs.String(), 20))
			}
			time.Sleep(2 * time.Millisecond) // polled: the moment to kill at
		}
		k.killAt(time.Now().Add(delay))
		vs := applied(conn)
		at = append(at, len(vs))
		for j, v := range vs {
			if v != all[j].Version {
				t.Fatalf("iteration %d: recorded versions %v: not the first %d migrations", i, vs, len(vs))
			}
		}
		switch got, want := schemaOf(t, ctx, nc, name, len(vs) < len(all), nil), ref(len(vs)); {
		case len(vs) == 0:
			// Killed before the first migration: PostGIS and the
			// bookkeeping table may be there or not, nothing else.
			for _, l := range strings.Split(got, "\n") {
				if l != "" && !slices.Contains(strings.Split(want, "\n"), l) {
					t.Fatalf("iteration %d: killed after %v before any migration was recorded, yet the schema has %q", i, delay, l)
				}
			}
		case got != want:
			t.Fatalf("iteration %d: killed %v after %d migrations were recorded, with %d recorded: the schema is not theirs (half applied?):\n%s", i, delay, aim, len(vs), diffLines(want, got))
		}
		k.start(true)
		if vs := applied(conn); len(vs) != len(all) {
			t.Fatalf("iteration %d: after the restart %d migrations recorded, want %d", i, len(vs), len(all))
		}
		if got, want := schemaOf(t, ctx, nc, name, false, nil), ref(len(all)); got != want {
			t.Fatalf("iteration %d: after the restart the schema is not the migrations':\n%s", i, diffLines(want, got))
		}
		k.node.kill()
		t.Logf("iteration %d: killed %v after %d migrations were recorded: %d of %d recorded; restart ready in %v", i, delay, aim, len(vs), len(all), k.ready[len(k.ready)-1])
	}
	mid := 0
	for _, n := range at {
		if n > 0 && n < len(all) {
			mid++
		}
	}
	k.reliability("migration", iterations,
		fmt.Sprintf("kills at %v of %d migrations recorded (%d mid-way); schema after the kill = a database migrated with exactly the recorded prefix; after restart all recorded and schema = full", at, len(all), mid),
		"nothing: no half-applied migration")
}

// tableExists reports whether the database of conn has table name.
func tableExists(t *testing.T, ctx context.Context, conn *pgx.Conn, name string) bool {
	t.Helper()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

// migrateFirst applies the first n migrations to the database at dsn.
func migrateFirst(t *testing.T, ctx context.Context, dsn string, n int) {
	t.Helper()
	files := fstest.MapFS{}
	names, err := fs.Glob(migrations.FS(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, name := range names[:n] {
		b, err := fs.ReadFile(migrations.FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: b}
	}
	pool, err := database.Open(ctx, dsn, database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := database.Migrate(ctx, pool, files); err != nil {
		t.Fatal(err)
	}
}

// schemaOf describes the schema of database name, made first by build when given: its tables, columns,
// indexes, constraints, functions, triggers, views, types and
// extensions, without the objects of extensions, and with counts the
// row count of every table (what migrations wrote, before a gridwatch
// ran on it).
func schemaOf(t *testing.T, ctx context.Context, nc *nodeCluster, name string, counts bool, build func(string)) string {
	t.Helper()
	if err := nc.pg.EnsureDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	dsn := nc.pg.DSN(name) + " " + testApp
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if build != nil {
		build(dsn)
	}
	const own = `n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = %s AND d.deptype = 'e')`
	q := `SELECT 'extension ' || extname FROM pg_extension
	UNION ALL SELECT 'relation ' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i') AND ` + fmt.Sprintf(own, "c.oid") + `
	UNION ALL SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
			|| coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
		WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm') AND ` + fmt.Sprintf(own, "c.oid") + `
	UNION ALL SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE ` + fmt.Sprintf(own, "c.oid") + `
	UNION ALL SELECT 'constraint ' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ` + fmt.Sprintf(own, "c.oid") + `
	UNION ALL SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(p.prosrc) FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ` + fmt.Sprintf(own, "p.oid") + `
	UNION ALL SELECT 'trigger ' || pg_get_triggerdef(g.oid) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal AND ` + fmt.Sprintf(own, "c.oid") + `
	UNION ALL SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('v', 'm') AND ` + fmt.Sprintf(own, "c.oid") + `
	UNION ALL SELECT 'type ' || t.typname || ' ' || t.typtype::text || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE t.typtype IN ('e', 'd', 'c') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') AND ` + fmt.Sprintf(own, "t.oid")
	rows, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("schema: %v", err)
	}
	if counts {
		rows, err := conn.Query(ctx, `SELECT 'rows ' || c.relname || ' ' || (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', c.relname), false, true, '')))[1]::text
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND c.relname <> 'schema_migrations' AND `+fmt.Sprintf(own, "c.oid"))
		if err != nil {
			t.Fatalf("schema: row counts: %v", err)
		}
		n, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("schema: row counts: %v", err)
		}
		lines = append(lines, n...)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// diffLines lists the lines only in want (-) and only in got (+).
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("… and %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}

// --- bulk ingest ---

// bulkLines is how many lines one killed bulk request sends: several of
// the transactions it is stored in (incident.BulkBatch lines each).
const bulkLines = 15000

// bulkBody is an NDJSON body of n good reports keyed prefix-0, prefix-1, …
// spread over the demo city.
func bulkBody(prefix string, n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, `{"source":"sensor","external_id":"%s-%d","category":"0101","title":"传感器告警","location":{"type":"Point","coordinates":[%.6f,%.6f]}}`+"\n",
			prefix, i, 113.64+float64(i%97)*0.0007, 34.76+float64(i/97%97)*0.0005)
	}
	return buf.Bytes()
}

// bulkResult is what a bulk request answered before it ended.
type bulkResult struct {
	acked   map[int]int64 // line (from 1) → incident, created or duplicate
	created int
	dups    int
	summary bool
	// errors counts the lines refused, err says what the first was.
	errors int
	err    error
}

// sendBulk posts body to node's bulk endpoint and reads the answer as it
// comes, until its summary or until the connection breaks.
func sendBulk(ctx context.Context, url string, body []byte) (bulkResult, error) {
	res := bulkResult{acked: map[int]int64{}}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/incidents/bulk", bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return res, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var r struct {
			Line    int             `json:"line"`
			Status  string          `json:"status"`
			ID      int64           `json:"id"`
			Summary json.RawMessage `json:"summary"`
			Error   json.RawMessage `json:"error"`
		}
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) && res.summary {
				return res, res.err
			}
			return res, fmt.Errorf("the answer broke off after %d lines: %w", len(res.acked), err)
		}
		switch {
		case r.Summary != nil:
			res.summary = true
		case r.Status == "created":
			res.acked[r.Line], res.created = r.ID, res.created+1
		case r.Status == "duplicate":
			res.acked[r.Line], res.dups = r.ID, res.dups+1
		default:
			if res.err == nil {
				res.err = fmt.Errorf("line %d: %s %s", r.Line, r.Status, r.Error)
			}
			res.errors++
		}
	}
}

// TestKillBulkIngest kills the node while it stores a bulk request of
// bulkLines reports (its body still uploading or its batches being
// inserted). Right after the kill, each of the request's transactions is
// there whole or not at all (its reports, and its audit entry with their
// count), and every line the node acknowledged is stored. After the
// restart, the same request sent again stores each report exactly once:
// the ones stored before come back as duplicates with their first ids.
func TestKillBulkIngest(t *testing.T) {
	k := newKiller(t, "bulk")
	nc := k.nc
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node := k.startWithCity()
	// How long a whole request takes: the kills fall within it.
	began := time.Now()
	res, err := sendBulk(ctx, node.url, bulkBody("warm", bulkLines))
	took := time.Since(began)
	if err != nil || res.created != bulkLines {
		t.Fatalf("an uninterrupted bulk request: %d created, %d refused, %v", res.created, res.errors, err)
	}
	t.Logf("an uninterrupted bulk request of %d lines took %v", bulkLines, took)

	const iterations = 4
	batch := incident.BulkBatch
	var stored, unacked, partial int
	for i := range iterations {
		prefix := fmt.Sprintf("kill%d", i)
		body := bulkBody(prefix, bulkLines)
		auditBefore := one[int64](nc, `SELECT coalesce(max(id), 0) FROM audit_log`)
		delay := k.between(0, took)
		type outcome struct {
			res bulkResult
			err error
		}
		out := make(chan outcome, 1)
		go func() {
			res, err := sendBulk(ctx, k.node.url, body)
			out <- outcome{res, err}
		}()
		k.killAt(time.Now().Add(delay))
		o := <-out
		if o.err == nil {
			t.Logf("iteration %d: the request was answered whole before the kill at %v", i, delay)
		}
		// Each transaction of the request whole or not at all.
		rows := nc.query(`SELECT split_part(external_id, '-', 2)::int, id FROM incidents WHERE source = 'sensor' AND external_id LIKE $1`, prefix+"-%")
		ids := map[int]int64{}
		perBatch := map[int]int{}
		for _, r := range rows {
			line := int(r[0].(int32))
			ids[line+1] = r[1].(int64)
			perBatch[line/batch]++
		}
		for b, n := range perBatch {
			if want := min(batch, bulkLines-b*batch); n != want {
				t.Errorf("iteration %d: batch %d (lines %d to %d) stored %d of its %d reports: half a transaction", i, b, b*batch+1, (b+1)*batch, n, want)
			}
		}
		audited := one[int64](nc, `SELECT coalesce(sum((summary->>'created')::int), 0)::bigint FROM audit_log WHERE id > $1 AND action = 'incident.bulk'`, auditBefore)
		if audited != int64(len(ids)) {
			t.Errorf("iteration %d: %d reports stored, the audit log counts %d created", i, len(ids), audited)
		}
		for line, id := range o.res.acked {
			if ids[line] != id {
				t.Errorf("iteration %d: line %d acknowledged as incident %d, stored as %d", i, line, id, ids[line])
			}
		}
		if len(ids) > 0 && len(ids) < bulkLines {
			partial++
		}
		stored += len(ids)
		unacked += len(ids) - len(o.res.acked)
		t.Logf("iteration %d: killed after %v: %d lines acknowledged, %d stored (%d whole transactions)", i, delay, len(o.res.acked), len(ids), len(perBatch))

		// The same request again, after the restart: each report once.
		k.start(true)
		again, err := sendBulk(ctx, k.node.url, body)
		if err != nil {
			t.Fatalf("iteration %d: the request sent again: %v", i, err)
		}
		if again.dups != len(ids) || again.created != bulkLines-len(ids) {
			t.Errorf("iteration %d: sent again: %d created, %d duplicates; want %d and %d", i, again.created, again.dups, bulkLines-len(ids), len(ids))
		}
		for line, id := range ids {
			if again.acked[line] != id {
				t.Errorf("iteration %d: line %d stored as %d before the kill, answered as %d after", i, line, id, again.acked[line])
				break
			}
		}
		if n := one[int64](nc, `SELECT count(DISTINCT external_id) FILTER (WHERE n = 1) FROM (SELECT external_id, count(*) AS n FROM incidents
			WHERE source = 'sensor' AND external_id LIKE $1 GROUP BY external_id) x`, prefix+"-%"); n != bulkLines {
			t.Errorf("iteration %d: %d reports stored exactly once, want all %d", i, n, bulkLines)
		}
		if t.Failed() {
			return
		}
	}
	k.reliability("bulk-ingest", iterations,
		fmt.Sprintf("%d-line requests killed at random within an uninterrupted one's %v (%d killed part-way); each %d-line transaction whole or absent, audit count = rows, acknowledged ⊆ stored; resent after restart: each stored once, earlier ones answered as duplicates with their ids",
			bulkLines, took.Round(time.Millisecond), partial, batch),
		fmt.Sprintf("nothing: %d reports stored before the kills (%d of them not acknowledged, answered as duplicates on resend), 0 acknowledged and lost", stored, unacked))
}

// --- boundary change ---

// TestKillBoundaryChange kills the node while it commits a redraw of a
// grid that moves thousands of cases and a few cameras to another grid
// (the grid shrinks to 80% about its centre, or grows back). Right after
// the kill and after the restart the grid has its old boundary, version
// and history with every case and camera where the old boundaries put
// them, or the new boundary, version and history with every one where
// the new ones put them: each reported case's and each camera's grid is
// the finest grid covering it (lowest code on an edge), by PostGIS on the
// stored boundaries. The grid revision, the history and the audit log
// move with the change or not at all.
func TestKillBoundaryChange(t *testing.T) {
	k := newKiller(t, "bound")
	nc := k.nc
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node := k.startWithCity()
	g := nc.query(`SELECT id, ST_AsGeoJSON(geom, 15), ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom),
			ST_AsGeoJSON(ST_Multi(ST_Intersection(geom, ST_Translate(ST_Scale(ST_Translate(geom, -ST_X(c), -ST_Y(c)), 0.8, 0.8), ST_X(c), ST_Y(c)))), 15)
		FROM grids, ST_Centroid(geom) c WHERE level = 'grid' ORDER BY code LIMIT 1`)[0]
	grid := g[0].(int64)
	shapes := map[string]string{"old": g[1].(string), "new": g[6].(string)}
	x0, y0, x1, y1 := g[2].(float64), g[3].(float64), g[4].(float64), g[5].(float64)
	w, h := x1-x0, y1-y0
	// Cases over the grid and around it, a third of them in the strip the
	// redraw hands over; cameras likewise.
	const cases, cameras = 8000, 12
	var body bytes.Buffer
	for i := range cases {
		fmt.Fprintf(&body, `{"source":"hotline","external_id":"b-%d","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[%.7f,%.7f]}}`+"\n",
			i, x0-0.1*w+1.2*w*float64(i%89)/88, y0-0.1*h+1.2*h*float64(i/89)/float64(cases/89))
	}
	if res, err := sendBulk(ctx, node.url, body.Bytes()); err != nil || res.created != cases {
		t.Fatalf("file the cases: %d created, %v", res.created, err)
	}
	for i := range cameras {
		b, _ := json.Marshal(map[string]any{
			"code": fmt.Sprintf("BOUND-CAM-%02d", i), "name": fmt.Sprintf("Camera %d", i),
			"location": map[string]any{"type": "Point", "coordinates": []float64{x0 + w*float64(i+1)/float64(cameras+1), y0 + h*float64(i%3+1)/4}},
			"heading":  90, "fov": 60, "range": 50, "main_url": "rtsp://127.0.0.1:9/none", "record": false,
		})
		if st := post(t, http.DefaultClient, node.url+"/api/v1/cameras", b, nil); st != http.StatusCreated {
			t.Fatalf("create camera %d: %d", i, st)
		}
	}

	// state checks the database: which boundary the grid has, and that
	// everything else agrees with it.
	type state struct {
		shape            string
		version, history int64
		revision, audits int64
	}
	check := func(when string) state {
		t.Helper()
		var st state
		for name, shape := range shapes {
			if one[bool](nc, `SELECT ST_Area(ST_SymDifference(geom, ST_SetSRID(ST_GeomFromGeoJSON($2), 4326))::geography) < 1 FROM grids WHERE id = $1`, grid, shape) {
				st.shape = name
			}
		}
		if st.shape == "" {
			t.Fatalf("%s: grid %d has neither its old nor its new boundary", when, grid)
		}
		st.version = int64(one[int32](nc, `SELECT version FROM grids WHERE id = $1`, grid))
		st.history = one[int64](nc, `SELECT count(*) FROM grid_versions WHERE grid_id = $1`, grid)
		st.revision = one[int64](nc, `SELECT revision FROM grid_revision`)
		st.audits = one[int64](nc, `SELECT count(*) FROM audit_log WHERE action = 'grid.redraw'`)
		if cur := nc.query(`SELECT v.version, ST_Area(ST_SymDifference(v.geom, g.geom)::geography) < 1 FROM grid_versions v JOIN grids g ON g.id = v.grid_id
			WHERE v.grid_id = $1 AND v.valid_to IS NULL`, grid); len(cur) != 1 || int64(cur[0][0].(int32)) != st.version || !cur[0][1].(bool) {
			t.Fatalf("%s: the grid's open history row %v does not match its version %d and boundary", when, cur, st.version)
		}
		for _, what := range []string{"incidents", "cameras"} {
			only := ""
			if what == "incidents" {
				only = " AND t.status = 'reported'"
			}
			wrong := nc.query(`SELECT t.id, t.grid_id, f.id FROM ` + what + ` t LEFT JOIN LATERAL (SELECT g.id FROM grids g
				WHERE ST_Covers(g.geom, t.location) ORDER BY g.level_rank DESC, g.code LIMIT 1) f ON true
				WHERE t.grid_id IS DISTINCT FROM f.id` + only + ` LIMIT 5`)
			if len(wrong) > 0 {
				t.Fatalf("%s: %s in a grid that does not cover them (id, grid, covering grid): %v", when, what, wrong)
			}
		}
		return st
	}
	inside := func() int64 {
		return one[int64](nc, `SELECT count(*) FROM incidents WHERE grid_id = $1`, grid)
	}
	before := check("before the first redraw")
	if before.shape != "old" {
		t.Fatal("the grid starts without its imported boundary")
	}
	// redraw sends the other boundary than the grid has, under If-Match.
	redraw := func(url string, st state) (int, error) {
		to := map[string]string{"old": "new", "new": "old"}[st.shape]
		req, err := http.NewRequestWithContext(ctx, "PUT", fmt.Sprintf("%s/api/v1/grids/%d/geometry", url, grid), strings.NewReader(shapes[to]))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("If-Match", geo.ETag(grid, int(st.version)))
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			return res.StatusCode, fmt.Errorf("redraw: %d: %s", res.StatusCode, b)
		}
		return res.StatusCode, nil
	}
	// An uninterrupted redraw: how long a commit takes.
	n0 := inside()
	began := time.Now()
	if _, err := redraw(node.url, before); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	st := check("after an uninterrupted redraw")
	if st.shape != "new" || st.version != before.version+1 || st.history != before.history+1 || st.revision <= before.revision || st.audits != before.audits+1 {
		t.Fatalf("an uninterrupted redraw: %+v, before %+v", st, before)
	}
	moved := n0 - inside()
	if moved < cases/10 {
		t.Fatalf("the redraw moved %d cases out of the grid; the test needs thousands", moved)
	}
	t.Logf("an uninterrupted redraw moved %d cases and took %v", moved, took)

	const iterations = 4
	committed := 0
	for i := range iterations {
		prev := st
		// Up to a fifth past its length: some kills come after the commit.
		delay := k.between(0, took*6/5)
		done := make(chan error, 1)
		go func() {
			_, err := redraw(k.node.url, prev)
			done <- err
		}()
		k.killAt(time.Now().Add(delay))
		answered := <-done == nil
		st = check(fmt.Sprintf("iteration %d, after the kill", i))
		changed := st.shape != prev.shape
		switch {
		case changed && (st.version != prev.version+1 || st.history != prev.history+1 || st.revision <= prev.revision || st.audits != prev.audits+1):
			t.Fatalf("iteration %d: the boundary changed but not all with it: %+v, before %+v", i, st, prev)
		case !changed && (st.version != prev.version || st.history != prev.history || st.revision != prev.revision || st.audits != prev.audits):
			t.Fatalf("iteration %d: the boundary did not change but something else did: %+v, before %+v", i, st, prev)
		case answered && !changed:
			t.Fatalf("iteration %d: the redraw was answered 200 but is not there", i)
		}
		if changed {
			committed++
		}
		k.start(true)
		if again := check(fmt.Sprintf("iteration %d, after the restart", i)); again != st {
			t.Fatalf("iteration %d: the restart changed the state: %+v, then %+v", i, st, again)
		}
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/grids/%d?geometry=false", k.node.url, grid), nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if etag := res.Header.Get("ETag"); res.StatusCode != 200 || etag != geo.ETag(grid, int(st.version)) {
			t.Fatalf("iteration %d: GET the grid: %d, ETag %s; want %s", i, res.StatusCode, etag, geo.ETag(grid, int(st.version)))
		}
		t.Logf("iteration %d: killed after %v: the redraw %s (answered: %v); restart ready in %v", i, delay,
			map[bool]string{true: "is committed", false: "is not there"}[changed], answered, k.ready[len(k.ready)-1])
	}
	k.reliability("boundary-change", iterations,
		fmt.Sprintf("redraws moving ~%d of %d cases and cameras, killed at random within an uninterrupted one's %v (%d committed, %d rolled back); grid boundary old or new with matching version, history row, revision and audit; every reported case and camera in the finest grid covering it (PostGIS ST_Covers) after the kill and after the restart",
			moved, cases, took.Round(time.Millisecond), committed, iterations-committed),
		"nothing: no mixed state")
}

// --- recording files ---

// recFile is a recorded file as the index or the disk has it.
type recFile struct {
	bytes int64
	open  bool
}

// recordingsOf reads the index rows of this node's local files, and the
// recorded files on its disk, by path under dir.
func recordingsOf(t *testing.T, nc *nodeCluster, dir string) (rows, files map[string]recFile) {
	t.Helper()
	rows, files = map[string]recFile{}, map[string]recFile{}
	for _, r := range nc.query(`SELECT path, bytes, open, status FROM recordings WHERE object_key IS NULL`) {
		if r[3].(string) != "ok" {
			t.Errorf("recording %s is %s", r[0], r[3])
			continue
		}
		rows[r[0].(string)] = recFile{bytes: r[1].(int64), open: r[2].(bool)}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".mp4") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = recFile{bytes: info.Size()}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return rows, files
}

// fileStart is when the recorded file rel (<camera>/<day>/<start ms>.mp4) starts.
func fileStart(rel string) time.Time {
	ms, _ := strconv.ParseInt(strings.TrimSuffix(filepath.Base(rel), ".mp4"), 10, 64)
	return time.UnixMilli(ms)
}

// TestKillRecordingClose kills the node while three cameras record in
// files of 2 s (fragments of 0.5 s), so that a kill falls near a file's
// close and the next one's opening. After the restart, once Reconcile has
// run (before the node is ready): every row has its file, holding at
// least the bytes indexed; every file on disk has its row (but for a
// camera's newest file opened since the restart, until its first
// fragment); no row is missing and no two overlap; and nothing indexed
// before the kill was lost. At the end the node stops cleanly and files
// and rows agree to the byte.
func TestKillRecordingClose(t *testing.T) {
	k := newEmbeddedKiller(t, "rec")
	nc := k.nc
	nc.extra = " --recording-fragment 500ms --recording-file 2s"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sim, err := camsim.New(camsim.Config{N: 3, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sim.Run(ctx) }()
	node := k.start(false)
	createCameras(t, node, sim, 3)
	dir := filepath.Join(nc.dirs[k.id], "recordings")
	closed := func() int64 { return one[int64](nc, `SELECT count(*) FROM recordings WHERE NOT open`) }
	waitFor(t, time.Minute, "each camera to close files", func() bool { return closed() >= 6 })

	const iterations = 4
	const file = 2 * time.Second
	var removed, torn, unindexed, opened, growing int64
	for i := range iterations {
		// A random moment within one file's length: each camera closes
		// one file and opens the next in it.
		prevClosed := closed()
		delay := k.between(0, file)
		k.killAt(time.Now().Add(delay))
		rowsAt, filesAt := recordingsOf(t, nc, dir)
		var tail int64
		for _, r := range rowsAt {
			if r.open {
				growing++ // Reconcile finishes its row
			}
		}
		for p, f := range filesAt {
			if r, ok := rowsAt[p]; !ok {
				opened++ // opened, no fragment indexed yet
			} else if f.bytes > r.bytes {
				tail += f.bytes - r.bytes
			}
		}
		unindexed += tail
		restarted := time.Now()
		k.start(true)
		rows, files := recordingsOf(t, nc, dir)
		// Nothing indexed before the kill is lost; what was written but
		// not indexed is indexed, or cut when it is a torn fragment.
		for p, r := range rowsAt {
			if rows[p].bytes < r.bytes {
				t.Errorf("iteration %d: %s indexed %d bytes before the kill, %d after", i, p, r.bytes, rows[p].bytes)
			}
		}
		for p, f := range filesAt {
			if r, ok := rows[p]; ok {
				torn += f.bytes - r.bytes
			} else if _, still := files[p]; still {
				t.Errorf("iteration %d: %s (%d bytes at the kill) has no row after the restart", i, p, f.bytes)
			} else {
				removed += f.bytes // it held no whole fragment
				if _, had := rowsAt[p]; had {
					t.Errorf("iteration %d: %s had a row before the kill and is gone", i, p)
				}
			}
		}
		checkRecordings(t, nc, i, rows, files, restarted)
		if n := nc.overlaps(); n > 0 {
			t.Errorf("iteration %d: %d overlapping pairs of rows", i, n)
		}
		t.Logf("iteration %d: killed %v in (%d files closed in that time); %d bytes written but not indexed at the kill; restart ready in %v",
			i, delay, closed()-prevClosed, tail, k.ready[len(k.ready)-1])
		if t.Failed() {
			return
		}
		// Recording again before the next kill.
		base := closed()
		waitFor(t, time.Minute, "the cameras to record again", func() bool { return closed() >= base+3 })
	}
	// A clean stop: files and rows agree to the byte.
	if err := k.node.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.node.done:
	case <-time.After(time.Minute):
		t.Fatal("the node did not stop within a minute of SIGTERM")
	}
	// It stopped its database too: the test starts it to look.
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(nc.dirs[k.id], "pg")})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	nc.db.Close(ctx)
	nc.db = k.connect(pg.DSN("gridwatch"))
	rows, files := recordingsOf(t, nc, dir)
	for p, f := range files {
		if r, ok := rows[p]; !ok || r.bytes != f.bytes || r.open {
			t.Errorf("after a clean stop: %s has %d bytes, its row %+v (found: %v)", p, f.bytes, r, ok)
		}
	}
	for p := range rows {
		if _, ok := files[p]; !ok {
			t.Errorf("after a clean stop: row %s has no file", p)
		}
	}
	k.reliability("recording-close", iterations,
		fmt.Sprintf("3 cameras, 2 s files of 0.5 s fragments, killed at random within a file's length (at the kills: %d files just opened, not yet indexed; %d growing rows; %d bytes written but not indexed); after reconcile: every row has its file with ≥ the bytes indexed, every file its row, none missing, none overlapping, nothing indexed before the kill lost; clean stop: files = rows to the byte",
			opened, growing, unindexed),
		fmt.Sprintf("no picture indexed before a kill; %d bytes of files holding no whole fragment (just opened: an initialisation segment) removed, %d bytes of torn fragments cut", removed, torn))
}

// checkRecordings checks a running node's index against its disk: every
// row's file is there with at least the bytes indexed, and every file has
// its row but a camera's newest, opened since since (its first fragment
// not yet indexed).
func checkRecordings(t *testing.T, nc *nodeCluster, i int, rows, files map[string]recFile, since time.Time) {
	t.Helper()
	for p, r := range rows {
		f, ok := files[p]
		if !ok || f.bytes < r.bytes {
			t.Errorf("iteration %d: row %s (%d bytes) has no such file (found %v, %d bytes)", i, p, r.bytes, ok, f.bytes)
		}
	}
	newest := map[string]string{}
	for p := range files {
		cam := strings.SplitN(filepath.ToSlash(p), "/", 2)[0]
		if fileStart(p).After(fileStart(newest[cam])) || newest[cam] == "" {
			newest[cam] = p
		}
	}
	for p := range files {
		if _, ok := rows[p]; ok {
			continue
		}
		cam := strings.SplitN(filepath.ToSlash(p), "/", 2)[0]
		if newest[cam] == p && !fileStart(p).Before(since.Add(-time.Second)) {
			continue
		}
		t.Errorf("iteration %d: file %s has no row (an orphan)", i, p)
	}
	if n := one[int64](nc, `SELECT count(*) FROM recordings WHERE status <> 'ok'`); n > 0 {
		t.Errorf("iteration %d: %d rows marked missing", i, n)
	}
}

// --- exports ---

// TestKillExport kills the node while it makes an evidence export (the
// kill comes once the export is running, after a random part of an
// uninterrupted one's time). After the restart the export is done or
// failed, with its status (and a message when failed) through the API;
// its file is there, with the SHA-256 stored, exactly when it is done;
// no temporary file is left. In the last round the camera's recorded
// files are lost while the node is down, so the export it resumes
// fails: that too is visible, and leaves nothing behind.
func TestKillExport(t *testing.T) {
	k := newEmbeddedKiller(t, "exp")
	nc := k.nc
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sim.Run(ctx) }()
	node := k.start(false)
	camera := createCameras(t, node, sim, 1)[0]
	const footage = 12 * time.Second
	var from, to time.Time
	waitFor(t, time.Minute, "footage to export", func() bool {
		r := nc.query(`SELECT min(lower(span)), max(upper(span)) FROM recordings WHERE camera_id = $1 AND NOT open`, camera)[0]
		if r[0] == nil {
			return false
		}
		from, to = r[0].(time.Time), r[1].(time.Time)
		return to.Sub(from) >= footage
	})
	dir := filepath.Join(nc.dirs[k.id], "exports")
	type export struct {
		ID     int64   `json:"id"`
		Status string  `json:"status"`
		SHA256 *string `json:"sha256"`
		Bytes  *int64  `json:"bytes"`
		Error  *string `json:"error"`
		// Existing: an earlier export of the same range answered.
		Existing bool `json:"existing"`
	}
	request := func(n int) int64 {
		t.Helper()
		// A range of its own each time: the same one would be answered
		// with the export made before.
		body, _ := json.Marshal(map[string]any{"camera_id": camera, "from": from.Add(time.Duration(n) * time.Millisecond), "to": to})
		var e export
		if st := post(t, http.DefaultClient, k.node.url+"/api/v1/exports", body, &e); st != http.StatusAccepted || e.Existing {
			t.Fatalf("request export %d: %d %+v", n, st, e)
		}
		return e.ID
	}
	status := func(id int64) string { return one[string](nc, `SELECT status FROM exports WHERE id = $1`, id) }
	// finished waits for export id through the API and checks it: a done
	// one's file has the stored SHA-256 and size, a failed one says why
	// and has no file; no temporary file is left.
	finished := func(id int64, when string) export {
		t.Helper()
		var e export
		waitFor(t, time.Minute, fmt.Sprintf("%s: export %d to finish", when, id), func() bool {
			if code := getJSON(t, fmt.Sprintf("%s/api/v1/exports/%d", k.node.url, id), &e); code != 200 {
				t.Fatalf("%s: GET export %d: %d", when, id, code)
			}
			return e.Status == "done" || e.Status == "failed"
		})
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.mp4", id)))
		switch {
		case e.Status == "done":
			sum := sha256.Sum256(b)
			if err != nil || e.SHA256 == nil || *e.SHA256 != hex.EncodeToString(sum[:]) || e.Bytes == nil || *e.Bytes != int64(len(b)) {
				t.Fatalf("%s: export %d done, stored sha256 %v, %v bytes; its file: %d bytes, sha256 %x, %v", when, id, e.SHA256, e.Bytes, len(b), sum, err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			t.Fatalf("%s: export %d failed, yet its file is there (%v)", when, id, err)
		case e.Error == nil || *e.Error == "":
			t.Fatalf("%s: export %d failed without a message", when, id)
		}
		checkExportFiles(t, nc, dir, when)
		return e
	}
	// An uninterrupted export: how long it runs.
	id := request(0)
	var began time.Time
	waitEvery(t, time.Minute, time.Millisecond, "the export to finish", func() bool {
		st := status(id)
		if st == "running" && began.IsZero() {
			began = time.Now()
		}
		return st == "done" || st == "failed"
	})
	took := time.Since(began)
	if e := finished(id, "uninterrupted"); e.Status != "done" {
		t.Fatalf("an uninterrupted export: %+v", e)
	}
	t.Logf("an uninterrupted export of %v ran for about %v", to.Sub(from).Round(time.Second), took)

	const iterations = 4
	var midRun, done, failed int
	var leftAtKill []string
	for i := range iterations {
		id := request(i + 1)
		// The export runs for tens of milliseconds: its start is polled
		// every millisecond.
		waitEvery(t, time.Minute, time.Millisecond, "the export to start", func() bool { return status(id) != "queued" })
		last := i == iterations-1
		delay := k.between(0, took)
		if last {
			delay = k.between(0, took/3) // while it runs, most likely
		}
		k.killAt(time.Now().Add(delay))
		atKill := status(id)
		if atKill == "running" {
			midRun++
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".part") || strings.HasSuffix(e.Name(), ".files") {
				leftAtKill = append(leftAtKill, e.Name())
			}
		}
		if last {
			// The footage is lost while the node is down.
			if err := os.RemoveAll(filepath.Join(nc.dirs[k.id], "recordings", strconv.FormatInt(camera, 10))); err != nil {
				t.Fatal(err)
			}
		}
		k.start(true)
		e := finished(id, fmt.Sprintf("iteration %d", i))
		switch {
		case last && atKill == "running" && e.Status != "failed":
			t.Fatalf("iteration %d: the export was running at the kill and its footage is gone, yet it is %s", i, e.Status)
		case !last && e.Status != "done":
			t.Fatalf("iteration %d: the export resumed after the restart is %s (%v), want done", i, e.Status, e.Error)
		}
		if e.Status == "done" {
			done++
		} else {
			failed++
		}
		t.Logf("iteration %d: killed %v after the export started (%s at the kill); after the restart %s; restart ready in %v",
			i, delay, atKill, e.Status, k.ready[len(k.ready)-1])
	}
	k.reliability("export", iterations,
		fmt.Sprintf("exports killed once running, at random within an uninterrupted one's %v (%d running at the kill; temporary files at the kills: %v); after restart done or failed through the API (%d done, %d failed: footage lost while down), file there with the stored SHA-256 iff done, a message iff failed, no temporary or orphan file",
			took.Round(time.Millisecond), midRun, leftAtKill, done, failed),
		"nothing: every export killed was made again from its footage, or failed visibly when the footage was gone")
}

// checkExportFiles checks the exports directory against the rows: every
// file is a finished export's (no .part, no copies of footage left), and
// every export done on local disk has its file.
func checkExportFiles(t *testing.T, nc *nodeCluster, dir, when string) {
	t.Helper()
	done := map[string]bool{}
	for _, r := range nc.query(`SELECT id FROM exports WHERE status = 'done' AND object_key IS NULL`) {
		done[fmt.Sprintf("%d.mp4", r[0].(int64))] = true
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !done[e.Name()] {
			t.Errorf("%s: %s in the exports directory is no finished export's file", when, e.Name())
		}
		delete(done, e.Name())
	}
	for name := range done {
		t.Errorf("%s: export %s is done but has no file", when, name)
	}
}
