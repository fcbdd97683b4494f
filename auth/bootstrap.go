package auth

import (
	"context"
	"fmt"
	"strings"

	"gridwatch/audit"
)

// Bootstrap: the first admin of an empty database, and tokens with a
// secret known beforehand (the demo's integration token).

// EnsureAdmin creates user "admin" with a generated password when no user
// exists at all, and returns the password (to be shown once) or "".
func (s *Service) EnsureAdmin(ctx context.Context) (string, error) {
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		return "", fmt.Errorf("bootstrap admin: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	pw := newSecret()[:20]
	_, err := s.CreateUser(audit.WithActor(ctx, audit.Actor{Kind: "system", Name: "bootstrap"}),
		NewUser{Username: "admin", DisplayName: "Administrator", Role: RoleAdmin, Password: pw})
	if err != nil {
		return "", fmt.Errorf("bootstrap admin: %w", err)
	}
	return pw, nil
}

// EnsureToken creates the token nt with a secret chosen by the caller, not
// generated, unless a token of that secret exists: for tokens whose secret
// is known beforehand, such as the demo city's integration token. The
// secret must have the shape of a token (TokenPrefix first).
func (s *Service) EnsureToken(ctx context.Context, nt NewToken, secret string) error {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return fieldError("secret", "a token secret starts with "+TokenPrefix)
	}
	if !nt.Role.Valid() {
		return fieldError("role", fmt.Sprintf("unknown role %q", nt.Role))
	}
	if _, err := s.createToken(ctx, nt, secret); err != nil {
		return fmt.Errorf("token %s: %w", nt.Name, err)
	}
	return nil
}
