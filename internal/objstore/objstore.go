// Package objstore keeps closed footage files in an S3-compatible object
// store (Amazon S3, MinIO, SeaweedFS, Ceph…), through minio-go: the store that
// several nodes share, so that any node plays, exports and holds any
// camera's footage. Uploads are verified: the store checks each file's MD5
// (Content-MD5), and the ETag it answers must be that MD5; the SHA-256 goes
// with the object as metadata and into the index.
package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config says where the store is. URL is s3://bucket[/prefix]; Endpoint
// the S3 API's http(s)://host[:port] (default: Amazon's); PathStyle asks
// for bucket-in-path requests (MinIO, SeaweedFS). The keys come from the
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
// unless given here.
type Config struct {
	URL       string
	Endpoint  string
	Region    string
	PathStyle bool
	AccessKey string
	SecretKey string
}

// ParseURL splits s3://bucket/prefix (the prefix without slashes at its ends).
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return "", "", fmt.Errorf("footage store %q: want s3://bucket[/prefix]", raw)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// Store is a bucket (and a prefix in it).
type Store struct {
	c              *minio.Client
	bucket, prefix string
}

// Open connects to the store and checks that the bucket is there.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	bucket, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	endpoint, secure := "s3.amazonaws.com", true
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	} else {
		creds = credentials.NewEnvAWS()
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: secure, Region: cfg.Region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	ok, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("footage store s3://%s at %s: %w", bucket, endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("footage store: bucket %q does not exist at %s", bucket, endpoint)
	}
	return &Store{c: c, bucket: bucket, prefix: prefix}, nil
}

// String names the store (no credentials).
func (s *Store) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// Key is the object key of a path relative to the recordings directory.
func (s *Store) Key(rel string) string {
	rel = strings.TrimLeft(rel, "/")
	if s.prefix == "" {
		return rel
	}
	return s.prefix + "/" + rel
}

// isMD5 reports whether an ETag is an object's MD5: 32 hex digits. A store
// that encrypts with KMS keys, or a multipart upload, answers another kind;
// the store has checked the Content-MD5 the request carried all the same.
func isMD5(etag string) bool {
	etag = strings.Trim(etag, `"`)
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// ErrCorrupt is an upload the store did not take back whole.
var ErrCorrupt = errors.New("objstore: the store's copy differs from the file")

// Upload puts the file at path under key and returns its SHA-256. The
// store verifies the MD5 the request carries; the object is then checked
// to be that MD5 and size.
func (s *Store) Upload(ctx context.Context, key, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	md, sh := md5.New(), sha256.New()
	size, err := io.Copy(io.MultiWriter(md, sh), f)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	sum := sh.Sum(nil)
	info, err := s.c.PutObject(ctx, s.bucket, key, f, size, minio.PutObjectOptions{
		ContentType: "video/mp4", SendContentMd5: true, DisableMultipart: true,
		UserMetadata: map[string]string{"sha256": hex.EncodeToString(sum)},
	})
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", key, err)
	}
	if want := hex.EncodeToString(md.Sum(nil)); (isMD5(info.ETag) && strings.Trim(info.ETag, `"`) != want) || info.Size != size {
		return nil, fmt.Errorf("%w: %s: etag %s size %d, want %s size %d", ErrCorrupt, key, info.ETag, info.Size, want, size)
	}
	st, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", key, err)
	}
	if st.Size != size {
		return nil, fmt.Errorf("%w: %s: %d bytes stored, %d sent", ErrCorrupt, key, st.Size, size)
	}
	return sum, nil
}

// Put stores data under key (small objects: photos), verified as Upload
// verifies a file.
func (s *Store) Put(ctx context.Context, key, contentType string, data []byte) error {
	sum := md5.Sum(data)
	info, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType: contentType, SendContentMd5: true, DisableMultipart: true})
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	if (isMD5(info.ETag) && strings.Trim(info.ETag, `"`) != hex.EncodeToString(sum[:])) || info.Size != int64(len(data)) {
		return fmt.Errorf("%w: %s: etag %s size %d", ErrCorrupt, key, info.ETag, info.Size)
	}
	return nil
}

// Object is a stored object being read: it seeks and reads at offsets with
// ranged requests, as http.ServeContent and the MP4 readers need.
type Object interface {
	io.ReadSeekCloser
	io.ReaderAt
}

// ErrNotFound is an object the store does not have.
var ErrNotFound = errors.New("objstore: no such object")

// Open opens key for reading (ErrNotFound when it is not there).
func (s *Store) Open(ctx context.Context, key string) (Object, int64, error) {
	obj, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("open %s: %w", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, 0, fmt.Errorf("open %s: %w", key, err)
	}
	return obj, st.Size, nil
}

// Remove deletes key (an object already gone is no error).
func (s *Store) Remove(ctx context.Context, key string) error {
	err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchKey" {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	return nil
}

// CreateBucket makes bucket at the store cfg points to (tests, and a first
// deployment's setup); an existing bucket is no error.
func CreateBucket(ctx context.Context, cfg Config) error {
	bucket, _, err := ParseURL(cfg.URL)
	if err != nil {
		return err
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("s3 endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Secure: u.Scheme == "https",
		Region: cfg.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		if code := minio.ToErrorResponse(err).Code; code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
	}
	return nil
}
