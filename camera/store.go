package camera

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paulmach/orb"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/camera/streamurl"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// Store keeps the camera registry in PostgreSQL; all camera SQL is here.
type Store struct {
	pool  *pgxpool.Pool
	now   func() time.Time
	after []func(context.Context)
}

// AfterChange registers fn to run after every committed create, update or
// delete of a camera (the video manager follows the registry). Register
// before serving.
func (s *Store) AfterChange(fn func(context.Context)) { s.after = append(s.after, fn) }

func (s *Store) changed(ctx context.Context) {
	for _, fn := range s.after {
		fn(ctx)
	}
}

// IDByCode finds a camera by its code.
func (s *Store) IDByCode(ctx context.Context, code string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM cameras WHERE code = $1`, code).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, gridwatch.Errorf(gridwatch.ENotFound, "no camera %s", code)
	}
	return id, err
}

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, now: time.Now} }

// Viewer limits what a caller sees: cameras in these grids and their
// descendants; nil sees all.
type Viewer struct{ Grids []int64 }

func conePolygon(r orb.Ring) *geom.Polygon {
	flat := make([]float64, 0, 2*len(r))
	for _, p := range r {
		flat = append(flat, p[0], p[1])
	}
	return geom.NewPolygonFlat(geom.XY, flat, []int{len(flat)}).SetSRID(4326)
}

const cameraColumns = `c.id, c.code, c.name, ST_X(c.location), ST_Y(c.location), c.heading, c.fov, c.range_m,
	c.main_url, c.sub_url, c.main_secret <> '[]' OR c.sub_secret <> '[]', c.enabled, c.record, c.retention_days, g.id, g.code, g.name, g.level, c.status, c.status_reason, c.status_since,
	CASE WHEN c.record AND c.enabled THEN c.recording_error ELSE '' END, CASE WHEN c.record AND c.enabled THEN c.recording_error_since END, c.version, c.created_at, c.updated_at,
	c.onvif_url, c.onvif_secret <> '{}', c.onvif_profile, c.onvif_device,
	(SELECT o.node_id FROM camera_owners o WHERE o.camera_id = c.id)`

const cameraFrom = ` FROM cameras c LEFT JOIN grids g ON g.id = c.grid_id`

func scanCamera(row pgx.Row) (*Camera, error) {
	var c Camera
	var main, sub string
	var hasCreds bool
	var gid *int64
	var gcode, gname, glevel *string
	var onvifURL, onvifProfile string
	var onvifCreds bool
	var onvifDevice []byte
	err := row.Scan(&c.ID, &c.Code, &c.Name, &c.Location.Coordinates[0], &c.Location.Coordinates[1], &c.Heading, &c.FOV, &c.Range,
		&main, &sub, &hasCreds, &c.Enabled, &c.Record, &c.RetentionDays, &gid, &gcode, &gname, &glevel, &c.Status, &c.StatusReason, &c.StatusSince, &c.RecordingError, &c.RecordingErrorSince, &c.Version, &c.CreatedAt, &c.UpdatedAt,
		&onvifURL, &onvifCreds, &onvifProfile, &onvifDevice, &c.Node)
	if err != nil {
		return nil, err
	}
	c.ONVIF = scanONVIF(onvifURL, onvifCreds, onvifProfile, onvifDevice)
	c.Location.Type = "Point"
	// The stored URLs are without their credentials; split again all
	// the same, so a row written by other means shows none either.
	var hadMain, hadSub bool
	c.MainURL, hadMain = Redact(main)
	c.SubURL, hadSub = Redact(sub)
	c.HasCreds = hasCreds || hadMain || hadSub
	if gid != nil {
		c.Grid = &geo.Ref{ID: *gid, Code: *gcode, Name: *gname, Level: geo.Level(*glevel)}
	}
	ring := ViewCone(c.Location.Coordinates[0], c.Location.Coordinates[1], c.Heading, c.FOV, c.Range)
	c.Cone = Polygon{Type: "Polygon", Coordinates: [][][2]float64{make([][2]float64, len(ring))}}
	for i, p := range ring {
		c.Cone.Coordinates[0][i] = [2]float64{p[0], p[1]}
	}
	c.Sees = []geo.Ref{}
	return &c, nil
}

// where adds v's scope to a query's conditions: the cameras in its grids
// and their descendants.
func (v Viewer) where(w *database.Where) {
	if v.Grids != nil {
		w.Add("c.grid_id IN (SELECT * FROM grid_subtree(?))", v.Grids)
	}
}

// place assigns camera id to the grid covering it (geo's placement rule)
// and links it to the grids its cone sees, in tx.
func place(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `UPDATE cameras c SET grid_id = `+geo.GridAt("c.location", "")+` WHERE c.id = $1`, id); err != nil {
		return fmt.Errorf("place camera %d: %w", id, err)
	}
	if err := linkSees(ctx, tx, `c.id = $1`, id, []int64{}); err != nil {
		return fmt.Errorf("place camera %d: %w", id, err)
	}
	return nil
}

// Create registers a camera from a checked spec.
func (s *Store) Create(ctx context.Context, sp Spec) (*Camera, error) {
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		lon, lat := sp.Location.Coordinates[0], sp.Location.Coordinates[1]
		cone := conePolygon(ViewCone(lon, lat, *sp.Heading, *sp.FOV, *sp.Range))
		enabled := sp.Enabled == nil || *sp.Enabled
		main, mainSecret := splitURL(sp.MainURL)
		sub, subSecret := splitURL(sp.SubURL)
		err := tx.QueryRow(ctx, `INSERT INTO cameras (code, name, location, heading, fov, range_m, cone, main_url, sub_url, enabled, record, retention_days, created_at, updated_at, main_secret, sub_secret)
			VALUES ($1, $2, ST_SetSRID(ST_MakePoint($3, $4), 4326), $5, $6, $7, $8, $9, $10, $11, $12, $14, $13, $13, $15, $16) RETURNING id`,
			sp.Code, sp.Name, lon, lat, *sp.Heading, *sp.FOV, *sp.Range, cone, main, sub, enabled, sp.Record, s.now(), sp.RetentionDays, mainSecret, subSecret).Scan(&id)
		if v, _ := database.Violated(err); v == database.Unique {
			return gridwatch.Errorf(gridwatch.EConflict, "a camera with code %s already exists", sp.Code).WithDetails(map[string]any{"field": "code"})
		}
		if err != nil {
			return fmt.Errorf("create camera: %w", err)
		}
		if err := writeONVIF(ctx, tx, id, sp.ONVIF); err != nil {
			return err
		}
		if err := place(ctx, tx, id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "camera.create", "camera", strconv.FormatInt(id, 10), map[string]any{"after": summary(sp)})
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx)
	return s.Get(ctx, id, Viewer{})
}

// summary is what the audit log keeps of a spec: never the URLs' credentials.
func summary(sp Spec) map[string]any {
	main, _ := Redact(sp.MainURL)
	sub, _ := Redact(sp.SubURL)
	out := map[string]any{"code": sp.Code, "name": sp.Name, "location": sp.Location.Coordinates, "heading": sp.Heading,
		"fov": sp.FOV, "range": sp.Range, "main_url": main, "sub_url": sub, "record": sp.Record, "retention_days": sp.RetentionDays}
	if o := sp.ONVIF; o != nil {
		// The address and the profile; never the account.
		out["onvif"] = map[string]any{"url": o.URL, "profile": o.Profile, "has_credentials": o.Username != ""}
	}
	return out
}

// Get returns camera id if v may see it.
func (s *Store) Get(ctx context.Context, id int64, v Viewer) (*Camera, error) {
	var w database.Where
	w.Add("c.id = ?", id)
	v.where(&w)
	c, err := scanCamera(s.pool.QueryRow(ctx, `SELECT `+cameraColumns+cameraFrom+w.SQL(), w.Args()...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("camera %d: %w", id, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT g.id, g.code, g.name, g.level FROM camera_grids cg JOIN grids g ON g.id = cg.grid_id
		WHERE cg.camera_id = $1 ORDER BY g.code`, id)
	if err != nil {
		return nil, fmt.Errorf("camera %d: %w", id, err)
	}
	c.Sees, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (geo.Ref, error) {
		var r geo.Ref
		err := row.Scan(&r.ID, &r.Code, &r.Name, &r.Level)
		return r, err
	})
	if c.Sees == nil {
		c.Sees = []geo.Ref{}
	}
	return c, err
}

