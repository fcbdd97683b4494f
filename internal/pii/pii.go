// Package pii seals, finds and masks residents' personal data (issue 19):
// ID numbers, phones and exact birth dates are kept in the database only
// sealed (AES-256-GCM) under a key that is not in the database, found by
// exact value through a keyed hash (HMAC-SHA256), and shown masked.
//
// The keys live in a key file (or in GRIDWATCH_PII_KEYS, ParseEntries),
// one per line, "<id> <base64 of 32 random bytes>". The highest
// id seals; every key opens and finds, so a key can be added (rotation)
// while rows sealed under the older ones are re-sealed at leisure, and an
// old key is pruned once no row uses it. Each key's AES and HMAC keys are
// derived from it with HKDF, apart, so neither use weakens the other.
package pii

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// KeySize is the size of a key: 32 random bytes.
const KeySize = 32

// version is the first byte of a sealed value: its layout, so a later one
// can be told apart.
const version = 1

// headerSize is a sealed value's version, key id and nonce.
const headerSize = 1 + 4 + 12

// key is one key of a ring, with what it is derived into.
type key struct {
	id     int
	secret []byte
	aead   cipher.AEAD
	// finds are HMACs keyed for finding, reused (Reset) rather than keyed
	// again for each of a million rows.
	finds sync.Pool
	// check tells this key from another of the same id (Fingerprints).
	check []byte
}

// Keyring holds the keys personal data are sealed with. It is safe for
// concurrent use; it never changes once made (Add and Without return new
// rings).
type Keyring struct {
	keys []*key // by id, ascending; the last one seals
}

// New returns a ring of the given keys (id → 32 bytes). Ids are 1 or more.
func New(keys map[int][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("pii: no keys")
	}
	k := &Keyring{}
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		kk, err := derive(id, keys[id])
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, kk)
	}
	return k, nil
}

// derive makes key id's AES-GCM and HMAC keys from its secret.
func derive(id int, secret []byte) (*key, error) {
	if id < 1 || id > 1<<31-1 {
		return nil, fmt.Errorf("pii: key id %d is not between 1 and %d", id, 1<<31-1)
	}
	if len(secret) != KeySize {
		return nil, fmt.Errorf("pii: key %d is %d bytes, not %d", id, len(secret), KeySize)
	}
	sealKey, err := hkdf.Key(sha256.New, secret, nil, "gridwatch pii seal v1", 32)
	if err != nil {
		return nil, err
	}
	findKey, err := hkdf.Key(sha256.New, secret, nil, "gridwatch pii find v1", 32)
	if err != nil {
		return nil, err
	}
	check, err := hkdf.Key(sha256.New, secret, nil, "gridwatch pii check v1", 16)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &key{id: id, secret: slices.Clone(secret), aead: aead, check: check}
	k.finds.New = func() any { return hmac.New(sha256.New, findKey) }
	return k, nil
}

// Parse reads a key file's text: one key a line, "<id> <base64>"; blank
// lines and lines starting with # are skipped.
func Parse(text []byte) (*Keyring, error) {
	keys := map[int][]byte{}
	for n, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("pii: key entry %d: want \"<id> <base64 of %d bytes>\"", n+1, KeySize)
		}
		id, err := strconv.Atoi(f[0])
		if err != nil || id < 1 {
			return nil, fmt.Errorf("pii: key entry %d: the id %q is not a whole number of 1 or more", n+1, f[0])
		}
		secret, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil || len(secret) != KeySize {
			// The key itself is never repeated in a message.
			return nil, fmt.Errorf("pii: key entry %d (id %d): not the base64 of %d bytes", n+1, id, KeySize)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("pii: key entry %d: id %d appears twice", n+1, id)
		}
		keys[id] = secret
	}
	if len(keys) == 0 {
		return nil, errors.New("pii: no keys (want lines \"<id> <base64 of 32 bytes>\")")
	}
	return New(keys)
}

// Load reads the key file at path. A file others may read is refused: the
// keys are what keeps the data sealed.
func Load(path string) (*Keyring, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("pii: key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("pii: key file %s is readable by others (mode %04o): chmod 600 it", path, st.Mode().Perm())
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pii: key file: %w", err)
	}
	k, err := Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return k, nil
}

// LoadOrCreate reads the key file at path, or makes it (mode 0600, its
// directory 0700 when missing) with one fresh key when there is none.
func LoadOrCreate(path string) (*Keyring, error) {
	k, err := Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = Generate(nil); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("pii: key file: %w", err)
	}
	// O_EXCL: two processes starting at once must not each write a key
	// and seal under different ones.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return Load(path)
	}
	if err != nil {
		return nil, fmt.Errorf("pii: key file: %w", err)
	}
	_, err = f.Write(k.Marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("pii: key file: %w", err)
	}
	return k, nil
}

// ParseEntries reads keys given in one line (an environment variable,
// GRIDWATCH_PII_KEYS): the key file's entries separated by ";".
func ParseEntries(v string) (*Keyring, error) {
	return Parse([]byte(strings.ReplaceAll(v, ";", "\n")))
}

