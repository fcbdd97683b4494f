package gridwatch

import (
	"strings"
	"testing"
)

func TestValidKey(t *testing.T) {
	for k, want := range map[string]bool{
		"abcd1234": true, "report-0001_X": true, strings.Repeat("a", 64): true,
		"": false, "short": false, strings.Repeat("a", 65): false, "bad key!": false, "ключ-00001": false, "a/b/c/d/e": false,
	} {
		if got := ValidKey(k); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", k, got, want)
		}
	}
	if CheckIdempotencyKey("") != nil || CheckIdempotencyKey("abcd1234") != nil || ErrorCode(CheckIdempotencyKey("bad key!")) != EInvalid {
		t.Error("CheckIdempotencyKey: want nil for none and a good key, invalid for a bad one")
	}
}