// Filter selects cameras.
type Filter struct {
	// GridID keeps cameras in this grid or its descendants, or whose cone
	// sees into one of them.
	GridID int64
	BBox   *geo.BBox
	Status string
	After  int64
	Limit  int
}

// List returns a page of cameras in id order and the next cursor (0: none).
func (s *Store) List(ctx context.Context, f Filter, v Viewer) ([]Camera, int64, error) {
	return s.Features(ctx, FeatureFilter{Filter: f}, v)
}

// Patch changes some fields of a camera; nil fields stay. A URL given with
// credentials replaces the stored one and its credentials; one without
// keeps the stored credentials: unchanged (the URL as shown), or with a
// new host, port or path when they were a user:password@ (credentials in
// the path or query of a changed URL must be given again).
type Patch struct {
	Name     *string  `json:"name"`
	Location *Point   `json:"location"`
	Heading  *float64 `json:"heading"`
	FOV      *float64 `json:"fov"`
	Range    *float64 `json:"range"`
	MainURL  *string  `json:"main_url"`
	SubURL   *string  `json:"sub_url"`
	Record   *bool    `json:"record"`
	Enabled  *bool    `json:"enabled"`
	// RetentionDays: 0 returns the camera to the service's default.
	RetentionDays *int `json:"retention_days"`
	// ONVIF manages the camera over ONVIF (an empty url: no longer); it is
	// probed by the API before the store applies it.
	ONVIF *ONVIFSpec `json:"onvif"`
	// Version, when given, must be the camera's current version.
	Version *int `json:"version"`
}

