package auth

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

func TestBasicCacheEntries(t *testing.T) {
	var c basicCache
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	hash := sha256.Sum256([]byte("$argon2id$hash-one"))
	other := sha256.Sum256([]byte("$argon2id$hash-two"))
	id := c.id("lisi", "correct horse battery")
	if id == c.id("lisi", "correct horse batterY") || id == c.id("lisi2", "correct horse battery") || id == c.id("lis", "icorrect horse battery") {
		t.Fatal("different credentials share a cache key")
	}
	c.put(id, hash, now)
	tests := []struct {
		name string
		hash [32]byte
		at   time.Duration
		want bool
	}{
		{"same hash at once", hash, 0, true},
		{"same hash 59 s later", hash, 59 * time.Second, true},
		{"another password hash (changed password)", other, time.Second, false},
		{"same hash again after a mismatch dropped it", hash, 2 * time.Second, false},
	}
	for _, tc := range tests {
		if got := c.valid(id, tc.hash, now.Add(tc.at)); got != tc.want {
			t.Errorf("%s: valid %v, want %v", tc.name, got, tc.want)
		}
	}
	c.put(id, hash, now)
	if c.valid(id, hash, now.Add(BasicCacheTTL)) {
		t.Errorf("an entry %v old is still valid", BasicCacheTTL)
	}
	// The cache stays bounded however many credentials pass.
	for i := range basicCacheMax + 10 {
		c.put(c.id(fmt.Sprint("user", i), "pw"), hash, now)
	}
	if n := len(c.m); n > basicCacheMax {
		t.Errorf("cache holds %d entries, want at most %d", n, basicCacheMax)
	}
}

func TestTokenShaped(t *testing.T) {
	tests := []struct {
		name, password string
		want           bool
	}{
		{"a token", TokenPrefix + newSecret(), true},
		{"a password", "correct horse battery", false},
		{"a password starting like a token", "gw_correct horse battery", false},
		{"a token one character short", (TokenPrefix + newSecret())[:len(TokenPrefix)+encodedLen-1], false},
		{"the prefix alone", TokenPrefix, false},
	}
	for _, tc := range tests {
		if got := tokenShaped(tc.password); got != tc.want {
			t.Errorf("%s: tokenShaped(%q) = %v, want %v", tc.name, tc.password, got, tc.want)
		}
	}
}
