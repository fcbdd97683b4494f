package incident

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/objstore"
)

// MaxAttachmentBytes is the largest photo accepted.
const MaxAttachmentBytes = 10 << 20

// photoTypes are the image types accepted, by their sniffed content type.
var photoTypes = map[string]string{"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}

// Attachment is a photo or a voice note of an incident.
type Attachment struct {
	ID         int64 `json:"id"`
	IncidentID int64 `json:"incident_id"`
	// Kind is "photo" or "voice".
	Kind        string    `json:"kind"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	URL         string    `json:"url"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	path        string
}

// Blobs is an object store for the photos (package objstore): with several
// nodes, a photo uploaded through one is served by all.
type Blobs interface {
	Key(rel string) string
	Put(ctx context.Context, key, contentType string, data []byte) error
	Open(ctx context.Context, key string) (objstore.Object, int64, error)
}

// objectPrefix marks an attachment's path that is an object key.
const objectPrefix = "object:"

// voiceTypes are the sound types accepted as voice notes, by their sniffed
// content type (a phone's MediaRecorder writes WebM or MP4; Ogg and MP3
// come from elsewhere), and the type they are served as.
var voiceTypes = map[string]struct{ ctype, ext string }{
	"video/webm":      {"audio/webm", ".webm"},
	"application/ogg": {"audio/ogg", ".ogg"},
	"video/mp4":       {"audio/mp4", ".m4a"},
	"audio/mpeg":      {"audio/mpeg", ".mp3"},
	"audio/wave":      {"audio/wav", ".wav"},
}

// mp4Brands are the ftyp brands of the MP4 sound a phone records (an
// iPhone's .m4a is "M4A "; others write isom…iso6 or mp41/mp42), which
// http.DetectContentType knows only when the brand starts with "mp4".
var mp4Brands = map[string]bool{"M4A ": true, "M4B ": true, "isom": true, "iso2": true, "iso3": true, "iso4": true,
	"iso5": true, "iso6": true, "mp41": true, "mp42": true, "dash": true, "3gp4": true, "3gp5": true, "3gp6": true}

// sniffAttachment says what the bytes of an attachment are, from their
// start (the first 512 bytes decide): the type to serve it as, its file
// extension and its kind, or an error naming the file as neither a photo
// nor a voice note.
func sniffAttachment(data []byte) (ctype, ext, kind string, err error) {
	sniffed := http.DetectContentType(data)
	if ext, ok := photoTypes[sniffed]; ok {
		return sniffed, ext, "photo", nil
	}
	if vt, ok := voiceTypes[sniffed]; ok {
		return vt.ctype, vt.ext, "voice", nil
	}
	if len(data) >= 12 && string(data[4:8]) == "ftyp" && mp4Brands[string(data[8:12])] {
		return "audio/mp4", ".m4a", "voice", nil
	}
	return "", "", "", FieldError("file", "is %s, neither a photo nor a voice note: send JPEG, PNG, WebP or GIF, or WebM, MP4, Ogg, MP3 or WAV sound", sniffed)
}

// Attach stores a photo or a voice note of incident id, if v may see it.
// The type is sniffed from the bytes (the name and the declared type are
// not trusted); the file is written under the data dir before its row, so
// a crash leaves at worst an unreferenced file, never a row without a file.
func (s *Service) Attach(ctx context.Context, id int64, v Viewer, filename string, r io.Reader, by string) (*Attachment, error) {
	if s.dir == "" && s.blobs == nil {
		return nil, errors.New("attachments: no data directory configured")
	}
	if _, err := s.get(ctx, s.pool, id, v); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxAttachmentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxAttachmentBytes {
		return nil, tooLarge()
	}
	a, rel, err := s.storeFile(ctx, id, filename, data, by)
	if err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return s.insertAttachment(ctx, tx, a, rel)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func tooLarge() error {
	return gridwatch.Errorf(gridwatch.ETooLarge, "the file is larger than %d MiB", MaxAttachmentBytes>>20).
		WithDetails(map[string]any{"field": "file", "limit_bytes": MaxAttachmentBytes})
}

// storeFile checks an attachment's bytes (a photo or a voice note, by its
// sniffed type) and writes them to the object store or the data dir; it
// returns the attachment to insert and its path.
func (s *Service) storeFile(ctx context.Context, id int64, filename string, data []byte, by string) (*Attachment, string, error) {
	if len(data) == 0 {
		return nil, "", FieldError("file", "is empty")
	}
	ctype, ext, kind, err := sniffAttachment(data)
	if err != nil {
		return nil, "", err
	}
	filename = cleanFilename(filename, kind)
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	rel := filepath.Join(strconv.FormatInt(id, 10), hash+ext)
	if s.blobs != nil {
		key := s.blobs.Key("attachments/" + filepath.ToSlash(rel))
		if err := s.blobs.Put(ctx, key, ctype, data); err != nil {
			return nil, "", gridwatch.Errorf(gridwatch.EUnavailable, "attachments: the object store: %v", err)
		}
		rel = objectPrefix + key
	} else {
		full := filepath.Join(s.dir, rel)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			return nil, "", fmt.Errorf("attachments: %w", err)
		}
		if err := writeFileAtomic(full, data); err != nil {
			return nil, "", fmt.Errorf("attachments: %w", err)
		}
	}
	return &Attachment{IncidentID: id, Kind: kind, Filename: filename, ContentType: ctype, Bytes: int64(len(data)), SHA256: hash, CreatedBy: by}, rel, nil
}

// insertAttachment records a stored file as attachment a, in tx, audited.
func (s *Service) insertAttachment(ctx context.Context, tx pgx.Tx, a *Attachment, rel string) error {
	if err := tx.QueryRow(ctx, `INSERT INTO incident_attachments (incident_id, kind, filename, content_type, bytes, sha256, path, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id, created_at`,
		a.IncidentID, a.Kind, a.Filename, a.ContentType, a.Bytes, a.SHA256, rel, a.CreatedBy, s.now()).Scan(&a.ID, &a.CreatedAt); err != nil {
		return fmt.Errorf("attachments: %w", err)
	}
	a.URL = attachmentURL(a.IncidentID, a.ID)
	return audit.Record(ctx, tx, "incident.attach", "incident", strconv.FormatInt(a.IncidentID, 10),
		map[string]any{"after": map[string]any{"attachment": a.ID, "kind": a.Kind, "filename": a.Filename, "bytes": a.Bytes, "sha256": a.SHA256}})
}

func attachmentURL(incident, id int64) string {
	return fmt.Sprintf("/api/v1/incidents/%d/attachments/%d", incident, id)
}

// writeFileAtomic writes data to a temporary file and renames it into place.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, bytes.NewReader(data)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// cleanFilename keeps a display name: no directories, no control
// characters, at most 200 characters.
func cleanFilename(name, kind string) string {
	name = filepath.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if name == "." || name == "/" || name == "" {
		name = kind
	}
	for utf8.RuneCountInString(name) > 200 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

// Attachments lists incident id's photos.
func (s *Service) Attachments(ctx context.Context, id int64) ([]Attachment, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, incident_id, kind, filename, content_type, bytes, sha256, path, created_by, created_at
		FROM incident_attachments WHERE incident_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("attachments: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Attachment, error) {
		var a Attachment
		err := row.Scan(&a.ID, &a.IncidentID, &a.Kind, &a.Filename, &a.ContentType, &a.Bytes, &a.SHA256, &a.path, &a.CreatedBy, &a.CreatedAt)
		a.URL = attachmentURL(a.IncidentID, a.ID)
		return a, err
	})
	if out == nil {
		out = []Attachment{}
	}
	return out, err
}

// OpenAttachment returns photo aid of incident id, if v may see the
// incident, and its bytes open (the caller closes them): from the object
// store, or the data dir of the node it was uploaded to.
func (s *Service) OpenAttachment(ctx context.Context, id, aid int64, v Viewer) (*Attachment, io.ReadSeekCloser, error) {
	if _, err := s.get(ctx, s.pool, id, v); err != nil {
		return nil, nil, err
	}
	a, err := s.attachment(ctx, s.pool, id, aid)
	if err != nil {
		return nil, nil, err
	}
	if key, ok := strings.CutPrefix(a.path, objectPrefix); ok {
		if s.blobs == nil {
			return nil, nil, gridwatch.Errorf(gridwatch.EUnavailable, "attachment %d is in the object store, which this node is not configured for (--footage-store)", aid)
		}
		obj, _, err := s.blobs.Open(ctx, key)
		if err != nil {
			return nil, nil, gridwatch.Errorf(gridwatch.EUnavailable, "attachment %d: the object store: %v", aid, err)
		}
		return a, obj, nil
	}
	f, err := os.Open(filepath.Join(s.dir, a.path))
	if err != nil {
		return nil, nil, fmt.Errorf("attachment %d file: %w", aid, err)
	}
	return a, f, nil
}
