package geo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/internal/database"
)

// StoreOptions set the topology tolerances.
type StoreOptions struct {
	// OverlapToleranceM2 is the largest overlap between two grids of the same
	// level that is ignored (digitising noise); 0 is exact. gridwatch's
	// configuration defaults it to 1 m².
	OverlapToleranceM2 float64
	// OutsideToleranceM2 is the largest part of a grid outside its parent that
	// is ignored; 0 is exact.
	OutsideToleranceM2 float64
	Logger             *slog.Logger
}

// Store keeps grids in PostGIS. All grid SQL lives in this package. Two
// pieces of it reach other packages' tables, on purpose, so that a rule is
// written once: GridAt, the placement rule (the finest grid covering a
// point), which camera placement embeds, and Change.Relocate, the one
// statement that moves a participant's cameras or cases to the grid now
// covering them (the participant names its table).
type Store struct {
	pool *pgxpool.Pool
	opts StoreOptions
	log  *slog.Logger

	mu           sync.Mutex
	hooks        []func(context.Context)
	participants []Participant
	tiles        tileCache
}

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool, opts StoreOptions) *Store {
	// Zero tolerances are exact; negative ones make no sense and count as zero.
	opts.OverlapToleranceM2 = max(opts.OverlapToleranceM2, 0)
	opts.OutsideToleranceM2 = max(opts.OutsideToleranceM2, 0)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, opts: opts, log: log}
}

// AfterChange registers fn to run after every committed change to grids,
// before the changing call returns (so a lookup after an import sees it).
func (s *Store) AfterChange(fn func(context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

func (s *Store) changed(ctx context.Context) {
	s.mu.Lock()
	hooks := append([]func(context.Context){}, s.hooks...)
	s.mu.Unlock()
	for _, fn := range hooks {
		fn(ctx)
	}
}

func bumpRevision(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "UPDATE grid_revision SET revision = revision + 1"); err != nil {
		return fmt.Errorf("grid revision: %w", err)
	}
	return nil
}

func scanRef(row pgx.CollectableRow) (Ref, error) {
	var r Ref
	err := row.Scan(&r.ID, &r.Code, &r.Name, &r.Level)
	return r, err
}

const gridColumns = `g.id, g.code, g.name, g.level, g.parent_id, COALESCE(p.code, ''), g.area_m2, g.properties, g.version, g.created_at, g.updated_at`

func scanGrid(row pgx.Row, g *Grid, extra ...any) error {
	dest := append([]any{&g.ID, &g.Code, &g.Name, &g.Level, &g.ParentID, &g.ParentCode, &g.AreaM2, &g.Properties, &g.Version, &g.CreatedAt, &g.UpdatedAt}, extra...)
	return row.Scan(dest...)
}

// Get returns grid id with its geometry.
func (s *Store) Get(ctx context.Context, id int64) (*Grid, error) {
	var g Grid
	err := scanGrid(s.pool.QueryRow(ctx, `SELECT `+gridColumns+`, g.geom
		FROM grids g LEFT JOIN grids p ON p.id = g.parent_id WHERE g.id = $1`, id), &g, &g.Geometry)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("grid %d: %w", id, err)
	}
	return &g, nil
}

