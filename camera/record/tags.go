package record

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

// Stretch is a stretch of one camera's footage, as a tag marks it and a
// link points at it: the camera by id, code and name, and the time range.
type Stretch struct {
	CameraID   int64     `json:"camera_id"`
	CameraCode string    `json:"camera_code"`
	CameraName string    `json:"camera_name"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
}

// stretchColumns select a Stretch from a table aliased t with a span
// column, joined to cameras as c; dest scans them.
const stretchColumns = `t.camera_id, c.code, c.name, lower(t.span), upper(t.span)`

func (st *Stretch) dest() []any {
	return []any{&st.CameraID, &st.CameraCode, &st.CameraName, &st.From, &st.To}
}

// Tag is an operator's note on a stretch of a camera's footage.
type Tag struct {
	ID int64 `json:"id"`
	Stretch
	Label     string `json:"label"`
	Note      string `json:"note"`
	Author    string `json:"author"`
	AuthorKey string `json:"-"`
	// Editable says whether the caller may edit and delete it: its author
	// or an admin (set per request by the API).
	Editable  bool      `json:"editable"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TagInput is a new tag or the fields of an edit (nil: unchanged).
type TagInput struct {
	CameraID int64      `json:"camera_id"`
	From     *time.Time `json:"from"`
	To       *time.Time `json:"to"`
	Label    *string    `json:"label"`
	Note     *string    `json:"note"`
}

func tagField(field, format string, args ...any) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "%s: %s", field, fmt.Sprintf(format, args...)).WithDetails(map[string]any{"field": field})
}

func checkTag(t *Tag) error {
	t.Label = strings.TrimSpace(t.Label)
	switch {
	case t.Label == "" || utf8.RuneCountInString(t.Label) > 64:
		return tagField("label", "is required (up to 64 characters)")
	case utf8.RuneCountInString(t.Note) > 2000:
		return tagField("note", "is too long (up to 2000 characters)")
	}
	return CheckRange(t.From, t.To)
}

// TagFilter selects tags: by camera, by cameras in grids (with their
// descendants), by label, by overlap with a time range.
type TagFilter struct {
	CameraID int64
	Grids    []int64
	Label    string
	From, To time.Time
	Limit    int
}

const tagColumns = `t.id, ` + stretchColumns + `, t.label, t.note, t.author, t.author_key, t.created_at, t.updated_at`

func scanTag(r pgx.Row) (Tag, error) {
	var t Tag
	err := r.Scan(append(append([]any{&t.ID}, t.Stretch.dest()...), &t.Label, &t.Note, &t.Author, &t.AuthorKey, &t.CreatedAt, &t.UpdatedAt)...)
	return t, err
}

