package gridwatch

// ValidKey reports whether k is a client-made key: 8 to 64 letters, digits,
// _ or - (an Idempotency-Key, a resumable upload's name), as a phone's
// queue makes them.
func ValidKey(k string) bool {
	if len(k) < 8 || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// CheckIdempotencyKey checks an Idempotency-Key header's value ("" is none).
func CheckIdempotencyKey(key string) error {
	if key != "" && !ValidKey(key) {
		return Errorf(EInvalid, "the Idempotency-Key header is not 8 to 64 letters, digits, _ or -").
			WithDetails(map[string]any{"header": "Idempotency-Key"})
	}
	return nil
}