// Chain returns grid id and its ancestors, the grid first.
func (s *Store) Chain(ctx context.Context, id int64) ([]Ref, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE chain AS (
			SELECT id, code, name, level, parent_id, 0 AS depth FROM grids WHERE id = $1
			UNION ALL
			SELECT g.id, g.code, g.name, g.level, g.parent_id, c.depth + 1
			FROM grids g JOIN chain c ON g.id = c.parent_id
		) SELECT id, code, name, level FROM chain ORDER BY depth`, id)
	if err != nil {
		return nil, fmt.Errorf("grid %d chain: %w", id, err)
	}
	refs, err := pgx.CollectRows(rows, scanRef)
	if err != nil {
		return nil, fmt.Errorf("grid %d chain: %w", id, err)
	}
	if len(refs) == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
	}
	return refs, nil
}

// Filter selects grids for lists and GeoJSON.
type Filter struct {
	Level    Level
	ParentID int64
	BBox     *BBox
	// After is the cursor: only ids greater than it.
	After int64
	// Limit caps a list page (0: no cap, for GeoJSON).
	Limit int
	// Scope, when not nil, keeps only these grids and their descendants.
	Scope []int64
	// Code keeps the grid with exactly this code.
	Code string
	// UpdatedFrom and UpdatedUntil keep grids whose current version was
	// written in [UpdatedFrom, UpdatedUntil]; a zero time leaves that end open.
	UpdatedFrom, UpdatedUntil time.Time
	// Geometry makes List return each grid's boundary too.
	Geometry bool
}

// where returns f's conditions: all but the cursor and the limit, which
// are List's.
func (f Filter) where() database.Where {
	var w database.Where
	w.Eq("g.level", string(f.Level))
	if f.ParentID != 0 {
		w.Add("g.parent_id = ?", f.ParentID)
	}
	f.BBox.Where(&w, "g.geom")
	w.Eq("g.code", f.Code)
	w.Within("g.updated_at", f.UpdatedFrom, f.UpdatedUntil)
	if f.Scope != nil {
		w.Add("g.id IN (SELECT * FROM grid_subtree(?))", f.Scope)
	}
	return w
}

// List returns a page of grids (with their geometry only when f.Geometry)
// in id order and the cursor of the next page, 0 when this is the last.
func (s *Store) List(ctx context.Context, f Filter) ([]Grid, int64, error) {
	cols := gridColumns
	if f.Geometry {
		cols += ", g.geom"
	}
	k := database.Keyset{Key: "g.id", Cursor: f.After, Limit: f.Limit, All: f.Limit <= 0}
	grids, next, err := database.QueryPage(ctx, s.pool, `SELECT `+cols+` FROM grids g LEFT JOIN grids p ON p.id = g.parent_id`, f.where(), k,
		func(r pgx.CollectableRow) (Grid, error) {
			var g Grid
			var extra []any
			if f.Geometry {
				extra = append(extra, &g.Geometry)
			}
			err := scanGrid(r, &g, extra...)
			return g, err
		}, func(g Grid) int64 { return g.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list grids: %w", err)
	}
	return grids, next, nil
}

// WriteGeoJSON streams the grids matching f as a GeoJSON FeatureCollection:
// each feature's id is the grid id; its properties are the grid's fields and
// its kept properties (which never override the fields).
func (s *Store) WriteGeoJSON(ctx context.Context, w io.Writer, f Filter) error {
	return database.Stream(ctx, s.pool, func(tx pgx.Tx) error { return writeGeoJSON(ctx, tx, w, f) })
}

func writeGeoJSON(ctx context.Context, tx pgx.Tx, w io.Writer, f Filter) error {
	where := f.where()
	if f.After != 0 {
		// Not a page (the order is by level and code), but the cursor
		// still keeps only the grids after it, as it always has.
		where.Add("g.id > ?", f.After)
	}
	rows, err := tx.Query(ctx, `SELECT g.id, g.code, g.name, g.level, g.parent_id, p.code, g.area_m2, g.version, g.properties,
		ST_AsGeoJSON(g.geom, 7) FROM grids g LEFT JOIN grids p ON p.id = g.parent_id`+where.SQL()+` ORDER BY g.level_rank, g.code`, where.Args()...)
	if err != nil {
		return fmt.Errorf("grids geojson: %w", err)
	}
	defer rows.Close()
	if _, err := io.WriteString(w, `{"type":"FeatureCollection","features":[`); err != nil {
		return err
	}
	first := true
	for rows.Next() {
		var (
			id, version int64
			parent      *int64
			parentCode  *string
			code, name  string
			level       string
			area        float64
			props       map[string]any
			geometry    string
		)
		if err := rows.Scan(&id, &code, &name, &level, &parent, &parentCode, &area, &version, &props, &geometry); err != nil {
			return fmt.Errorf("grids geojson: %w", err)
		}
		if props == nil {
			props = map[string]any{}
		}
		props["id"], props["code"], props["name"], props["level"] = id, code, name, level
		props["parent_id"], props["area_m2"], props["version"] = parent, area, version
		if parentCode != nil {
			props["parent_code"] = *parentCode
		}
		pj, err := json.Marshal(props)
		if err != nil {
			return fmt.Errorf("grids geojson: %w", err)
		}
		sep := ","
		if first {
			sep, first = "", false
		}
		if _, err := fmt.Fprintf(w, `%s{"type":"Feature","id":%d,"properties":%s,"geometry":%s}`, sep, id, pj, geometry); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("grids geojson: %w", err)
	}
	_, err = io.WriteString(w, "]}")
	return err
}

// Revision returns the grid revision, bumped by every change.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.pool.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rev)
	return rev, err
}

// IndexGrids loads every grid for the in-process index, with the revision
// read in the same snapshot.
func (s *Store) IndexGrids(ctx context.Context) ([]IndexedGrid, int64, error) {
	var out []IndexedGrid
	var rev int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rev); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT id, code, name, level, COALESCE(parent_id, 0), geom FROM grids")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g IndexedGrid
			var mp *geom.MultiPolygon
			if err := rows.Scan(&g.Ref.ID, &g.Ref.Code, &g.Ref.Name, &g.Ref.Level, &g.ParentID, &mp); err != nil {
				return err
			}
			g.Geometry = OrbMultiPolygon(mp)
			out = append(out, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("load grids for the index: %w", err)
	}
	return out, rev, nil
}
