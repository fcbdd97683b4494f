package incident

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
	"gridwatch/internal/events"
)

// BulkBatch is how many lines go to the database in one transaction.
const BulkBatch = 5000

// BulkWorkers is how many batches are stored at once.
const BulkWorkers = 2

// maxLine is the longest NDJSON line accepted.
const maxLine = 64 << 10

// LineResult is what became of one NDJSON line.
type LineResult struct {
	Line   int    `json:"line"`
	Status string `json:"status"` // created, duplicate or error
	ID     int64  `json:"id,omitempty"`
	Grid   *int64 `json:"grid_id,omitempty"`
	Error  *struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details,omitempty"`
	} `json:"error,omitempty"`
}

// BulkSummary counts a bulk request's lines.
type BulkSummary struct {
	Lines      int `json:"lines"`
	Created    int `json:"created"`
	Duplicates int `json:"duplicates"`
	Errors     int `json:"errors"`
}

func lineError(line int, err error) LineResult {
	r := LineResult{Line: line, Status: "error"}
	r.Error = &struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details,omitempty"`
	}{gridwatch.ErrorCode(err), gridwatch.ErrorMessage(err), gridwatch.ErrorDetails(err)}
	return r
}

type pending struct {
	line int
	n    NewIncident
	id   int64
	grid *int64
	due  time.Time
}

// parsed is one batch of lines read from the stream: the good ones ready
// for the database and the results of the bad ones.
type parsed struct {
	batch  []pending
	failed []LineResult
	lines  int
	err    error // reading the stream failed
}

// Bulk files the reports of an NDJSON stream (one JSON incident a line;
// blank lines skipped). Good lines are stored, in batches, each batch in one
// transaction with COPY; bad lines are reported and skipped; a line that
// repeats an earlier report (same source and external id) answers with the
// incident first filed. emit receives every line's result, in line order.
// Reading and parsing the next batch overlaps storing the current one.
func (s *Service) Bulk(ctx context.Context, r io.Reader, crs geo.CRS, by Reporter, emit func(LineResult) error) (BulkSummary, error) {
	var sum BulkSummary
	hours, err := s.subclassHours(ctx)
	if err != nil {
		return sum, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan parsed, 1)
	go func() {
		defer close(batches)
		s.parseStream(ctx, r, crs, hours, batches)
	}()
	// Batches are stored by BulkWorkers transactions at once (PostgreSQL
	// runs each on its own core) and answered in stream order.
	type job struct {
		p    parsed
		done chan error
		res  []LineResult
	}
	jobs := make(chan *job, BulkWorkers)
	go func() {
		defer close(jobs)
		sem := make(chan struct{}, BulkWorkers)
		var wg sync.WaitGroup
		defer wg.Wait()
		for p := range batches {
			j := &job{p: p, done: make(chan error, 1)}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
			if p.err != nil {
				j.done <- p.err
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				j.done <- ctx.Err()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				stored, err := s.insertBatch(ctx, j.p.batch, by)
				if err == nil && s.onCreated != nil {
					var ids []int64
					for _, r := range stored {
						if r.Status == "created" {
							ids = append(ids, r.ID)
						}
					}
					if len(ids) > 0 {
						s.onCreated(ctx, ids)
					}
				}
				j.res = stored
				j.done <- err
			}()
		}
	}()
	// On an early return, let the reader and the writers finish first.
	defer func() {
		cancel()
		for j := range jobs {
			<-j.done
		}
		for range batches {
		}
	}()
	for j := range jobs {
		if err := <-j.done; err != nil {
			return sum, err
		}
		sum.Lines += j.p.lines
		results := append(j.p.failed, j.res...)
		slices.SortFunc(results, func(a, b LineResult) int { return a.Line - b.Line })
		for _, r := range results {
			switch r.Status {
			case "created":
				sum.Created++
			case "duplicate":
				sum.Duplicates++
			default:
				sum.Errors++
			}
			if err := emit(r); err != nil {
				return sum, err
			}
		}
	}
	return sum, nil
}

