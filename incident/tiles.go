package incident

import (
	"context"
	"fmt"
	"strconv"

	"gridwatch/geo"
	"gridwatch/internal/database"
)

// IncidentLayer is the name of the incidents' layer inside their tiles.
const IncidentLayer = "incidents"

// TileFilter narrows an incident tile.
type TileFilter struct {
	// Statuses keeps incidents in these statuses; none keeps all.
	Statuses []Status
}

// OpenStatuses lists the statuses of cases still being worked.
func OpenStatuses() []Status {
	var out []Status
	for _, s := range Statuses() {
		if s.Open() {
			out = append(out, s)
		}
	}
	return out
}

// Tile returns the incidents' vector tile t as v may see them (the grid
// scope and token rule of List): the layer "incidents", one point per
// incident, its feature id the incident id, and its properties status,
// priority, category, title, grid_id (absent when unassigned), reported_at
// (RFC 3339, UTC) and overdue. A tile with none is empty (no bytes).
func (s *Service) Tile(ctx context.Context, t geo.Tile, f TileFilter, v Viewer) ([]byte, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	var w database.Where
	v.where(&w)
	if len(f.Statuses) > 0 {
		w.Add("i.status = ANY(?)", statusStrings(f.Statuses))
	}
	now := w.Arg(s.now())
	env, filter := geo.TileEnvelopeSQL(len(w.Args()) + 1)
	w.Arg(t.Z)
	w.Arg(t.X)
	w.Arg(t.Y)
	w.Add("i.location && " + filter)
	q := `SELECT ST_AsMVT(m, '` + IncidentLayer + `', ` + strconv.Itoa(geo.TileExtent) + `, 'geom', 'id')
		FROM (SELECT i.id, i.status, i.priority, i.category, i.title, i.grid_id,
				to_char(i.reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS reported_at,
				i.status NOT IN ('closed', 'rejected') AND i.deadline < ` + now + `::timestamptz AS overdue,
				ST_AsMVTGeom(ST_Transform(i.location, 3857), ` + env + `, ` + strconv.Itoa(geo.TileExtent) + `, ` + strconv.Itoa(geo.TileBuffer) + `, true) AS geom
			FROM incidents i` + w.SQL() + `) m`
	var tile []byte
	if err := s.pool.QueryRow(ctx, q, w.Args()...).Scan(&tile); err != nil {
		return nil, fmt.Errorf("incident tile %s: %w", t, err)
	}
	return tile, nil
}
