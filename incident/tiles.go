package incident

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"gridwatch/geo"
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
	conds, args := v.where(nil, nil)
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ss[i] = string(st)
		}
		args = append(args, ss)
		conds = append(conds, "i.status = ANY($"+strconv.Itoa(len(args))+")")
	}
	args = append(args, s.now())
	now := "$" + strconv.Itoa(len(args))
	env, filter := geo.TileEnvelopeSQL(len(args) + 1)
	args = append(args, t.Z, t.X, t.Y)
	conds = append(conds, "i.location && "+filter)
	q := `SELECT ST_AsMVT(m, '` + IncidentLayer + `', ` + strconv.Itoa(geo.TileExtent) + `, 'geom', 'id')
		FROM (SELECT i.id, i.status, i.priority, i.category, i.title, i.grid_id,
				to_char(i.reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS reported_at,
				i.status NOT IN ('closed', 'rejected') AND i.deadline < ` + now + `::timestamptz AS overdue,
				ST_AsMVTGeom(ST_Transform(i.location, 3857), ` + env + `, ` + strconv.Itoa(geo.TileExtent) + `, ` + strconv.Itoa(geo.TileBuffer) + `, true) AS geom
			FROM incidents i WHERE ` + strings.Join(conds, " AND ") + `) m`
	var tile []byte
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&tile); err != nil {
		return nil, fmt.Errorf("incident tile %s: %w", t, err)
	}
	return tile, nil
}
