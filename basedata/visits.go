package basedata

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
)

// Home visits (走访): a member visits a household and notes it, often from
// the field app, which may send the same visit again after a lost answer
// (Idempotency-Key) or hours later after a stretch offline (visited_at).

// VisitUser is who made a visit.
type VisitUser struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// Visit is one home visit.
type Visit struct {
	ID          int64     `json:"id"`
	HouseholdID int64     `json:"household_id"`
	User        VisitUser `json:"user"`
	VisitedAt   time.Time `json:"visited_at"`
	Note        string    `json:"note"`
	CreatedAt   time.Time `json:"created_at"`
}

// NewVisit is a visit to record: when (nil: now) and a note.
type NewVisit struct {
	VisitedAt *time.Time
	Note      string
}

// VisitFilter selects visits: a household's, or those made in a grid (or
// its descendants), or one member's.
type VisitFilter struct {
	HouseholdID int64
	GridID      int64
	UserID      int64
	// Before is the cursor (newest first); Limit the page size.
	Before int64
	Limit  int
}

// Bounds of a visit.
const (
	// MaxVisitNote is the longest a visit's note may be, in characters.
	MaxVisitNote = 2000
	// MaxVisitBackdate is how long ago a visit may have been made: a
	// phone offline for days still sends it.
	MaxVisitBackdate = 90 * 24 * time.Hour
	// visitSlack is how far ahead of the server's clock a phone's may run.
	visitSlack = 5 * time.Minute
)

const visitColumns = `v.id, v.household_id, u.id, u.username, u.display_name, v.visited_at, v.note, v.created_at`

const visitFrom = ` FROM home_visits v JOIN users u ON u.id = v.user_id`

func scanVisit(row pgx.Row) (Visit, error) {
	var x Visit
	err := row.Scan(&x.ID, &x.HouseholdID, &x.User.ID, &x.User.Username, &x.User.DisplayName, &x.VisitedAt, &x.Note, &x.CreatedAt)
	return x, err
}

// RecordVisit records member v's visit to household householdID, if v may
// see it. A retry with the same Idempotency-Key returns the visit it made,
// with created false; the key sent with another household or time is
// refused (idempotency_mismatch). Audited as visit.record.
func (s *Service) RecordVisit(ctx context.Context, householdID int64, n NewVisit, key string, v Viewer) (*Visit, bool, error) {
	if v.UserID == 0 {
		return nil, false, gridwatch.Errorf(gridwatch.EForbidden, "visits are recorded by a signed-in member, not by an API token")
	}
	if err := gridwatch.CheckIdempotencyKey(key); err != nil {
		return nil, false, err
	}
	n.Note = strings.TrimSpace(n.Note)
	if utf8.RuneCountInString(n.Note) > MaxVisitNote || strings.ContainsRune(n.Note, 0) {
		return nil, false, fieldError("note", "is longer than %d characters", MaxVisitNote)
	}
	now := s.now()
	at := now.Truncate(time.Microsecond)
	if n.VisitedAt != nil {
		at = n.VisitedAt.Truncate(time.Microsecond)
		if at.After(now.Add(visitSlack)) {
			return nil, false, fieldError("visited_at", "%s is in the future (the server's time is %s): check the phone's clock",
				at.Format(time.RFC3339), now.Format(time.RFC3339))
		}
		if at.Before(now.Add(-MaxVisitBackdate)) {
			return nil, false, fieldError("visited_at", "%s is more than %d days ago", at.Format(time.RFC3339), int(MaxVisitBackdate/(24*time.Hour)))
		}
	}
	var id int64
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		replay, err := findVisitKey(ctx, tx, v.UserID, key, householdID, n.VisitedAt, at)
		if err != nil || replay != 0 {
			id = replay
			return err
		}
		grid, err := householdGrid(ctx, tx, householdID, v)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO home_visits (household_id, user_id, visited_at, note, idempotency_key, grid_id, created_at)
			VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7) ON CONFLICT DO NOTHING RETURNING id`,
			householdID, v.UserID, at, n.Note, key, grid, now).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// The same request's retry won the race: answer with its visit.
			id, err = findVisitKey(ctx, tx, v.UserID, key, householdID, n.VisitedAt, at)
			if err == nil && id == 0 {
				err = gridwatch.Errorf(gridwatch.EConflict, "the visit was recorded at the same moment; reload and try again")
			}
			return err
		}
		if err != nil {
			return err
		}
		created = true
		return audit.Record(ctx, tx, "visit.record", "household", strconv.FormatInt(householdID, 10),
			map[string]any{"visit_id": id, "visited_at": at})
	})
	if err != nil {
		if gridwatch.ErrorCode(err) != gridwatch.EInternal {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("record visit: %w", err)
	}
	x, err := scanVisit(s.pool.QueryRow(ctx, `SELECT `+visitColumns+visitFrom+` WHERE v.id = $1`, id))
	if err != nil {
		return nil, false, fmt.Errorf("visit %d: %w", id, err)
	}
	return &x, created, nil
}

// findVisitKey returns the visit member user recorded with key (0: none,
// or no key). The key sent again with another household, or with a visit
// time that differs from the first, is a mismatch.
func findVisitKey(ctx context.Context, tx pgx.Tx, user int64, key string, household int64, given *time.Time, at time.Time) (int64, error) {
	if key == "" {
		return 0, nil
	}
	var id, hh int64
	var visited time.Time
	err := tx.QueryRow(ctx, "SELECT id, household_id, visited_at FROM home_visits WHERE user_id = $1 AND idempotency_key = $2", user, key).
		Scan(&id, &hh, &visited)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("find visit: %w", err)
	case hh != household || given != nil && !visited.Equal(at):
		return 0, gridwatch.Errorf(gridwatch.EIdempotencyMismatch,
			"the Idempotency-Key %q recorded visit %d to household %d at %s: send the same request to retry it, or a new key for a new visit",
			key, id, hh, visited.Format(time.RFC3339)).
			WithDetails(map[string]any{"header": "Idempotency-Key", "visit_id": id})
	}
	return id, nil
}

// Visits returns a page of the visits v may see, newest first, and the
// next cursor (0: none): a household's (if v may see it), or those made in
// v's grids.
func (s *Service) Visits(ctx context.Context, f VisitFilter, v Viewer) ([]Visit, int64, error) {
	if f.HouseholdID != 0 {
		if _, err := s.household(ctx, s.pool, f.HouseholdID, Viewer{Grids: v.Grids}); err != nil {
			return nil, 0, err
		}
	}
	return s.visits(ctx, s.pool, f, v)
}

func (s *Service) visits(ctx context.Context, q database.Querier, f VisitFilter, v Viewer) ([]Visit, int64, error) {
	var w database.Where
	if f.HouseholdID != 0 {
		// A household's visits are all shown to whoever may see the
		// household (checked by the caller), whichever grid it was in.
		w.Add("v.household_id = ?", f.HouseholdID)
	} else if v.Grids != nil {
		w.Add("v.grid_id IN (SELECT * FROM grid_subtree(?))", v.Grids)
	}
	if f.GridID != 0 {
		w.Add("v.grid_id IN (SELECT * FROM grid_subtree(?))", []int64{f.GridID})
	}
	if f.UserID != 0 {
		w.Add("v.user_id = ?", f.UserID)
	}
	list, next, err := database.QueryPage(ctx, q, `SELECT `+visitColumns+visitFrom, w,
		database.Keyset{Key: "v.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Visit, error) { return scanVisit(r) },
		func(x Visit) int64 { return x.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list visits: %w", err)
	}
	return list, next, nil
}
