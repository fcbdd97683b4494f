package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"gridwatch/camera/stream"
)

// ReconcileReport says what Reconcile did.
type ReconcileReport struct {
	// Indexed files were on disk but not in the index (the file being
	// written when the process stopped); Truncated of them ended in a torn
	// fragment, which was cut off. Removed files held no whole fragment.
	// Missing rows point at files that are gone. Finished files were
	// open (indexed as they grew) when the process stopped: their rows
	// now match what the files hold. Uploaded are local copies of files
	// the object store holds (the process stopped between the upload's
	// row and the copy's removal), removed.
	Indexed, Truncated, Removed, Missing, Finished, Uploaded int
}

// Reconcile brings disk and index together at start, before recording:
// files without rows, and files still open when the process stopped, are
// indexed from what they hold (a torn last fragment cut off) or removed;
// rows without files are marked missing.
func (r *Recorder) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	type row struct{ seen, open, mine, uploaded bool }
	known := map[string]*row{}
	// Only the rows of files on this node's disk (or uploaded from it),
	// not those of other nodes.
	// A row without a node (written before there were several) is this
	// node's if its file is on this disk: it is adopted below. Only this
	// node's rows are marked missing when their files are not here.
	rows, err := r.store.pool.Query(ctx, `SELECT path, open, node_id IS NOT DISTINCT FROM nullif($1, ''), object_key IS NOT NULL FROM recordings
		WHERE status = 'ok' AND (node_id IS NULL OR node_id = $1)`, r.cfg.Node)
	if err != nil {
		return rep, fmt.Errorf("record: reconcile: %w", err)
	}
	for rows.Next() {
		var p string
		var open, mine, uploaded bool
		if err := rows.Scan(&p, &open, &mine, &uploaded); err != nil {
			rows.Close()
			return rep, err
		}
		known[p] = &row{open: open, mine: mine, uploaded: uploaded}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, err
	}
	err = filepath.WalkDir(r.cfg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".mp4") {
			return nil
		}
		rel, _ := filepath.Rel(r.cfg.Dir, path)
		k := known[rel]
		if k != nil && k.uploaded {
			// The object store has it and the index points there: the
			// local copy is left over.
			k.seen = true
			rep.Uploaded++
			r.cfg.Logger.Info("recording: removed the local copy of an uploaded file", "file", rel)
			return os.Remove(path)
		}
		if k != nil {
			k.seen = true
			if !k.mine {
				if _, err := r.store.pool.Exec(ctx, `UPDATE recordings SET node_id = $2 WHERE path = $1 AND node_id IS NULL`, rel, r.cfg.Node); err != nil {
					return err
				}
				k.mine = true
			}
			if !k.open {
				return nil
			}
		}
		rec, truncated, err := scanFile(r.cfg.Dir, rel)
		if err != nil {
			r.cfg.Logger.Warn("recording: unreadable file removed", "file", rel, "err", err)
			rep.Removed++
			if k != nil {
				if _, err := r.store.pool.Exec(ctx, `DELETE FROM recordings WHERE path = $1`, rel); err != nil {
					return err
				}
			}
			return os.Remove(path)
		}
		// What this node wrote past its last index update belongs to it
		// only if no other recorder has footage of the camera from then
		// (another node took the camera over): else the file is cut back
		// to what the index holds, or removed when it holds none.
		if over, err := r.store.overlaps(ctx, rec, r.cfg.Node); err != nil {
			return err
		} else if over {
			rep.Removed++
			if k != nil {
				var size int64
				if err := r.store.pool.QueryRow(ctx, `UPDATE recordings SET open = false WHERE path = $1 RETURNING bytes`, rel).Scan(&size); err != nil {
					return err
				}
				return os.Truncate(path, size)
			}
			return os.Remove(path)
		}
		rec.Node = r.cfg.Node
		if err := r.store.Put(ctx, rec); err != nil {
			return err
		}
		if k != nil {
			rep.Finished++
		} else {
			rep.Indexed++
		}
		if truncated {
			rep.Truncated++
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("record: reconcile: %w", err)
	}
	for p, k := range known {
		if k.seen || !k.mine || k.uploaded {
			continue
		}
		if _, err := r.store.pool.Exec(ctx, `UPDATE recordings SET status = 'missing', open = false WHERE path = $1`, p); err != nil {
			return rep, fmt.Errorf("record: reconcile: %w", err)
		}
		rep.Missing++
	}
	return rep, nil
}

