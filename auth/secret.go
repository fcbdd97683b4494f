package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"golang.org/x/crypto/argon2"
)

// TokenPrefix starts every API token, so leaked tokens are recognisable.
const TokenPrefix = "gw_"

// secretLen is the length of a session or token secret in bytes (256 bits).
const secretLen = 32

// encodedLen is its unpadded base64url length.
var encodedLen = base64.RawURLEncoding.EncodedLen(secretLen)

// newSecret returns 256 random bits as unpadded base64url.
func newSecret() string {
	b := make([]byte, secretLen)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the platform RNG never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret is how sessions and tokens are stored: SHA-256 of the secret
// (it has 256 bits of entropy, so a slow hash adds nothing).
func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

var errMalformed = errors.New("malformed credential")

// ParseSessionCookie checks that a cookie value has the shape of a session
// secret (base64url, 43 characters) before any database lookup.
func ParseSessionCookie(v string) (string, error) {
	if len(v) != encodedLen {
		return "", errMalformed
	}
	if _, err := base64.RawURLEncoding.DecodeString(v); err != nil {
		return "", errMalformed
	}
	return v, nil
}

// ParseBearer extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive).
func ParseBearer(header string) (string, error) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errMalformed
	}
	tok = strings.TrimSpace(tok)
	if len(tok) < 16 || len(tok) > 256 {
		return "", errMalformed
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c <= ' ' || c >= 0x7f {
			return "", errMalformed
		}
	}
	return tok, nil
}

// HashParams are argon2id's cost parameters.
type HashParams struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultHashParams follow OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane).
func DefaultHashParams() HashParams { return HashParams{MemoryKiB: 19 * 1024, Time: 2, Threads: 1} }

// hashSlots bounds the argon2id hashes running at once: each holds
// MemoryKiB (19 MiB by default) while it runs, so fifty sign-ins at a shift
// change would otherwise want a gigabyte.
var hashSlots = make(chan struct{}, 2)

// argon2Key is argon2.IDKey in a slot. The last hash of a burst hands the
// memory back to the operating system: Go's scavenger would take about a
// minute to, and meanwhile a relay node that checked one token carries
// twice its working set.
func argon2Key(password, salt []byte, p HashParams, n uint32) []byte {
	hashSlots <- struct{}{}
	key := argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, n)
	<-hashSlots
	if len(hashSlots) == 0 && p.MemoryKiB >= 4<<10 {
		debug.FreeOSMemory()
	}
	return key
}

// HashPassword returns the password's argon2id hash in the PHC string format.
func HashPassword(password string, p HashParams) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	key := argon2Key([]byte(password), salt, p, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// VerifyPassword reports whether password matches a hash from HashPassword,
// in constant time for the comparison.
func VerifyPassword(password, encoded string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	var p HashParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false
	}
	if p.MemoryKiB == 0 || p.MemoryKiB > 1<<18 || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2Key([]byte(password), salt, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
