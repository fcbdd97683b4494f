package record

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/internal/fence"
)

// Fragment is one moof+mdat of a recorded file: where it is and when.
type Fragment struct {
	Offset int64 `json:"o"`
	Size   int64 `json:"n"`
	// Start and Duration are milliseconds; Start is from the file's start.
	Start    int64 `json:"t"`
	Duration int64 `json:"d"`
}

// Recording is one recorded file.
type Recording struct {
	ID        int64      `json:"id"`
	Camera    int64      `json:"camera_id"`
	Path      string     `json:"-"`
	Start     time.Time  `json:"from"`
	End       time.Time  `json:"to"`
	Bytes     int64      `json:"bytes"`
	Codec     string     `json:"codec"`
	Width     int        `json:"width"`
	Height    int        `json:"height"`
	InitSize  int        `json:"-"`
	Fragments []Fragment `json:"-"`
	Status    string     `json:"status"`
	// Open is true of the file being written: it grows.
	Open bool `json:"open"`
	// Node is the node whose disk holds the file ("" with one node, or
	// once uploaded); Object its key in the object store ("": not there).
	// Where says where the footage is now: "object store", "node <id>",
	// or "node <id>, unreachable" while that node is down and its file
	// not yet uploaded (it is when the node comes back).
	Node   string `json:"node,omitempty"`
	Object string `json:"-"`
	Where  string `json:"where"`
}

// Gap is a time a recording camera recorded nothing, and why.
type Gap struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason"`
}

// Store is the footage index in PostgreSQL; all recording SQL is here.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns the index over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

func span(from, to time.Time) pgtype.Range[pgtype.Timestamptz] {
	return pgtype.Range[pgtype.Timestamptz]{
		Lower: pgtype.Timestamptz{Time: from, Valid: true}, Upper: pgtype.Timestamptz{Time: to, Valid: true},
		LowerType: pgtype.Inclusive, UpperType: pgtype.Exclusive, Valid: true,
	}
}

// Put indexes a recorded file, or updates its row as it grows. When ctx
// carries a fence (the node's lease on the camera, see package fence) the
// write is refused with an error fence.IsStale reports once the lease is
// no longer this node's: a node that lost the camera writes nothing more.
func (s *Store) Put(ctx context.Context, r Recording) error {
	if !r.End.After(r.Start) {
		return fmt.Errorf("record: %s: empty time range", r.Path)
	}
	f := fence.From(ctx)
	var node *string
	switch {
	case r.Node != "":
		node = &r.Node
	case f.Valid():
		node = &f.Node
	}
	args := []any{r.Camera, span(r.Start, r.End), r.Path, r.Bytes, r.Codec, r.Width, r.Height, r.InitSize, r.Fragments, r.Open, node}
	where := ""
	if f.Valid() {
		where, args = ` WHERE gridwatch_fence($1, $12, $13)`, append(args, f.Node, f.Epoch)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO recordings (camera_id, span, path, bytes, codec, width, height, init_size, fragments, open, node_id)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11`+where+`
		ON CONFLICT (path) DO UPDATE SET span = EXCLUDED.span, bytes = EXCLUDED.bytes, fragments = EXCLUDED.fragments, open = EXCLUDED.open`,
		args...)
	if err != nil {
		return fmt.Errorf("record: index %s: %w", r.Path, fence.Check(err))
	}
	return nil
}

// AddGap records that camera recorded nothing from from to to (fenced as
// Put is).
func (s *Store) AddGap(ctx context.Context, camera int64, from, to time.Time, reason string) error {
	if !to.After(from) {
		return nil
	}
	args := []any{camera, span(from, to), reason}
	where := ""
	if f := fence.From(ctx); f.Valid() {
		where, args = ` WHERE gridwatch_fence($1, $4, $5)`, append(args, f.Node, f.Epoch)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO recording_gaps (camera_id, span, reason) SELECT $1, $2, $3`+where, args...)
	if err != nil {
		return fmt.Errorf("record: gap: %w", fence.Check(err))
	}
	return nil
}

