package incident

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
	"gridwatch/internal/events"
)

// TransitionRequest moves a case one step.
type TransitionRequest struct {
	To      Status `json:"to"`
	Version int    `json:"version"`
	Note    string `json:"note"`
	// AssigneeID, on dispatch, names the staff member; default: the grid's leader.
	AssigneeID *int64 `json:"assignee_id"`
	// GridID, on dispatch, moves the case to another grid (re-dispatch).
	GridID *int64 `json:"grid_id"`
}

// Transition moves case id to req.To if the workflow allows it from where
// it stands, req.Version is current (else 409: someone else moved it first)
// and may(stage) says the caller may take that step.
func (s *Service) Transition(ctx context.Context, id int64, req TransitionRequest, v Viewer, actor string, may func(Stage) bool) (*Incident, error) {
	in, _, err := s.TransitionOnce(ctx, id, req, Once{}, v, actor, may)
	return in, err
}

// Once names a request that must be applied at most once: the caller
// ("user:<id>" or "token:<id>") and its Idempotency-Key. The zero Once
// asks nothing.
type Once struct {
	Caller, Key string
}

// hash is the request hash of a keyed transition: the same key with
// another request is refused, not answered with the first one's result.
func (req TransitionRequest) hash() string {
	b, _ := json.Marshal([]any{req.To, req.Version, strings.TrimSpace(req.Note), req.AssigneeID, req.GridID})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TransitionOnce is Transition with an idempotency key: when the caller
// already moved the case with this key (a phone's queue sending again
// after a lost answer), nothing is applied again and the case is returned
// as it stands, with replayed true.
func (s *Service) TransitionOnce(ctx context.Context, id int64, req TransitionRequest, once Once, v Viewer, actor string, may func(Stage) bool) (*Incident, bool, error) {
	replayed := false
	if !req.To.Valid() {
		return nil, false, FieldError("to", "%q is not a status", req.To)
	}
	if req.Version <= 0 {
		return nil, false, FieldError("version", "is required: the version of the case you are moving (from the last GET)")
	}
	if len(req.Note) > 2000 {
		return nil, false, FieldError("note", "is longer than 2000 characters")
	}
	var reqHash *string
	if once.Key != "" {
		h := req.hash()
		reqHash = &h
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var w database.Where
		w.Add("i.id = ?", id)
		v.where(&w)
		var (
			from     Status
			version  int
			gridID   *int64
			assignee *int64
			updated  time.Time
			now      time.Time
		)
		// The step's time is the service's clock, but never before the
		// report or a step already taken: a clock stepped back (NTP, or
		// another node's clock behind) would otherwise close a case before
		// it was reported or registered, and make its handling time
		// negative. (GREATEST skips the NULLs.)
		at := w.Arg(s.now())
		err := tx.QueryRow(ctx, `SELECT i.status, i.version, i.grid_id, i.assignee_id, i.updated_at,
				GREATEST(`+at+`::timestamptz, i.reported_at, i.received_at, i.registered_at, i.closed_at,
					(SELECT max(e.at) FROM incident_events e WHERE e.incident_id = i.id))
			FROM incidents i`+w.SQL()+` FOR UPDATE OF i`, w.Args()...).Scan(&from, &version, &gridID, &assignee, &updated, &now)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "incident %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("transition: %w", err)
		}
		if reqHash != nil {
			// The row lock above orders two sends of one key: the second
			// finds the first's step here.
			var first *string
			err := tx.QueryRow(ctx, `SELECT request_hash FROM incident_events WHERE incident_id = $1 AND caller_key = $2 AND idempotency_key = $3`,
				id, once.Caller, once.Key).Scan(&first)
			switch {
			case err == nil && (first == nil || *first != *reqHash):
				return gridwatch.Errorf(gridwatch.EIdempotencyMismatch,
					"the Idempotency-Key %q was first sent with another transition of incident %d: send the same request to retry it, or a new key", once.Key, id).
					WithDetails(map[string]any{"header": "Idempotency-Key", "key": once.Key})
			case err == nil:
				replayed = true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("transition: %w", err)
			}
		}
		if req.Version != version {
			var last string
			_ = tx.QueryRow(ctx, "SELECT actor FROM incident_events WHERE incident_id = $1 ORDER BY id DESC LIMIT 1", id).Scan(&last)
			return gridwatch.Errorf(gridwatch.EConflict, "incident %d changed since version %d: it is now version %d (%s), last moved by %s at %s; reload and try again",
				id, req.Version, version, from, last, updated.Format(time.RFC3339)).
				WithDetails(map[string]any{"current_version": version, "status": from, "last_actor": last, "updated_at": updated})
		}
		stage, ok := StageOf(from, req.To)
		if !ok {
			allowed := Allowed(from)
			return gridwatch.Errorf(gridwatch.EConflict, "a case %s cannot become %s; from %s it may become: %s",
				from, req.To, from, joinStatuses(allowed)).
				WithDetails(map[string]any{"status": from, "allowed": nonNil(allowed)})
		}
		if !may(stage) {
			return gridwatch.Errorf(gridwatch.EForbidden, "your role may not move a case from %s to %s", from, req.To)
		}
		details := map[string]any{}
		oldGrid := gridID
		if req.To == Dispatched {
			if req.GridID != nil && (gridID == nil || *req.GridID != *gridID) {
				if err := checkGridFor(ctx, tx, *req.GridID, v); err != nil {
					return err
				}
				details["from_grid_id"], details["to_grid_id"] = gridID, *req.GridID
				gridID = req.GridID
			}
			if gridID == nil {
				return FieldError("grid_id", "the case is in no grid: give the grid to dispatch it to")
			}
			if assignee, err = s.pickAssignee(ctx, tx, *gridID, req.AssigneeID); err != nil {
				return err
			}
			details["assignee_id"] = assignee
		} else if req.AssigneeID != nil || req.GridID != nil {
			return FieldError("assignee_id", "assignee_id and grid_id are given only when dispatching")
		}
		_, err = tx.Exec(ctx, `UPDATE incidents SET status = $2, version = version + 1, updated_at = $3, grid_id = $4, assignee_id = $5,
			registered_at = CASE WHEN $2 = 'registered' THEN $3 ELSE registered_at END,
			closed_at = CASE WHEN $2 = 'closed' THEN $3 ELSE closed_at END
			WHERE id = $1`, id, req.To, now, gridID, assignee)
		if v, _ := database.Violated(err); v == database.ForeignKey {
			return gridwatch.Errorf(gridwatch.EConflict, "the grid or the assignee changed meanwhile; reload and try again")
		}
		if err != nil {
			return fmt.Errorf("transition: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incident_events (incident_id, at, actor, action, from_status, to_status, note, details,
				caller_key, idempotency_key, request_hash)
			VALUES ($1, $2, $3, 'transition', $4, $5, $6, $7, NULLIF($8, ''), NULLIF($9, ''), $10)`,
			id, now, actor, from, req.To, strings.TrimSpace(req.Note), details, once.Caller, once.Key, reqHash); err != nil {
			return fmt.Errorf("transition: %w", err)
		}
		if err := events.Publish(ctx, tx, events.IncidentChanged, gridID, map[string]any{"id": id, "from": from, "status": req.To, "version": version + 1}); err != nil {
			return err
		}
		if oldGrid != nil && (gridID == nil || *oldGrid != *gridID) {
			// The grid it left hears that it went.
			if err := events.Publish(ctx, tx, events.IncidentChanged, oldGrid, map[string]any{"id": id, "from": from, "status": req.To, "version": version + 1, "moved": true}); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, "incident.transition", "incident", strconv.FormatInt(id, 10),
			map[string]any{"before": map[string]any{"status": from, "version": version}, "after": map[string]any{"status": req.To, "version": version + 1}, "note": req.Note})
	})
	if err != nil {
		return nil, false, err
	}
	in, err := s.Get(ctx, id, Viewer{})
	return in, replayed, err
}

// checkGridFor checks that grid id exists and lies in v's scope.
func checkGridFor(ctx context.Context, tx pgx.Tx, id int64, v Viewer) error {
	var ok bool
	var err error
	if v.Grids == nil {
		err = tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM grids WHERE id = $1)", id).Scan(&ok)
	} else {
		err = tx.QueryRow(ctx, `SELECT $1 IN (SELECT * FROM grid_subtree($2))`, id, v.Grids).Scan(&ok)
	}
	if err != nil {
		return err
	}
	if !ok {
		return FieldError("grid_id", "grid %d does not exist or is not one of yours", id)
	}
	return nil
}

// pickAssignee checks a chosen staff member belongs to the grid, or picks
// the grid's leader.
func (s *Service) pickAssignee(ctx context.Context, tx pgx.Tx, gridID int64, chosen *int64) (*int64, error) {
	var id int64
	if chosen != nil {
		err := tx.QueryRow(ctx, "SELECT id FROM grid_staff WHERE id = $1 AND grid_id = $2 FOR KEY SHARE", *chosen, gridID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, FieldError("assignee_id", "staff member %d is not on the team of grid %d", *chosen, gridID)
		}
		return &id, err
	}
	err := tx.QueryRow(ctx, "SELECT id FROM grid_staff WHERE grid_id = $1 AND role = 'leader' FOR KEY SHARE", gridID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, FieldError("assignee_id", "grid %d has no leader on its team: name the staff member to dispatch to", gridID)
	}
	return &id, err
}

func joinStatuses(ss []Status) string {
	if len(ss) == 0 {
		return "nothing (the case is finished)"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

func nonNil(ss []Status) []Status {
	if ss == nil {
		return []Status{}
	}
	return ss
}
