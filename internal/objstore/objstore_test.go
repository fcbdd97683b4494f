package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gridwatch/internal/objstore"
	"gridwatch/internal/objstore/objtest"
)

func TestUploadReadRemove(t *testing.T) {
	cfg := objtest.Start(t)
	ctx := context.Background()
	s, err := objstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "s3://footage/recordings" || s.Key("/7/2026-12-06/1.mp4") != "recordings/7/2026-12-06/1.mp4" {
		t.Fatalf("store %s, key %s", s, s.Key("/7/2026-12-06/1.mp4"))
	}
	data := bytes.Repeat([]byte("gridwatch footage "), 200_000) // 3.6 MB
	path := filepath.Join(t.TempDir(), "f.mp4")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Upload(ctx, s.Key("7/a.mp4"), path)
	if want := sha256.Sum256(data); err != nil || !bytes.Equal(sum, want[:]) {
		t.Fatalf("upload: %v, sum %x", err, sum)
	}
	obj, size, err := s.Open(ctx, s.Key("7/a.mp4"))
	if err != nil || size != int64(len(data)) {
		t.Fatalf("open: %v, %d bytes", err, size)
	}
	// Ranged reads (ReadAt, Seek) as the MP4 readers and ServeContent do.
	buf := make([]byte, 18)
	if _, err := obj.ReadAt(buf, 18*1000); err != nil || string(buf) != "gridwatch footage " {
		t.Fatalf("ReadAt: %v %q", err, buf)
	}
	if _, err := obj.Seek(int64(len(data))-8, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(obj)
	if err != nil || string(rest) != "footage " {
		t.Fatalf("after Seek: %v %q", err, rest)
	}
	obj.Close()
	if err := s.Remove(ctx, s.Key("7/a.mp4")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, s.Key("7/a.mp4")); err != nil {
		t.Fatalf("removing again: %v", err)
	}
	if _, _, err := s.Open(ctx, s.Key("7/a.mp4")); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("open a removed object: %v", err)
	}
	// A missing bucket and a bad URL are clear errors.
	bad := cfg
	bad.URL = "s3://no-such-bucket"
	if _, err := objstore.Open(ctx, bad); err == nil {
		t.Fatal("a missing bucket opened")
	}
	for _, u := range []string{"footage", "s3://", "http://b/x", "s3://k:s@b/x"} {
		if _, _, err := objstore.ParseURL(u); err == nil {
			t.Errorf("ParseURL(%q) accepted", u)
		}
	}
}