// patchValue applies one field of a Patch: a nil v leaves *dst unchanged.
func patchValue[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// patchPointer applies one field of a Patch to an optional field of a
// Spec: a nil v leaves *dst unchanged.
func patchPointer[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// Update applies a patch, checked as a whole, and places the camera again.
func (s *Store) Update(ctx context.Context, id int64, p Patch, crs geo.CRS) (*Camera, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var sp Spec
		var lon, lat, heading, fov, rng float64
		var version int
		var mainSecret, subSecret streamurl.Secret
		err := tx.QueryRow(ctx, `SELECT code, name, ST_X(location), ST_Y(location), heading, fov, range_m, main_url, sub_url, record, enabled, retention_days, version, main_secret, sub_secret
			FROM cameras WHERE id = $1 FOR UPDATE`, id).Scan(&sp.Code, &sp.Name, &lon, &lat, &heading, &fov, &rng, &sp.MainURL, &sp.SubURL, &sp.Record, &sp.Enabled, &sp.RetentionDays, &version, &mainSecret, &subSecret)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("update camera: %w", err)
		}
		if p.Version != nil && *p.Version != version {
			return gridwatch.Errorf(gridwatch.EConflict, "camera %d is at version %d, not %d: reload and try again", id, version, *p.Version).
				WithDetails(map[string]any{"current_version": version})
		}
		if sp.MainURL, err = joinURL("main_url", sp.MainURL, mainSecret); err != nil {
			return err
		}
		if sp.SubURL, err = joinURL("sub_url", sp.SubURL, subSecret); err != nil {
			return err
		}
		before := summary(Spec{Code: sp.Code, Name: sp.Name, Location: &Point{"Point", [2]float64{lon, lat}}, Heading: &heading, FOV: &fov, Range: &rng, MainURL: sp.MainURL, SubURL: sp.SubURL, Record: sp.Record, RetentionDays: sp.RetentionDays})
		sp.Location = &Point{Type: "Point", Coordinates: [2]float64{lon, lat}}
		sp.Heading, sp.FOV, sp.Range = &heading, &fov, &rng
		// Coordinates stored are WGS-84; only a new location is converted.
		check := geo.CRSWGS84
		if p.Location != nil {
			sp.Location, check = p.Location, crs
		}
		patchValue(&sp.Name, p.Name)
		patchPointer(&sp.Heading, p.Heading)
		patchPointer(&sp.FOV, p.FOV)
		patchPointer(&sp.Range, p.Range)
		if p.MainURL != nil {
			if sp.MainURL, err = keepCredentials("main_url", sp.MainURL, *p.MainURL); err != nil {
				return err
			}
		}
		if p.SubURL != nil {
			if sp.SubURL, err = keepCredentials("sub_url", sp.SubURL, *p.SubURL); err != nil {
				return err
			}
		}
		patchValue(&sp.Record, p.Record)
		patchPointer(&sp.Enabled, p.Enabled)
		patchPointer(&sp.RetentionDays, p.RetentionDays)
		sp.ONVIF = p.ONVIF
		if err := sp.Check(check); err != nil {
			return err
		}
		lon, lat = sp.Location.Coordinates[0], sp.Location.Coordinates[1]
		cone := conePolygon(ViewCone(lon, lat, *sp.Heading, *sp.FOV, *sp.Range))
		main, mainSecret := splitURL(sp.MainURL)
		sub, subSecret := splitURL(sp.SubURL)
		if _, err := tx.Exec(ctx, `UPDATE cameras SET name = $2, location = ST_SetSRID(ST_MakePoint($3, $4), 4326), heading = $5, fov = $6,
			range_m = $7, cone = $8, main_url = $9, sub_url = $10, record = $11, enabled = $12, retention_days = $14, version = version + 1, updated_at = $13,
			main_secret = $15, sub_secret = $16 WHERE id = $1`,
			id, sp.Name, lon, lat, *sp.Heading, *sp.FOV, *sp.Range, cone, main, sub, sp.Record, sp.Enabled == nil || *sp.Enabled, s.now(), sp.RetentionDays, mainSecret, subSecret); err != nil {
			return fmt.Errorf("update camera: %w", err)
		}
		if err := writeONVIF(ctx, tx, id, p.ONVIF); err != nil {
			return err
		}
		if err := place(ctx, tx, id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "camera.update", "camera", strconv.FormatInt(id, 10), map[string]any{"before": before, "after": summary(sp)})
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx)
	return s.Get(ctx, id, Viewer{})
}

// Delete removes camera id.
func (s *Store) Delete(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var code string
		err := tx.QueryRow(ctx, "DELETE FROM cameras WHERE id = $1 RETURNING code", id).Scan(&code)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("delete camera: %w", err)
		}
		return audit.Record(ctx, tx, "camera.delete", "camera", strconv.FormatInt(id, 10), map[string]any{"before": map[string]any{"code": code}})
	})
	if err == nil {
		s.changed(ctx)
	}
	return err
}
