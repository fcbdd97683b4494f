package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
)

// Basic authentication (RFC 7617) is for GIS clients that have nothing
// else: QGIS 3.22 LTR offers Basic, certificates and ESRI tokens but no
// custom header. Such a client sends the credential on every request, and
// a password costs an argon2id hash to check, so a verified credential is
// remembered for BasicCacheTTL (see basicCache for why that is safe).

// BasicCacheTTL is how long a verified Basic user+password is taken on
// trust of a cheap re-check instead of a new argon2id verification.
const BasicCacheTTL = 60 * time.Second

// basicCacheMax bounds the cache; when full, expired entries go, then all.
const basicCacheMax = 4096

// basicCache remembers user+password pairs that verified recently.
//
// Why it is safe: an entry is keyed by an HMAC, under a key made at start
// and never stored, of the name and the password, so the process holds no
// password nor anything to brute-force offline. An entry only counts while
// the account, read from the database on every request, is enabled and
// still has the very password hash that verified (kept as its SHA-256): a
// new password, a reset or a disabled account ends it at once, on every
// node, since the check reads PostgreSQL rather than an in-process signal.
// Role and scope come from that same read, so changes apply immediately.
type basicCache struct {
	once sync.Once
	key  []byte
	mu   sync.Mutex
	m    map[[32]byte]basicEntry
}

type basicEntry struct {
	hash    [32]byte // SHA-256 of the password hash that verified
	expires time.Time
}

func (b *basicCache) init() {
	b.once.Do(func() {
		b.key = make([]byte, 32)
		if _, err := rand.Read(b.key); err != nil {
			panic(fmt.Sprintf("crypto/rand: %v", err)) // the platform RNG never fails on Linux
		}
		b.m = map[[32]byte]basicEntry{}
	})
}

func (b *basicCache) id(username, password string) [32]byte {
	b.init()
	m := hmac.New(sha256.New, b.key)
	m.Write([]byte(username))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// valid reports whether id verified against the password hash whose
// SHA-256 is hash, less than BasicCacheTTL ago.
func (b *basicCache) valid(id, hash [32]byte, now time.Time) bool {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[id]
	if !ok {
		return false
	}
	if !now.Before(e.expires) || subtle.ConstantTimeCompare(e.hash[:], hash[:]) != 1 {
		delete(b.m, id)
		return false
	}
	return true
}

func (b *basicCache) put(id, hash [32]byte, now time.Time) {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) >= basicCacheMax {
		for k, e := range b.m {
			if !now.Before(e.expires) {
				delete(b.m, k)
			}
		}
		if len(b.m) >= basicCacheMax {
			clear(b.m)
		}
	}
	b.m[id] = basicEntry{hash: hash, expires: now.Add(BasicCacheTTL)}
}

// tokenShaped reports whether a Basic password is an API token: the prefix
// and length of one, which no chosen password has by accident.
func tokenShaped(password string) bool {
	return strings.HasPrefix(password, TokenPrefix) && len(password) == len(TokenPrefix)+encodedLen
}

// AuthenticateBasic returns the principal of an HTTP Basic credential from
// address ip: an API token as the password (any name), or a user's name
// and password. Password guesses count towards the same throttle and
// lockout as sign-ins, and are refused with the same answer.
func (s *Service) AuthenticateBasic(ctx context.Context, username, password, ip string) (*Principal, error) {
	if tokenShaped(password) || (s.bootstrap != nil && subtle.ConstantTimeCompare(hashSecret(password), s.bootstrap) == 1) {
		// Token guesses are not throttled: 256 random bits cannot be guessed.
		return s.AuthenticateToken(ctx, password)
	}
	username = strings.ToLower(strings.TrimSpace(username))
	now := s.now()
	var (
		p        = &Principal{Kind: "user"}
		hash     string
		disabled bool
	)
	err := s.pool.QueryRow(ctx, `SELECT u.id, u.username, u.display_name, u.role, u.disabled, u.password_hash, `+scopeJSON("user_grids", "user_id", "u.id")+`
		FROM users u WHERE u.username = $1`, username).Scan(&p.ID, &p.Username, &p.DisplayName, &p.Role, &disabled, &hash, &p.Grids)
	found := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		hash = s.dummyHash
	} else if err != nil {
		return nil, fmt.Errorf("basic auth: %w", err)
	}
	id := s.basic.id(username, password)
	hashSum := sha256.Sum256([]byte(hash))
	if found && !disabled && s.basic.valid(id, hashSum, now) {
		// A credential that verified moments ago is not re-checked against
		// the lock: a lock someone else's guesses caused must not cut off
		// a working GIS client, and guesses never reach this branch.
		p.fill()
		return p, nil
	}
	keys := throttleKeys(username, ip)
	// Counted before the hash, as a sign-in is: parallel guesses cannot
	// all pass a check made before any of them failed.
	ownLocks, err := s.attempt(ctx, keys, now)
	if err != nil {
		return nil, err
	}
	if ok := VerifyPassword(password, hash) && found && !disabled; !ok {
		if err := s.recordFailure(ctx, "auth.login_failed", username, ip); err != nil {
			return nil, err
		}
		return nil, gridwatch.Errorf(gridwatch.ECredentials, "wrong username or password")
	}
	// As a sign-in does, a success forgives the account's earlier failures.
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.succeeded(ctx, tx, keys, ownLocks) }); err != nil {
		return nil, fmt.Errorf("basic auth: %w", err)
	}
	s.basic.put(id, hashSum, now)
	p.fill()
	return p, nil
}