// scanFile reads a recorded file back: its camera and start from its path,
// its codec from the init segment, its fragments from the moof boxes. A
// torn last fragment is cut off the file.
func scanFile(dir, rel string) (Recording, bool, error) {
	rec := Recording{Path: rel}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 3 {
		return rec, false, errors.New("not <camera>/<day>/<start>.mp4")
	}
	cam, err1 := strconv.ParseInt(parts[0], 10, 64)
	ms, err2 := strconv.ParseInt(strings.TrimSuffix(parts[2], ".mp4"), 10, 64)
	if err1 != nil || err2 != nil {
		return rec, false, errors.New("not <camera>/<day>/<start>.mp4")
	}
	rec.Camera, rec.Start = cam, time.UnixMilli(ms)
	path := filepath.Join(dir, rel)
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, false, err
	}
	// Top-level boxes: ftyp, moov, then moof+mdat pairs.
	type box struct {
		typ        string
		start, end int
	}
	var boxes []box
	for off := 0; off+8 <= len(data); {
		size := int(binary.BigEndian.Uint32(data[off:]))
		if size < 8 || off+size > len(data) {
			break
		}
		boxes = append(boxes, box{string(data[off+4 : off+8]), off, off + size})
		off += size
	}
	if len(boxes) < 2 || boxes[0].typ != "ftyp" || boxes[1].typ != "moov" {
		return rec, false, errors.New("no initialisation segment")
	}
	init, _, err := stream.ParseInit(data[:boxes[1].end])
	if err != nil {
		return rec, false, err
	}
	var p *stream.Params
	switch codec := init.Tracks[0].Codec.(type) {
	case *fmp4.CodecH264:
		p, err = stream.NewParams(codec.SPS, codec.PPS)
	case *fmp4.CodecH265:
		p, err = stream.NewH265Params(codec.VPS, codec.SPS, codec.PPS)
	default:
		err = errors.New("neither H.264 nor H.265")
	}
	if err != nil {
		return rec, false, err
	}
	rec.Codec, rec.Width, rec.Height, rec.InitSize = p.Codec, p.Width, p.Height, boxes[1].end
	end := boxes[1].end
	var first uint64
	for i := 2; i+1 < len(boxes); i += 2 {
		if boxes[i].typ != "moof" || boxes[i+1].typ != "mdat" {
			break
		}
		var ps fmp4.Parts
		// One part: the pictures' track first, the audio's after it.
		if err := ps.Unmarshal(data[boxes[i].start:boxes[i+1].end]); err != nil || len(ps) != 1 || len(ps[0].Tracks) == 0 ||
			ps[0].Tracks[0].ID != stream.TrackID {
			break
		}
		tr := ps[0].Tracks[0]
		if len(rec.Fragments) == 0 {
			first = tr.BaseTime
		}
		var dur uint64
		for _, s := range tr.Samples {
			dur += uint64(s.Duration)
		}
		rec.Fragments = append(rec.Fragments, Fragment{
			Offset: int64(boxes[i].start), Size: int64(boxes[i+1].end - boxes[i].start),
			Start:    stream.Duration(int64(tr.BaseTime - first)).Milliseconds(),
			Duration: stream.Duration(int64(dur)).Milliseconds(),
		})
		end = boxes[i+1].end
	}
	if len(rec.Fragments) == 0 {
		return rec, false, errors.New("no whole fragment")
	}
	truncated := end < len(data)
	if truncated {
		if err := os.Truncate(path, int64(end)); err != nil {
			return rec, false, err
		}
	}
	last := rec.Fragments[len(rec.Fragments)-1]
	rec.End = rec.Start.Add(time.Duration(last.Start+last.Duration) * time.Millisecond)
	rec.Bytes = int64(end)
	return rec, truncated, nil
}
