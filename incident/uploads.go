package incident

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
)

// Resumable uploads: a phone on a poor signal sends a photo or a voice note
// in chunks, each acknowledged once stored; after a broken connection it
// asks how much arrived and sends the rest. The chunks live in PostgreSQL
// until the last one lands (any node takes the next chunk; nothing
// acknowledged is lost by a crash), then the attachment is stored as a
// one-shot upload would be, and the chunks are dropped.

// MaxUploadChunk is the largest chunk one request may carry.
const MaxUploadChunk = 4 << 20

// staleUploads is how long an unfinished upload nobody continues is kept.
const staleUploads = 48 * time.Hour

// A caller has at most maxOpenUploads unfinished uploads, declaring at
// most maxPendingBytes between them: a phone that makes a new key for
// every retry, or a caller filling the database, is told to finish or
// wait (EThrottled) instead.
const (
	maxOpenUploads  = 16
	maxPendingBytes = 64 << 20
)

// Upload is where an upload stands: the bytes received of total, and the
// attachment once complete.
type Upload struct {
	Offset     int64       `json:"offset"`
	Total      int64       `json:"total"`
	Attachment *Attachment `json:"attachment"`
}

// Chunk is one part of an upload: bytes [Start, Start+len(Data)) of a file
// of Total bytes.
type Chunk struct {
	Start, Total int64
	Data         []byte
}

// UploadChunk stores one chunk of the upload once names (its caller and
// key) on incident id, if v may see the incident. The first chunk gives
// the file name. It returns where the upload stands and whether this chunk
// completed it. A chunk that does not start where the upload stands is a
// conflict that says where it does (EConflict, details.offset), except a
// chunk already received, which is acknowledged again: a phone that lost
// the answer sends it twice.
func (s *Service) UploadChunk(ctx context.Context, id int64, v Viewer, once Once, filename string, c Chunk, by string) (*Upload, bool, error) {
	if s.dir == "" && s.blobs == nil {
		return nil, false, errors.New("attachments: no data directory configured")
	}
	switch {
	case c.Total <= 0:
		return nil, false, FieldError("Content-Range", "the total size must be at least 1 byte")
	case c.Total > MaxAttachmentBytes:
		return nil, false, tooLarge()
	case len(c.Data) == 0:
		return nil, false, FieldError("body", "the chunk is empty")
	case len(c.Data) > MaxUploadChunk:
		return nil, false, FieldError("body", "the chunk is %d bytes; at most %d per request", len(c.Data), MaxUploadChunk)
	case c.Start < 0 || c.Start+int64(len(c.Data)) > c.Total:
		return nil, false, FieldError("Content-Range", "bytes %d to %d lie outside a file of %d bytes", c.Start, c.Start+int64(len(c.Data))-1, c.Total)
	}
	if c.Start == 0 && (len(c.Data) >= 512 || int64(len(c.Data)) == c.Total) {
		// The first chunk says what the file is: a file that will never
		// be accepted is refused before any of it is kept.
		if _, _, _, err := sniffAttachment(c.Data); err != nil {
			return nil, false, err
		}
	}
	if _, err := s.get(ctx, s.pool, id, v); err != nil {
		return nil, false, err
	}
	var (
		up       Upload
		complete bool
		uid      int64
		rejected bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			name     string
			attached *int64
		)
		err := tx.QueryRow(ctx, `SELECT id, filename, total, received, attachment_id FROM attachment_uploads
			WHERE incident_id = $1 AND caller_key = $2 AND upload_key = $3 FOR UPDATE`,
			id, once.Caller, once.Key).Scan(&uid, &name, &up.Total, &up.Offset, &attached)
		if errors.Is(err, pgx.ErrNoRows) {
			if err := s.checkUploadRoom(ctx, tx, once.Caller, c.Total); err != nil {
				return err
			}
			err = tx.QueryRow(ctx, `INSERT INTO attachment_uploads (incident_id, caller_key, upload_key, filename, total, created_by, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
				ON CONFLICT (incident_id, caller_key, upload_key) DO UPDATE SET updated_at = attachment_uploads.updated_at
				RETURNING id, filename, total, received, attachment_id`,
				id, once.Caller, once.Key, cleanFilename(filename, "file"), c.Total, by, s.now()).Scan(&uid, &name, &up.Total, &up.Offset, &attached)
		}
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		// The row is locked: two chunks of one upload queue here.
		if up.Total != c.Total {
			return gridwatch.Errorf(gridwatch.EConflict, "upload %q was started for a file of %d bytes, not %d: use a new key for another file", once.Key, up.Total, c.Total).
				WithDetails(map[string]any{"offset": up.Offset, "total": up.Total})
		}
		if attached != nil {
			up.Attachment, err = s.attachment(ctx, tx, id, *attached)
			return err
		}
		end := c.Start + int64(len(c.Data))
		if c.Start != up.Offset {
			if end <= up.Offset {
				return nil // received already: acknowledged again
			}
			return gridwatch.Errorf(gridwatch.EConflict, "upload %q stands at byte %d; this chunk starts at %d: send from %d", once.Key, up.Offset, c.Start, up.Offset).
				WithDetails(map[string]any{"offset": up.Offset, "total": up.Total})
		}
		if _, err := tx.Exec(ctx, "INSERT INTO attachment_upload_chunks (upload_id, at, data) VALUES ($1, $2, $3)", uid, c.Start, c.Data); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		up.Offset = end
		if up.Offset < up.Total {
			_, err := tx.Exec(ctx, "UPDATE attachment_uploads SET received = $2, updated_at = $3 WHERE id = $1", uid, up.Offset, s.now())
			return err
		}
		// The last chunk: the file is whole.
		data, err := uploadedBytes(ctx, tx, uid, up.Total)
		if err != nil {
			return err
		}
		a, rel, err := s.storeFile(ctx, id, name, data, by)
		if gridwatch.ErrorCode(err) == gridwatch.EInvalid {
			rejected = true // never to be accepted: dropped below
		}
		if err != nil {
			return err
		}
		if err := s.insertAttachment(ctx, tx, a, rel); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM attachment_upload_chunks WHERE upload_id = $1", uid); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE attachment_uploads SET received = total, attachment_id = $2, updated_at = $3 WHERE id = $1", uid, a.ID, s.now()); err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		up.Attachment, complete = a, true
		return nil
	})
	if rejected {
		// The whole file is not one to keep: its chunks go, and a retry
		// starts afresh (and is refused on its first chunk).
		if _, derr := s.pool.Exec(ctx, "DELETE FROM attachment_uploads WHERE id = $1", uid); derr != nil {
			s.log.Warn("dropping a refused upload", "err", derr)
		}
	}
	if err != nil {
		return nil, false, err
	}
	if c.Start == 0 {
		s.purgeStaleUploads(ctx)
	}
	return &up, complete, nil
}

