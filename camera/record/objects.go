package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gridwatch"
	"gridwatch/internal/objstore"
)

// Objects is the object store closed files go to when several nodes share
// the footage (see package objstore); nil keeps them on the local disk.
type Objects interface {
	Key(rel string) string
	Upload(ctx context.Context, key, path string) ([]byte, error)
	Open(ctx context.Context, key string) (objstore.Object, int64, error)
	Remove(ctx context.Context, key string) error
}

// Peers reaches the other nodes: the HTTP base of node and the token its
// internal routes take, and whether it is alive now.
type Peers interface {
	Peer(ctx context.Context, node string) (url, token string, alive bool)
}

// File is a recorded file being read, wherever it is: on this node's disk,
// in the object store, or fetched from the node whose disk holds it.
type File interface {
	io.ReadSeekCloser
	io.ReaderAt
}

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

// OpenFile opens a recording's file for reading: from the object store
// once uploaded, from this node's disk, or from the node that wrote it
// (a file still growing, or closed and not yet uploaded). A file on a node
// that is down is an EUnavailable error naming the node.
func (r *Recorder) OpenFile(ctx context.Context, rec Recording) (File, error) {
	switch {
	case rec.Object != "" && r.cfg.Objects != nil:
		obj, _, err := r.cfg.Objects.Open(ctx, rec.Object)
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, gridwatch.Errorf(gridwatch.ENotFound, "recording %d: its object is missing from the store", rec.ID)
		}
		if err != nil {
			return nil, gridwatch.Errorf(gridwatch.EUnavailable, "recording %d: the object store: %v", rec.ID, err)
		}
		return obj, nil
	case rec.Object != "":
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "recording %d is in the object store, which this node is not configured for (--footage-store)", rec.ID)
	case rec.Node == "" || rec.Node == r.cfg.Node || r.cfg.Peers == nil:
		f, err := os.Open(filepath.Join(r.cfg.Dir, filepath.Clean("/"+rec.Path)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, gridwatch.Errorf(gridwatch.ENotFound, "recording %d: its file is missing", rec.ID)
		}
		if err != nil {
			// Out of descriptors, say: the file is there, try again.
			return nil, fmt.Errorf("recording %d: open its file: %w", rec.ID, err)
		}
		return f, nil
	}
	b, err := r.fetch(ctx, rec)
	if err != nil {
		return nil, err
	}
	return memFile{bytes.NewReader(b)}, nil
}

// localPath is a path on this node's disk that holds rec's file: its own,
// or a copy (from the object store, from another node) made in dir.
func (r *Recorder) localPath(ctx context.Context, rec Recording, dir string) (string, error) {
	if rec.Object == "" && (rec.Node == "" || rec.Node == r.cfg.Node || r.cfg.Peers == nil) {
		return filepath.Join(r.cfg.Dir, filepath.Clean("/"+rec.Path)), nil
	}
	f, err := r.OpenFile(ctx, rec)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	p := filepath.Join(dir, strconv.FormatInt(rec.ID, 10)+".mp4")
	out, err := os.Create(p)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, f); err != nil {
		out.Close()
		return "", gridwatch.Errorf(gridwatch.EUnavailable, "recording %d: copy for the export: %v", rec.ID, err)
	}
	return p, out.Close()
}

// fetch reads a recording's file from the node whose disk holds it.
func (r *Recorder) fetch(ctx context.Context, rec Recording) ([]byte, error) {
	base, token, alive := r.cfg.Peers.Peer(ctx, rec.Node)
	if !alive || base == "" {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "recording %d is on node %s, which is unreachable: it is uploaded when the node comes back", rec.ID, rec.Node)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/internal/v1/recordings/"+strconv.FormatInt(rec.ID, 10)+"/file", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := peerClient.Do(req)
	if err != nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "recording %d is on node %s, which did not answer: %v", rec.ID, rec.Node, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "recording %d is on node %s, which answered %s", rec.ID, rec.Node, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<30))
	if err != nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "recording %d from node %s: %v", rec.ID, rec.Node, err)
	}
	return b, nil
}

var peerClient = &http.Client{Timeout: 2 * time.Minute}

// Upload puts this node's closed files into the object store, oldest
// first, each verified before its row points to the object; then the local
// copy goes. It returns how many it uploaded. Files left by a node that
// stopped are uploaded when it starts again (they are this node's).
func (r *Recorder) Upload(ctx context.Context) (int, error) {
	if r.cfg.Objects == nil {
		return 0, nil
	}
	n, after := 0, int64(0)
	var failed error
	for {
		rows, err := r.store.pool.Query(ctx, `SELECT id, path FROM recordings
			WHERE NOT open AND status = 'ok' AND `+mine(1)+` AND id > $2
			ORDER BY id LIMIT 50`, r.cfg.Node, after)
		if err != nil {
			return n, fmt.Errorf("record: upload: %w", err)
		}
		type todo struct {
			id   int64
			path string
		}
		var batch []todo
		for rows.Next() {
			var t todo
			if err := rows.Scan(&t.id, &t.path); err != nil {
				rows.Close()
				return n, err
			}
			batch = append(batch, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, err
		}
		if len(batch) == 0 {
			return n, failed
		}
		for _, t := range batch {
			after = t.id
			abs := filepath.Join(r.cfg.Dir, filepath.Clean("/"+t.path))
			key := r.cfg.Objects.Key(t.path)
			sum, err := r.cfg.Objects.Upload(ctx, key, abs)
			if errors.Is(err, fs.ErrNotExist) {
				if _, err := r.store.pool.Exec(ctx, `UPDATE recordings SET status = 'missing' WHERE id = $1`, t.id); err != nil {
					return n, err
				}
				continue
			}
			if err != nil {
				// The next files still go; this one is tried again next pass.
				failed = fmt.Errorf("record: upload %s: %w", t.path, err)
				if ctx.Err() != nil {
					return n, failed
				}
				continue
			}
			tag, err := r.store.pool.Exec(ctx, `UPDATE recordings SET object_key = $2, sha256 = $3 WHERE id = $1 AND object_key IS NULL`, t.id, key, sum)
			if err != nil {
				return n, fmt.Errorf("record: upload %s: %w", t.path, err)
			}
			if tag.RowsAffected() == 1 {
				if err := os.Remove(abs); err != nil {
					r.cfg.Logger.Warn("recordings: remove the uploaded local copy", "file", t.path, "err", err)
				}
				n++
			}
		}
	}
}

// RunUploads uploads closed files every interval (and when a file closes)
// until ctx ends.
func (r *Recorder) RunUploads(ctx context.Context, every time.Duration) {
	if r.cfg.Objects == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := r.Upload(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("recordings: upload to the object store", "err", err, "uploaded", n)
		} else if n > 0 {
			r.cfg.Logger.Debug("recordings: uploaded", "files", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.closed:
		}
	}
}
