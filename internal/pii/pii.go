// Package pii seals, finds and masks residents' personal data (issue 19).
package pii

// Keyring holds the keys personal data are sealed with.
type Keyring struct{}
