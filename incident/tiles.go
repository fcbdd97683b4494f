package incident

import (
	"context"
	"fmt"

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
	tile, err := geo.QueryPointTile(ctx, s.pool, t, IncidentLayer, `i.id, i.status, i.priority, i.category, i.title, i.grid_id,
		to_char(i.reported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS reported_at,
		i.status NOT IN ('closed', 'rejected') AND i.deadline < `+now+`::timestamptz AS overdue`,
		"i.location", "incidents i", w)
	if err != nil {
		return nil, fmt.Errorf("incident tile %s: %w", t, err)
	}
	return tile, nil
}