// BulkEventIDs caps the new cases' ids an incident.bulk event names for one
// subscriber; past it the event says "more" and the dashboard reloads.
const BulkEventIDs = 100

// bulkEventMaxIDs caps the ids one event stores over all grids.
const bulkEventMaxIDs = 1000

// BulkEventGrid is one grid's part of an incident.bulk event: how many new
// cases it got and the ids of up to BulkEventIDs of them.
type BulkEventGrid struct {
	N   int     `json:"n"`
	IDs []int64 `json:"ids"`
}

// bulkEventData is what an incident.bulk event records of a batch: the
// count, the grids touched and, per grid ("0" for cases in no grid), its
// count and new ids, so that each subscriber can be told the new cases in
// its own scope and nothing of the others (api rewrites it per
// subscriber).
func bulkEventData(created map[int64]*int64) map[string]any {
	ids := make([]int64, 0, len(created))
	for id := range created {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	byGrid := map[string]*BulkEventGrid{}
	var touched []int64
	stored := 0
	for _, id := range ids {
		var g int64
		if created[id] != nil {
			g = *created[id]
		}
		key := strconv.FormatInt(g, 10)
		bg := byGrid[key]
		if bg == nil {
			bg = &BulkEventGrid{IDs: []int64{}}
			byGrid[key] = bg
			if g != 0 {
				touched = append(touched, g)
			}
		}
		bg.N++
		if len(bg.IDs) < BulkEventIDs && stored < bulkEventMaxIDs {
			bg.IDs = append(bg.IDs, id)
			stored++
		}
	}
	slices.Sort(touched)
	if touched == nil {
		touched = []int64{}
	}
	return map[string]any{"created": len(created), "grids": touched, "by_grid": byGrid}
}

// BulkEventView is what one subscriber is told of an incident.bulk event:
// how many new cases it may see, the ids of up to BulkEventIDs of them, and
// whether there are more (then it reloads its list).
type BulkEventView struct {
	Created int     `json:"created"`
	IDs     []int64 `json:"ids"`
	More    bool    `json:"more"`
}

// ViewBulkEvent reads the data of an incident.bulk event for a subscriber
// who may see grid g when see(g) is true (g 0: cases in no grid).
func ViewBulkEvent(data []byte, see func(g int64) bool) (BulkEventView, error) {
	var d struct {
		Created int                      `json:"created"`
		ByGrid  map[string]BulkEventGrid `json:"by_grid"`
	}
	v := BulkEventView{IDs: []int64{}}
	if err := json.Unmarshal(data, &d); err != nil {
		return v, err
	}
	if d.ByGrid == nil {
		// An event of an older version: only a count.
		v.Created, v.More = d.Created, d.Created > 0
		return v, nil
	}
	for key, bg := range d.ByGrid {
		g, err := strconv.ParseInt(key, 10, 64)
		if err != nil || !see(g) {
			continue
		}
		v.Created += bg.N
		v.IDs = append(v.IDs, bg.IDs...)
		v.More = v.More || len(bg.IDs) < bg.N
	}
	slices.Sort(v.IDs)
	if len(v.IDs) > BulkEventIDs {
		v.IDs, v.More = v.IDs[:BulkEventIDs], true
	}
	return v, nil
}

// readLine reads one line of at most max bytes (without its newline). A
// longer line is read to its end and dropped, with tooLong set, so the
// lines after it are still read. err is io.EOF after the last line.
func readLine(br *bufio.Reader, max int, buf []byte) (line []byte, tooLong bool, err error) {
	buf = buf[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > max+1 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf, []byte("\n")), tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, tooLong, err
		}
	}
}

