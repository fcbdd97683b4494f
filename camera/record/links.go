package record

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
)

// LinkWindow is the footage linked to a new incident: from Before the
// reported time to After it, of the cameras whose view cone covers the spot,
// or else of those within Radius metres in the same grid.
type LinkWindow struct {
	Before, After time.Duration
	Radius        float64
}

// DefaultLinkWindow is the window new incidents are linked with: 2 minutes
// before to 5 after, 150 m. A function rather than a variable, so no caller
// can change it for the others.
func DefaultLinkWindow() LinkWindow {
	return LinkWindow{Before: 2 * time.Minute, After: 5 * time.Minute, Radius: 150}
}

// Link is footage linked to an incident.
type Link struct {
	ID         int64 `json:"id"`
	IncidentID int64 `json:"incident_id"`
	Stretch
	Source    string    `json:"source"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// Recorded is how much of the window is recorded, in seconds.
	Recorded float64 `json:"recorded_seconds"`
}

// LinkIncidents links each incident to the footage of the cameras that saw
// its spot around its reported time — those whose view cone covers it, or
// else those within Radius of it in its grid — and returns how many links
// it made. It reads the incidents as stored, so one call serves a filed
// report and a bulk batch alike.
func (s *Store) LinkIncidents(ctx context.Context, ids []int64, w LinkWindow) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `WITH inc AS (SELECT id, location, grid_id, reported_at FROM incidents WHERE id = ANY($1)),
		seeing AS (SELECT i.id AS incident_id, c.id AS camera_id FROM inc i JOIN cameras c ON c.enabled AND ST_Covers(c.cone, i.location)),
		near AS (SELECT i.id AS incident_id, c.id AS camera_id FROM inc i JOIN cameras c ON c.enabled AND c.grid_id = i.grid_id
			AND ST_DWithin(c.location::geography, i.location::geography, $2)
			WHERE NOT EXISTS (SELECT 1 FROM seeing s WHERE s.incident_id = i.id)),
		found AS (SELECT incident_id, camera_id FROM seeing UNION SELECT incident_id, camera_id FROM near)
		INSERT INTO incident_footage (incident_id, camera_id, span, source, created_by)
		SELECT f.incident_id, f.camera_id, tstzrange(i.reported_at - $3::interval, i.reported_at + $4::interval), 'auto', 'gridwatch'
		FROM found f JOIN inc i ON i.id = f.incident_id
		ON CONFLICT DO NOTHING`, ids, w.Radius, w.Before, w.After)
	if err != nil {
		return 0, fmt.Errorf("record: link incidents: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// AddLink links camera's footage from from to to with incident, by hand.
func (s *Store) AddLink(ctx context.Context, incident, camera int64, from, to time.Time, by string) (Link, error) {
	if err := CheckRange(from, to); err != nil {
		return Link{}, err
	}
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO incident_footage (incident_id, camera_id, span, source, created_by)
			VALUES ($1, $2, $3, 'manual', $4) RETURNING id`, incident, camera, span(from, to), by).Scan(&id)
		v, _ := database.Violated(err)
		switch {
		case v == database.ForeignKey:
			return gridwatch.Errorf(gridwatch.ENotFound, "no incident %d or camera %d", incident, camera)
		case v == database.Unique:
			return gridwatch.Errorf(gridwatch.EConflict, "this footage is already linked to incident %d", incident)
		case err != nil:
			return fmt.Errorf("record: link: %w", err)
		}
		return audit.Record(ctx, tx, "footage.link", "incident", fmt.Sprint(incident),
			map[string]any{"after": map[string]any{"camera_id": camera, "from": from, "to": to}})
	})
	if err != nil {
		return Link{}, err
	}
	links, err := s.Links(ctx, incident)
	for _, l := range links {
		if l.ID == id {
			return l, err
		}
	}
	return Link{}, err
}

// RemoveLink unlinks footage from incident; its evidence hold goes with it.
func (s *Store) RemoveLink(ctx context.Context, incident, link int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM incident_footage WHERE id = $1 AND incident_id = $2`, link, incident)
		if err != nil {
			return fmt.Errorf("record: unlink: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return gridwatch.Errorf(gridwatch.ENotFound, "incident %d has no footage link %d", incident, link)
		}
		return audit.Record(ctx, tx, "footage.unlink", "incident", fmt.Sprint(incident), map[string]any{"before": map[string]any{"link_id": link}})
	})
}

// Links lists the footage linked to incident, with how much of each window
// is recorded.
func (s *Store) Links(ctx context.Context, incident int64) ([]Link, error) {
	rows, err := s.pool.Query(ctx, `SELECT t.id, t.incident_id, `+stretchColumns+`, t.source, t.created_by, t.created_at,
			coalesce((SELECT sum(extract(epoch FROM upper(r.span * t.span) - lower(r.span * t.span)))
				FROM recordings r WHERE r.camera_id = t.camera_id AND r.span && t.span AND r.status = 'ok'), 0)
		FROM incident_footage t JOIN cameras c ON c.id = t.camera_id
		WHERE t.incident_id = $1 ORDER BY c.code, lower(t.span)`, incident)
	if err != nil {
		return nil, fmt.Errorf("record: links: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Link, error) {
		var l Link
		err := r.Scan(append(append([]any{&l.ID, &l.IncidentID}, l.Stretch.dest()...), &l.Source, &l.CreatedBy, &l.CreatedAt, &l.Recorded)...)
		return l, err
	})
}
