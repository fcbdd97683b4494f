package auth

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/jackc/pgx/v5"

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

// DemoAccount is one of the demo users `gridwatch demo` creates.
type DemoAccount struct {
	Username, Password, DisplayName string
	Role                            Role
	GridCodes                       []string
}

// DemoIntegrationToken is the demo city's integration token, for local use.
const DemoIntegrationToken = "gw_demo-integration-token-for-local-use-only"

// SeedDemo creates the accounts that are missing and the demo integration
// token when absent.
func (s *Service) SeedDemo(ctx context.Context, accounts []DemoAccount) error {
	ctx = audit.WithActor(ctx, audit.Actor{Kind: "system", Name: "demo"})
	for _, a := range accounts {
		var exists bool
		if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)", a.Username).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		if _, err := s.CreateUser(ctx, NewUser{Username: a.Username, DisplayName: a.DisplayName, Role: a.Role, Password: a.Password, GridCodes: a.GridCodes}); err != nil {
			return fmt.Errorf("demo user %s: %w", a.Username, err)
		}
	}
	h := sha256.Sum256([]byte(DemoIntegrationToken))
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO api_tokens (name, token_hash, role, created_by, created_at)
			VALUES ('demo 12345 hotline', $1, 'integration', 'demo', $2) ON CONFLICT (token_hash) DO NOTHING`, h[:], s.now())
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return audit.Record(ctx, tx, "token.create", "token", "", map[string]any{"after": map[string]any{"name": "demo 12345 hotline", "role": RoleIntegration}})
	})
}