// overlaps reports whether another node's footage of rec's camera covers
// part of rec's time (more than the few milliseconds two files of one
// recorder may share: their times come from two clocks).
func (s *Store) overlaps(ctx context.Context, rec Recording, node string) (bool, error) {
	var over bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recordings WHERE camera_id = $1 AND path <> $2 AND span && $3
			AND node_id IS DISTINCT FROM nullif($4, '') AND upper(span * $3) - lower(span * $3) > interval '500 milliseconds')`,
		rec.Camera, rec.Path, span(rec.Start, rec.End), node).Scan(&over)
	return over, err
}

// finish marks a file's row no longer growing (a cut file's: its index
// holds what it keeps).
func (s *Store) finish(ctx context.Context, path string) error {
	_, err := s.pool.Exec(ctx, `UPDATE recordings SET open = false WHERE path = $1`, path)
	return err
}

// LastEnd is where camera's recent indexed footage ends (the zero time: none).
func (s *Store) LastEnd(ctx context.Context, camera int64) (time.Time, error) {
	var end *time.Time
	err := s.pool.QueryRow(ctx, `SELECT max(upper(span)) FROM recordings WHERE camera_id = $1 AND span && tstzrange(now() - $2 * interval '1 second', NULL)`,
		camera, resumeWindow.Seconds()).Scan(&end)
	if err != nil || end == nil {
		return time.Time{}, err
	}
	return *end, nil
}

// MaxRange is the longest time range one query may ask for.
const MaxRange = 31 * 24 * time.Hour

// CheckRange validates a from/to pair as the API receives it.
func CheckRange(from, to time.Time) error {
	switch {
	case from.IsZero() || to.IsZero():
		return gridwatch.Errorf(gridwatch.EInvalid, "from and to are required (RFC 3339)")
	case !to.After(from):
		return gridwatch.Errorf(gridwatch.EInvalid, "to (%s) is not after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339)).
			WithDetails(map[string]any{"from": from, "to": to})
	case to.Sub(from) > MaxRange:
		return gridwatch.Errorf(gridwatch.EInvalid, "the range is %s long; at most %d days at a time", to.Sub(from).Round(time.Hour), int(MaxRange.Hours()/24))
	}
	return nil
}

const recordingColumns = `id, camera_id, lower(span), upper(span), path, bytes, codec, width, height, init_size, fragments, status, open,
	coalesce(node_id, ''), coalesce(object_key, ''),
	object_key IS NULL AND node_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = recordings.node_id AND n.last_beat + n.lease_ms * interval '1 millisecond' > now())`

func scanRecording(row pgx.Row) (Recording, error) {
	var r Recording
	var unreachable bool
	err := row.Scan(&r.ID, &r.Camera, &r.Start, &r.End, &r.Path, &r.Bytes, &r.Codec, &r.Width, &r.Height, &r.InitSize, &r.Fragments, &r.Status, &r.Open,
		&r.Node, &r.Object, &unreachable)
	switch {
	case r.Object != "":
		r.Where = "object store"
	case r.Node == "":
		r.Where = "this node"
	case unreachable:
		r.Where = "node " + r.Node + ", unreachable"
	default:
		r.Where = "node " + r.Node
	}
	return r, err
}

// List returns camera's recordings and gaps overlapping [from, to), oldest first.
func (s *Store) List(ctx context.Context, camera int64, from, to time.Time) ([]Recording, []Gap, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+recordingColumns+` FROM recordings
		WHERE camera_id = $1 AND span && $2 ORDER BY lower(span)`, camera, span(from, to))
	if err != nil {
		return nil, nil, fmt.Errorf("record: list: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recording, error) { return scanRecording(r) })
	if err != nil {
		return nil, nil, fmt.Errorf("record: list: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT lower(span), upper(span), reason FROM recording_gaps
		WHERE camera_id = $1 AND span && $2 ORDER BY lower(span)`, camera, span(from, to))
	if err != nil {
		return nil, nil, fmt.Errorf("record: gaps: %w", err)
	}
	gaps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Gap, error) {
		var g Gap
		err := r.Scan(&g.From, &g.To, &g.Reason)
		return g, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("record: gaps: %w", err)
	}
	return recs, gaps, nil
}

// Get returns recording id.
func (s *Store) Get(ctx context.Context, id int64) (Recording, error) {
	r, err := scanRecording(s.pool.QueryRow(ctx, `SELECT `+recordingColumns+` FROM recordings WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, gridwatch.Errorf(gridwatch.ENotFound, "recording %d not found", id)
	}
	if err != nil {
		return r, fmt.Errorf("record: get %d: %w", id, err)
	}
	return r, nil
}

// Playlist is an HLS VOD playlist of camera's footage from the fragment
// at or before from (a fragment starts on a keyframe) to to. uri names a
// recording's file in the playlist; the segments are byte ranges of it.
func Playlist(recs []Recording, from, to time.Time, uri func(Recording) string) ([]byte, error) {
	var b strings.Builder
	var body strings.Builder
	target := 1.0
	n := 0
	for _, r := range recs {
		if r.Status != "ok" {
			continue
		}
		var frags []Fragment
		for _, f := range r.Fragments {
			fs := r.Start.Add(time.Duration(f.Start) * time.Millisecond)
			fe := fs.Add(time.Duration(f.Duration) * time.Millisecond)
			if fe.After(from) && fs.Before(to) {
				frags = append(frags, f)
			}
		}
		if len(frags) == 0 {
			continue
		}
		if n > 0 {
			body.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		fmt.Fprintf(&body, "#EXT-X-PROGRAM-DATE-TIME:%s\n", r.Start.Add(time.Duration(frags[0].Start)*time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z"))
		fmt.Fprintf(&body, "#EXT-X-MAP:URI=\"%s\",BYTERANGE=\"%d@0\"\n", uri(r), r.InitSize)
		for _, f := range frags {
			d := float64(f.Duration) / 1000
			target = max(target, math.Ceil(d))
			fmt.Fprintf(&body, "#EXTINF:%.3f,\n#EXT-X-BYTERANGE:%d@%d\n%s\n", d, f.Size, f.Offset, uri(r))
			n++
		}
	}
	if n == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "no footage between %s and %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:0\n", int(target))
	b.WriteString(body.String())
	b.WriteString("#EXT-X-ENDLIST\n")
	return []byte(b.String()), nil
}