// parseStream reads the stream into batches of BulkBatch good lines.
func (s *Service) parseStream(ctx context.Context, r io.Reader, crs geo.CRS, hours map[string]int, out chan<- parsed) {
	br := bufio.NewReaderSize(r, 64<<10)
	var cur parsed
	send := func() bool {
		select {
		case out <- cur:
			cur = parsed{}
			return true
		case <-ctx.Done():
			return false
		}
	}
	buf := make([]byte, 0, 64<<10)
	line := 0
	for {
		raw, tooLong, rerr := readLine(br, maxLine, buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			cur.err = fmt.Errorf("read the stream: %w", rerr)
			send()
			return
		}
		if rerr != nil && len(raw) == 0 && !tooLong {
			break
		}
		line++
		text := bytes.TrimSpace(raw)
		switch {
		case tooLong:
			cur.lines++
			cur.failed = append(cur.failed, lineError(line, gridwatch.Errorf(gridwatch.ETooLarge, "line %d is longer than %d bytes; skipped", line, maxLine)))
		case len(text) == 0:
		default:
			cur.lines++
			now := s.now()
			n, err := ParseNew(text, crs, now)
			if err == nil && n.ReportedAt.IsZero() {
				n.ReportedAt = now
			}
			if err == nil && (n.Via != "" || n.AccuracyM != nil) {
				err = FieldError("via", "via and accuracy_m come with a field app report, one at a time (POST /api/v1/incidents), not in bulk")
			}
			if err == nil && n.ComponentID != nil {
				err = FieldError("component_id", "a component case is filed one at a time (POST /api/v1/incidents), not in bulk")
			}
			if err == nil {
				if h, ok := hours[n.Category]; !ok {
					err = FieldError("category", "%q is not a known subclass code (such as 0101; GET /api/v1/categories lists them)", n.Category)
				} else {
					cur.batch = append(cur.batch, pending{line: line, n: n, due: n.ReportedAt.Add(time.Duration(h) * time.Hour)})
				}
			}
			if err != nil {
				cur.failed = append(cur.failed, lineError(line, err))
			}
		}
		if len(cur.batch) >= BulkBatch && !send() {
			return
		}
		if rerr != nil {
			break
		}
	}
	if cur.lines > 0 {
		send()
	}
}

func (s *Service) subclassHours(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, "SELECT code, deadline_hours FROM incident_categories WHERE parent_code IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var code string
		var h int
		if err := rows.Scan(&code, &h); err != nil {
			return nil, err
		}
		out[code] = h
	}
	return out, rows.Err()
}

