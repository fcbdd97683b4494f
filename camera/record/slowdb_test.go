package record_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridwatch/camera/camsim"
)

// hubSkips is how many times the camera's hubs skipped a slow viewer (the
// recorder is the only one) ahead to the next keyframe, or dropped one.
func (rc recorded) hubSkips() int64 {
	var n int64
	for _, s := range rc.live.Stats() {
		n += s.Hub.Skips + s.Hub.Drops
	}
	return n
}

// A locked index (a migration or VACUUM FULL holds the recordings table)
// does not hold the camera's pictures up: the recorder takes every picture
// (the hub never skips it ahead), its files grow and close on disk while
// no row can be written, and once the lock goes the index catches up, each
// file with its row, whole.
func TestRecordLockedIndex(t *testing.T) {
	const hold = 6 * time.Second // three files, six fragments
	var skips0, skips1 int64
	var grew bool
	rc := recordRun(t, recordOpts{during: func(_ *camsim.Sim, rc recorded) {
		rc.waitClosed(t, 1)
		skips0 = rc.hubSkips()
		ctx := context.Background()
		tx, err := rc.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "LOCK TABLE recordings, recording_gaps IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		size0 := onDisk(t, rc.dir)
		<-time.After(hold) // the fault: the lock is held this long
		grew = total(onDisk(t, rc.dir)) > total(size0)
		skips1 = rc.hubSkips()
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		// Files closed while the lock was held are indexed after it.
		rc.waitClosed(t, 4)
	}})
	if skips1 != skips0 {
		t.Errorf("the hub skipped or dropped the recorder %d times while the index was locked", skips1-skips0)
	}
	if !grew {
		t.Error("nothing was written to disk while the index was locked")
	}
	// The recorder has stopped: every file on disk has its row, whole.
	recs, gaps := rc.all(t)
	indexed := map[string]int64{}
	for _, r := range recs {
		indexed[r.Path] = r.Bytes
	}
	for p, size := range onDisk(t, rc.dir) {
		if n, ok := indexed[p]; !ok || n != size {
			t.Errorf("file %s: %d bytes, indexed %d (%v)", p, size, n, ok)
		}
	}
	checkIndex(t, rc, recs, gaps, 4*time.Second)
	for i := 1; i < len(recs); i++ {
		if d := recs[i].Start.Sub(recs[i-1].End); d > 500*time.Millisecond {
			t.Errorf("a hole of %v between files %d and %d", d, i-1, i)
		}
	}
	if len(gaps) > 0 {
		t.Errorf("gaps %+v, want none", gaps)
	}
}

// onDisk is the size of each recording under dir, by its path from dir.
func onDisk(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".mp4") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func total(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}
