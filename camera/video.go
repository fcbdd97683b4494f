package camera

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/camera/streamurl"
	"gridwatch/internal/events"
	"gridwatch/internal/fence"
)

// Event types of camera status changes.
const (
	EventOnline  = "camera.online"
	EventOffline = "camera.offline"
	// EventRecording: a camera's recording failed, or records again
	// (data: error, since; an empty error is recording again).
	EventRecording = "camera.recording"
)

// Source is how the video reaches camera id.
func (s *Store) Source(ctx context.Context, id int64) (Source, error) {
	src, err := scanSource(s.pool.QueryRow(ctx, `SELECT id, `+sourceColumns+` FROM cameras WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return src, gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", id)
	}
	if err != nil {
		return src, fmt.Errorf("camera %d: source: %w", id, err)
	}
	return src, nil
}

// sourceColumns are what scanSource reads after the id.
const sourceColumns = `main_url, main_secret, sub_url, sub_secret, enabled, record`

// scanSource reads a camera's source, its credentials put back into its
// URLs: the one place they are.
func scanSource(row pgx.Row) (Source, error) {
	var src Source
	var mainSecret, subSecret streamurl.Secret
	if err := row.Scan(&src.ID, &src.MainURL, &mainSecret, &src.SubURL, &subSecret, &src.Enabled, &src.Record); err != nil {
		return src, err
	}
	var err error
	if src.MainURL, err = streamurl.Join(src.MainURL, mainSecret); err != nil {
		return src, err
	}
	src.SubURL, err = streamurl.Join(src.SubURL, subSecret)
	return src, err
}

// Recording lists the enabled cameras that record: their main streams run
// all the time.
func (s *Store) Recording(ctx context.Context) ([]Source, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, `+sourceColumns+` FROM cameras WHERE record AND enabled ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("recording cameras: %w", err)
	}
	srcs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Source, error) { return scanSource(r) })
	if err != nil {
		return nil, fmt.Errorf("recording cameras: %w", err)
	}
	return srcs, nil
}

// SetStatus records a camera stream's new status. Going online or offline
// is published as an event (camera.online, camera.offline) to the
// camera's grid, in the same transaction. "connecting" is stored only for
// a camera that has no status yet. With several nodes only the camera's
// owner writes its status: when ctx carries a fence (package fence) that is
// no longer the owner's, nothing is written and the error says so
// (fence.IsStale).
func (s *Store) SetStatus(ctx context.Context, id int64, stream string, st StreamStatus) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if f := fence.From(ctx); f.Valid() {
			if _, err := tx.Exec(ctx, `SELECT gridwatch_fence($1, $2, $3)`, id, f.Node, f.Epoch); err != nil {
				return fmt.Errorf("camera %d: status: %w", id, fence.Check(err))
			}
		}
		var prev string
		var grid *int64
		var code string
		err := tx.QueryRow(ctx, `SELECT status, grid_id, code FROM cameras WHERE id = $1 FOR UPDATE`, id).Scan(&prev, &grid, &code)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("camera %d: status: %w", id, err)
		}
		status := st.Status
		if st.Status == StatusConnecting {
			// A first attempt says nothing new about a camera already
			// known online or offline.
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE cameras SET status = $2, status_reason = $3, status_since = $4 WHERE id = $1`,
			id, status, st.Reason, st.Since); err != nil {
			return fmt.Errorf("camera %d: status: %w", id, err)
		}
		if prev == status {
			return nil
		}
		typ := EventOffline
		if st.Status == StatusOnline {
			typ = EventOnline
		}
		return events.Publish(ctx, tx, typ, grid, map[string]any{
			"id": strconv.FormatInt(id, 10), "camera_id": id, "code": code, "stream": stream,
			"status": status, "reason": st.Reason, "since": st.Since,
		})
	})
}

// maxProblem bounds the text of a recording problem kept.
const maxProblem = 300

// SetRecordingError records why camera id's recording fails (problem; ""
// when it records again), since when. A change is published as a
// camera.recording event to the camera's grid, in the same transaction;
// the same problem again writes nothing. Fenced like SetStatus: only the
// camera's owner writes it.
func (s *Store) SetRecordingError(ctx context.Context, id int64, problem string, since time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if f := fence.From(ctx); f.Valid() {
			if _, err := tx.Exec(ctx, `SELECT gridwatch_fence($1, $2, $3)`, id, f.Node, f.Epoch); err != nil {
				return fmt.Errorf("camera %d: recording error: %w", id, fence.Check(err))
			}
		}
		var grid *int64
		var code string
		var at *time.Time
		if len(problem) > maxProblem {
			problem = strings.ToValidUTF8(problem[:maxProblem], "") + "…"
		}
		if problem != "" {
			at = &since
		}
		err := tx.QueryRow(ctx, `UPDATE cameras SET recording_error = $2, recording_error_since = $3
			WHERE id = $1 AND recording_error <> $2 RETURNING grid_id, code`, id, problem, at).Scan(&grid, &code)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // no change, or deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("camera %d: recording error: %w", id, err)
		}
		return events.Publish(ctx, tx, EventRecording, grid, map[string]any{
			"id": strconv.FormatInt(id, 10), "camera_id": id, "code": code, "error": problem, "since": at,
		})
	})
}