// Tags lists tags, newest footage first. scope, when not nil, limits them
// to cameras in those grids and their descendants.
func (s *Store) Tags(ctx context.Context, f TagFilter, scope []int64) ([]Tag, error) {
	var w database.Where
	if f.CameraID != 0 {
		w.Add("t.camera_id = ?", f.CameraID)
	}
	if f.Label != "" {
		w.Add("t.label = ?", f.Label)
	}
	if !f.From.IsZero() && !f.To.IsZero() {
		w.Add("t.span && ?", span(f.From, f.To))
	}
	if f.Grids != nil {
		w.Add("c.grid_id IN (SELECT * FROM grid_subtree(?))", f.Grids)
	}
	if scope != nil {
		w.Add("c.grid_id IN (SELECT * FROM grid_subtree(?))", scope)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tagColumns+` FROM footage_tags t JOIN cameras c ON c.id = t.camera_id`+
		w.SQL()+` ORDER BY lower(t.span) DESC, t.id DESC LIMIT `+strconv.Itoa(limit), w.Args()...)
	if err != nil {
		return nil, fmt.Errorf("record: tags: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tag, error) { return scanTag(r) })
}

// GetTag returns tag id.
func (s *Store) GetTag(ctx context.Context, id int64) (Tag, error) {
	t, err := scanTag(s.pool.QueryRow(ctx, `SELECT `+tagColumns+` FROM footage_tags t JOIN cameras c ON c.id = t.camera_id WHERE t.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, gridwatch.Errorf(gridwatch.ENotFound, "tag %d not found", id)
	}
	return t, err
}

// Author is who writes a tag: a name to show and a key that is theirs alone.
type Author struct{ Name, Key string }

// AddTag tags footage.
func (s *Store) AddTag(ctx context.Context, in TagInput, by Author) (Tag, error) {
	t := Tag{Stretch: Stretch{CameraID: in.CameraID}, Author: by.Name, AuthorKey: by.Key}
	if in.From == nil || in.To == nil || in.Label == nil {
		return t, gridwatch.Errorf(gridwatch.EInvalid, "camera_id, from, to and label are required")
	}
	t.From, t.To, t.Label = *in.From, *in.To, *in.Label
	if in.Note != nil {
		t.Note = *in.Note
	}
	if err := checkTag(&t); err != nil {
		return t, err
	}
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO footage_tags (camera_id, span, label, note, author, author_key) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			t.CameraID, span(t.From, t.To), t.Label, t.Note, by.Name, by.Key).Scan(&id)
		if v, _ := database.Violated(err); v == database.ForeignKey {
			return gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", t.CameraID)
		}
		if err != nil {
			return fmt.Errorf("record: tag: %w", err)
		}
		return audit.Record(ctx, tx, "tag.create", "tag", strconv.FormatInt(id, 10), map[string]any{"after": map[string]any{"camera_id": t.CameraID, "label": t.Label}})
	})
	if err != nil {
		return t, err
	}
	return s.GetTag(ctx, id)
}

// UpdateTag edits a tag. Only its author or an admin (asAdmin) may.
func (s *Store) UpdateTag(ctx context.Context, id int64, in TagInput, by Author, asAdmin bool) (Tag, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t, err := scanTag(tx.QueryRow(ctx, `SELECT `+tagColumns+` FROM footage_tags t JOIN cameras c ON c.id = t.camera_id WHERE t.id = $1 FOR UPDATE OF t`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "tag %d not found", id)
		}
		if err != nil {
			return err
		}
		if t.AuthorKey != by.Key && !asAdmin {
			return gridwatch.Errorf(gridwatch.EForbidden, "only %s (who wrote it) or an admin may change this tag", t.Author)
		}
		before := map[string]any{"label": t.Label, "from": t.From, "to": t.To}
		if in.From != nil {
			t.From = *in.From
		}
		if in.To != nil {
			t.To = *in.To
		}
		if in.Label != nil {
			t.Label = *in.Label
		}
		if in.Note != nil {
			t.Note = *in.Note
		}
		if err := checkTag(&t); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE footage_tags SET span = $2, label = $3, note = $4, updated_at = now() WHERE id = $1`,
			id, span(t.From, t.To), t.Label, t.Note); err != nil {
			return fmt.Errorf("record: tag: %w", err)
		}
		return audit.Record(ctx, tx, "tag.update", "tag", strconv.FormatInt(id, 10), map[string]any{"before": before, "after": map[string]any{"label": t.Label, "from": t.From, "to": t.To}})
	})
	if err != nil {
		return Tag{}, err
	}
	return s.GetTag(ctx, id)
}

// DeleteTag removes a tag: its author or an admin.
func (s *Store) DeleteTag(ctx context.Context, id int64, by Author, asAdmin bool) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var author, key string
		err := tx.QueryRow(ctx, `SELECT author, author_key FROM footage_tags WHERE id = $1 FOR UPDATE`, id).Scan(&author, &key)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "tag %d not found", id)
		}
		if err != nil {
			return err
		}
		if key != by.Key && !asAdmin {
			return gridwatch.Errorf(gridwatch.EForbidden, "only %s (who wrote it) or an admin may delete this tag", author)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM footage_tags WHERE id = $1`, id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "tag.delete", "tag", strconv.FormatInt(id, 10), nil)
	})
}