// checkUploadRoom refuses a new upload of total bytes by caller when the
// caller has too many unfinished ones or declares too many bytes in them;
// the caller's uploads are counted under a lock of the caller, so two new
// uploads at once cannot both fit in the last place.
func (s *Service) checkUploadRoom(ctx context.Context, tx pgx.Tx, caller string, total int64) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('attachment_uploads:' || $1, 0))", caller); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	var (
		open    int
		pending int64
	)
	if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(total), 0) FROM attachment_uploads
		WHERE caller_key = $1 AND attachment_id IS NULL AND updated_at >= $2`, caller, s.now().Add(-staleUploads)).Scan(&open, &pending); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if open >= maxOpenUploads || pending+total > maxPendingBytes {
		return gridwatch.Errorf(gridwatch.EThrottled, "you have %d unfinished uploads (%d MiB): finish them before starting another (at most %d, %d MiB); unfinished ones are dropped after %s",
			open, pending>>20, maxOpenUploads, maxPendingBytes>>20, staleUploads).
			WithDetails(map[string]any{"open_uploads": open, "pending_bytes": pending, "retry_after_seconds": 60})
	}
	return nil
}

// UploadState returns where upload once on incident id stands (ENotFound
// when it never started), if v may see the incident.
func (s *Service) UploadState(ctx context.Context, id int64, v Viewer, once Once) (*Upload, error) {
	if _, err := s.get(ctx, s.pool, id, v); err != nil {
		return nil, err
	}
	var (
		up       Upload
		attached *int64
	)
	err := s.pool.QueryRow(ctx, `SELECT total, received, attachment_id FROM attachment_uploads
		WHERE incident_id = $1 AND caller_key = $2 AND upload_key = $3`, id, once.Caller, once.Key).Scan(&up.Total, &up.Offset, &attached)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "no upload %q on incident %d: start it with its first chunk", once.Key, id)
	}
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	if attached != nil {
		if up.Attachment, err = s.attachment(ctx, s.pool, id, *attached); err != nil {
			return nil, err
		}
	}
	return &up, nil
}

// uploadedBytes joins an upload's chunks, checking they cover it exactly.
func uploadedBytes(ctx context.Context, tx pgx.Tx, uid, total int64) ([]byte, error) {
	rows, err := tx.Query(ctx, "SELECT at, data FROM attachment_upload_chunks WHERE upload_id = $1 ORDER BY at", uid)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer rows.Close()
	var buf bytes.Buffer
	buf.Grow(int(total))
	for rows.Next() {
		var (
			at   int64
			data []byte
		)
		if err := rows.Scan(&at, &data); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
		if at != int64(buf.Len()) {
			return nil, fmt.Errorf("upload %d: a chunk at %d after %d bytes", uid, at, buf.Len())
		}
		buf.Write(data)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	if int64(buf.Len()) != total {
		return nil, fmt.Errorf("upload %d: %d bytes of %d", uid, buf.Len(), total)
	}
	return buf.Bytes(), nil
}

// attachment reads attachment aid of incident id.
func (s *Service) attachment(ctx context.Context, q queryRower, id, aid int64) (*Attachment, error) {
	var a Attachment
	err := q.QueryRow(ctx, `SELECT id, incident_id, kind, filename, content_type, bytes, sha256, path, created_by, created_at
		FROM incident_attachments WHERE id = $1 AND incident_id = $2`, aid, id).
		Scan(&a.ID, &a.IncidentID, &a.Kind, &a.Filename, &a.ContentType, &a.Bytes, &a.SHA256, &a.path, &a.CreatedBy, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "attachment %d of incident %d not found", aid, id)
	}
	if err != nil {
		return nil, fmt.Errorf("attachment %d: %w", aid, err)
	}
	a.URL = attachmentURL(id, aid)
	return &a, nil
}

// purgeStaleUploads drops unfinished uploads nobody continued for a week
// (a phone that was lost or reset); a failure only leaves them for later.
func (s *Service) purgeStaleUploads(ctx context.Context) {
	if _, err := s.pool.Exec(ctx, "DELETE FROM attachment_uploads WHERE attachment_id IS NULL AND updated_at < $1", s.now().Add(-staleUploads)); err != nil {
		s.log.Warn("purging stale uploads", "err", err)
	}
}

// ReadChunk reads a chunk body of exactly n bytes (from a Content-Range).
func ReadChunk(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 || n > MaxUploadChunk {
		return nil, FieldError("Content-Range", "a chunk is 1 to %d bytes", MaxUploadChunk)
	}
	data, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != n {
		return nil, FieldError("body", "the chunk is %d bytes but Content-Range says %d", len(data), n)
	}
	return data, nil
}