// Generate returns k with a fresh random key added as the one that seals
// (a new ring of one key when k is nil).
func Generate(k *Keyring) (*Keyring, error) {
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	keys := map[int][]byte{}
	next := 1
	if k != nil {
		for _, kk := range k.keys {
			keys[kk.id] = kk.secret
		}
		next = k.Current() + 1
	}
	keys[next] = secret
	return New(keys)
}

// Without returns k without key id. The key that seals cannot be removed.
func (k *Keyring) Without(id int) (*Keyring, error) {
	if id == k.Current() {
		return nil, fmt.Errorf("pii: key %d seals new data; add a newer key (rotate) before removing it", id)
	}
	keys := map[int][]byte{}
	found := false
	for _, kk := range k.keys {
		if kk.id == id {
			found = true
			continue
		}
		keys[kk.id] = kk.secret
	}
	if !found {
		return nil, fmt.Errorf("pii: no key %d", id)
	}
	return New(keys)
}

// Marshal returns the ring as a key file's text.
func (k *Keyring) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# gridwatch personal-data keys: \"<id> <base64>\"; the highest id seals, all open.\n")
	b.WriteString("# Keep this file apart from database backups: with it, sealed data can be read.\n")
	for _, kk := range k.keys {
		fmt.Fprintf(&b, "%d %s\n", kk.id, base64.StdEncoding.EncodeToString(kk.secret))
	}
	return b.Bytes()
}

// WriteFile replaces the key file at path with k, atomically (a temporary
// file renamed over it), mode 0600.
func WriteFile(path string, k *Keyring) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pii-keys-*")
	if err != nil {
		return fmt.Errorf("pii: key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("pii: key file: %w", err)
	}
	_, err = tmp.Write(k.Marshal())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("pii: key file: %w", err)
	}
	return nil
}

// Fingerprints are the ring's keys' check values (id → 16 bytes), derived
// apart from what seals and finds, so they may be kept in the database:
// nodes that each made their own key file, or one started with a key file
// older than a rotation, are told apart from the database's keys before
// they seal anything under the wrong one.
func (k *Keyring) Fingerprints() map[int][]byte {
	out := make(map[int][]byte, len(k.keys))
	for _, kk := range k.keys {
		out[kk.id] = slices.Clone(kk.check)
	}
	return out
}

// Current is the id of the key that seals.
func (k *Keyring) Current() int { return k.keys[len(k.keys)-1].id }

// IDs are the ring's key ids, ascending.
func (k *Keyring) IDs() []int {
	ids := make([]int, len(k.keys))
	for i, kk := range k.keys {
		ids[i] = kk.id
	}
	return ids
}

func (k *Keyring) key(id int) *key {
	for _, kk := range k.keys {
		if kk.id == id {
			return kk
		}
	}
	return nil
}

// Seal encrypts value under the current key, bound to field (the AAD: a
// value sealed as one field does not open as another). The result is
// version, key id (4 bytes, big-endian), nonce and ciphertext with its tag.
func (k *Keyring) Seal(field string, value []byte) ([]byte, error) {
	kk := k.keys[len(k.keys)-1]
	out := make([]byte, headerSize, headerSize+len(value)+kk.aead.Overhead())
	out[0] = version
	binary.BigEndian.PutUint32(out[1:5], uint32(kk.id))
	if _, err := rand.Read(out[5:headerSize]); err != nil {
		return nil, err
	}
	return kk.aead.Seal(out, out[5:headerSize], value, []byte(field)), nil
}

// ErrNoKey is the error of Open for a value sealed under a key the ring
// does not hold (pruned too early, or another installation's).
var ErrNoKey = errors.New("pii: sealed under a key this ring does not hold")

// KeyID returns the id of the key sealed was sealed under.
func KeyID(sealed []byte) (int, error) {
	if len(sealed) < headerSize || sealed[0] != version {
		return 0, errors.New("pii: not a sealed value")
	}
	return int(binary.BigEndian.Uint32(sealed[1:5])), nil
}

// Open decrypts sealed, which must have been sealed as field.
func (k *Keyring) Open(field string, sealed []byte) ([]byte, error) {
	id, err := KeyID(sealed)
	if err != nil {
		return nil, err
	}
	kk := k.key(id)
	if kk == nil {
		return nil, fmt.Errorf("%w (key %d)", ErrNoKey, id)
	}
	out, err := kk.aead.Open(nil, sealed[5:headerSize], sealed[headerSize:], []byte(field))
	if err != nil {
		return nil, fmt.Errorf("pii: sealed value of key %d does not open as %s (altered, or another field's)", id, field)
	}
	return out, nil
}

// Hash is the current key's keyed hash of field's value (normalised by the
// caller): what a row stores to be found by exact value.
func (k *Keyring) Hash(field, value string) []byte {
	return k.keys[len(k.keys)-1].hash(field, value)
}

// Find is every key's hash of field's value, the current key's first: a
// row is found whichever key it was stored under, during a rotation too.
func (k *Keyring) Find(field, value string) [][]byte {
	out := make([][]byte, 0, len(k.keys))
	for i := len(k.keys) - 1; i >= 0; i-- {
		out = append(out, k.keys[i].hash(field, value))
	}
	return out
}

func (kk *key) hash(field, value string) []byte {
	m := kk.finds.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(field))
	m.Write([]byte{0})
	m.Write([]byte(value))
	out := m.Sum(nil)
	kk.finds.Put(m)
	return out
}
