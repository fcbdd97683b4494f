package record_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gridwatch/camera/record"
)

// TestReconcileUploadedCopy: a node stopped (kill -9) between recording a
// file's upload in its row and removing the local copy. At the next start
// Reconcile removes the copy, keeps the row (it points at the object
// store) and marks nothing missing or indexed again.
func TestReconcileUploadedCopy(t *testing.T) {
	rc := recordFor(t, 5*time.Second)
	ctx := context.Background()
	recs, _ := rc.list(t)
	if len(recs) < 2 {
		t.Fatalf("%d recordings, want 2 or more", len(recs))
	}
	up := recs[0]
	key := "footage/" + up.Path
	if _, err := rc.pool.Exec(ctx, `UPDATE recordings SET object_key = $2 WHERE id = $1`, up.ID, key); err != nil {
		t.Fatal(err)
	}
	rep, err := record.NewRecorder(record.Config{Dir: rc.dir}, rc.store).Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep != (record.ReconcileReport{Uploaded: 1}) {
		t.Errorf("reconcile: %+v, want just 1 uploaded copy removed", rep)
	}
	if _, err := os.Stat(filepath.Join(rc.dir, up.Path)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the local copy of the uploaded file: %v, want it removed", err)
	}
	var status string
	var object *string
	if err := rc.pool.QueryRow(ctx, `SELECT status, object_key FROM recordings WHERE id = $1`, up.ID).Scan(&status, &object); err != nil {
		t.Fatal(err)
	}
	if status != "ok" || object == nil || *object != key {
		t.Errorf("the uploaded file's row: %s, object %v; want ok, %s", status, object, key)
	}
	for _, r := range recs[1:] {
		if _, err := os.Stat(filepath.Join(rc.dir, r.Path)); err != nil {
			t.Errorf("a file not uploaded: %v", err)
		}
	}
	// Once more: nothing left to do.
	if rep, err := record.NewRecorder(record.Config{Dir: rc.dir}, rc.store).Reconcile(ctx); err != nil || rep != (record.ReconcileReport{}) {
		t.Errorf("second reconcile: %+v, %v; want nothing done", rep, err)
	}
}