// insertBatch stores one batch in one transaction: ids drawn up front, grids
// assigned in process (or by PostGIS when the index is behind), rows copied
// into a staging table and inserted from it, duplicates skipped.
func (s *Service) insertBatch(ctx context.Context, batch []pending, by Reporter) ([]LineResult, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	var results []LineResult
	now := s.now()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Batch work: bounded by its context, not by a request's statement timeout.
		if err := database.Long(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1)", len(batch))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		inProcess := false
		if s.loc != nil {
			var rev int64
			if err := tx.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rev); err != nil {
				return err
			}
			inProcess = rev == s.loc.Revision()
		}
		for i := range batch {
			batch[i].id = ids[i]
			if inProcess {
				if ref, ok := s.loc.Assign(batch[i].n.Lon, batch[i].n.Lat); ok {
					id := ref.ID
					batch[i].grid = &id
				}
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE bulk_incidents (
			line int, id bigint, source text, external_id text, category text, title text, description text,
			lon float8, lat float8, address text, reported_at timestamptz, priority text, grid_id bigint, deadline timestamptz
		) ON COMMIT DROP`); err != nil {
			return err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"bulk_incidents"},
			[]string{"line", "id", "source", "external_id", "category", "title", "description", "lon", "lat", "address", "reported_at", "priority", "grid_id", "deadline"},
			pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
				p := batch[i]
				return []any{p.line, p.id, string(p.n.Source), p.n.ExternalID, p.n.Category, p.n.Title, p.n.Description,
					p.n.Lon, p.n.Lat, p.n.Address, p.n.ReportedAt, p.n.Priority, p.grid, p.due}, nil
			}))
		if err != nil {
			return fmt.Errorf("bulk copy: %w", err)
		}
		if !inProcess {
			if _, err := tx.Exec(ctx, `UPDATE bulk_incidents b SET grid_id = (SELECT g.id FROM grids g
				WHERE ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(b.lon, b.lat), 4326)) ORDER BY g.level_rank DESC, g.code LIMIT 1)`); err != nil {
				return fmt.Errorf("bulk assign: %w", err)
			}
		}
		// A confined reporter's lines outside their grids are refused, each
		// naming where it lies; the rest of the batch is stored.
		refused := map[int]error{}
		if by.Confine != nil {
			rows, err := tx.Query(ctx, `DELETE FROM bulk_incidents b
				WHERE b.grid_id IS NULL OR b.grid_id NOT IN (SELECT * FROM grid_subtree($1))
				RETURNING b.line, b.lon, b.lat, (SELECT g.code FROM grids g WHERE g.id = b.grid_id)`, by.confineIDs())
			if err != nil {
				return fmt.Errorf("bulk scope: %w", err)
			}
			for rows.Next() {
				var line int
				var lon, lat float64
				var code *string
				if err := rows.Scan(&line, &lon, &lat, &code); err != nil {
					rows.Close()
					return err
				}
				refused[line] = outsideError(by, lon, lat, deref(code))
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("bulk scope: %w", err)
			}
		}
		rows, err = tx.Query(ctx, `WITH ins AS (
				INSERT INTO incidents (id, source, external_id, category, title, description, location, address,
					reported_at, received_at, priority, grid_id, deadline, created_by, created_by_token, updated_at, reporter_key)
				OVERRIDING SYSTEM VALUE
				SELECT id, source, NULLIF(external_id, ''), category, title, description, ST_SetSRID(ST_MakePoint(lon, lat), 4326), address,
					reported_at, $1, priority, grid_id, deadline, $2, NULLIF($3::bigint, 0), $1, $4
				FROM bulk_incidents ORDER BY source, external_id -- one order for all writers: no deadlock between two
				ON CONFLICT DO NOTHING RETURNING id, grid_id
			) SELECT id, grid_id FROM ins`, now, by.Name, by.TokenID, by.key())
		if err != nil {
			return fmt.Errorf("bulk insert: %w", err)
		}
		created, err := scanCreated(rows)
		if err != nil {
			return fmt.Errorf("bulk insert: %w", err)
		}
		dups := map[int]int64{}
		if len(created)+len(refused) < len(batch) {
			rows, err := tx.Query(ctx, `SELECT b.line, i.id FROM bulk_incidents b
				JOIN incidents i ON i.source = b.source AND i.reporter_key = $1 AND i.external_id = NULLIF(b.external_id, '') AND i.id <> b.id`, by.key())
			if err != nil {
				return fmt.Errorf("bulk duplicates: %w", err)
			}
			for rows.Next() {
				var line int
				var id int64
				if err := rows.Scan(&line, &id); err != nil {
					rows.Close()
					return err
				}
				if prev, seen := dups[line]; !seen || id < prev {
					dups[line] = id
				}
			}
			rows.Close()
		}
		for _, p := range batch {
			if err, ok := refused[p.line]; ok {
				results = append(results, lineError(p.line, err))
			} else if grid, ok := created[p.id]; ok {
				results = append(results, LineResult{Line: p.line, Status: "created", ID: p.id, Grid: grid})
			} else if id, ok := dups[p.line]; ok {
				results = append(results, LineResult{Line: p.line, Status: "duplicate", ID: id})
			} else {
				results = append(results, lineError(p.line, gridwatch.Errorf(gridwatch.EConflict, "not stored: it conflicts with another incident")))
			}
		}
		if err := events.Publish(ctx, tx, events.IncidentsBulk, nil, bulkEventData(created)); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "incident.bulk", "incident", "", map[string]any{"created": len(created), "duplicates": len(dups)})
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// scanCreated reads the (id, grid_id) rows of an INSERT … RETURNING into a
// map of the cases created and their grids (nil: none).
func scanCreated(rows pgx.Rows) (map[int64]*int64, error) {
	created := map[int64]*int64{}
	var id int64
	var grid *int64
	_, err := pgx.ForEachRow(rows, []any{&id, &grid}, func() error {
		created[id] = grid
		return nil
	})
	return created, err
}
