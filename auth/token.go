package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
)

// API tokens: authentication, creation (the secret shown once), listing
// and revocation.

// AuthenticateToken returns the principal of an API token.
func (s *Service) AuthenticateToken(ctx context.Context, token string) (*Principal, error) {
	h := hashSecret(token)
	if s.bootstrap != nil && subtle.ConstantTimeCompare(h, s.bootstrap) == 1 {
		p := &Principal{Kind: "token", Username: "bootstrap", DisplayName: "GRIDWATCH_ADMIN_TOKEN", Role: RoleAdmin}
		p.fill()
		return p, nil
	}
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, errUnauthenticated
	}
	now := s.now()
	var (
		id       int64
		name     string
		role     Role
		lastUsed *time.Time
		grids    []geo.Ref
	)
	err := s.pool.QueryRow(ctx, `SELECT t.id, t.name, t.role, t.last_used_at, `+scopeJSON("token_grids", "token_id", "t.id")+` FROM api_tokens t
		WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)`, h, now).
		Scan(&id, &name, &role, &lastUsed, &grids)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.EUnauthenticated, "the API token is unknown, revoked or expired")
	}
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if lastUsed == nil || now.Sub(*lastUsed) > time.Minute {
		if _, err := s.pool.Exec(ctx, "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", id, now); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	}
	p := &Principal{Kind: "token", ID: id, Username: name, DisplayName: name, Role: role, Grids: grids}
	p.fill()
	return p, nil
}

// Token is an API token as listed; its secret is shown once, at creation.
type Token struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	Grids      []geo.Ref  `json:"grids" db:"-"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// NewToken describes a token to create.
type NewToken struct {
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	GridCodes []string   `json:"grid_codes"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// CreateToken creates a token and returns it with its secret, which is not
// stored and cannot be shown again.
func (s *Service) CreateToken(ctx context.Context, nt NewToken) (*Token, string, error) {
	nt.Name = strings.TrimSpace(nt.Name)
	if nt.Name == "" || utf8.RuneCountInString(nt.Name) > 100 {
		return nil, "", fieldError("name", "a token needs a name of 1 to 100 characters (what it is for, e.g. \"12345 hotline\")")
	}
	if !nt.Role.Valid() {
		return nil, "", fieldError("role", fmt.Sprintf("unknown role %q", nt.Role))
	}
	if nt.ExpiresAt != nil && !nt.ExpiresAt.After(s.now()) {
		return nil, "", fieldError("expires_at", "is in the past")
	}
	secret := TokenPrefix + newSecret()
	tok, err := s.createToken(ctx, nt, secret)
	if err != nil {
		return nil, "", err
	}
	if tok == nil { // a fresh random secret never meets a stored one
		return nil, "", errors.New("create token: the new secret is taken")
	}
	return tok, secret, nil
}

// createToken stores a token of secret (only its hash); it returns nil,
// nil when a token of that secret exists already.
func (s *Service) createToken(ctx context.Context, nt NewToken, secret string) (*Token, error) {
	var tok *Token
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		gridIDs, err := resolveGrids(ctx, tx, nt.GridCodes, nt.Role)
		if err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO api_tokens (name, token_hash, role, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_hash) DO NOTHING RETURNING id`,
			nt.Name, hashSecret(secret), nt.Role, audit.ActorFrom(ctx).Name, s.now(), nt.ExpiresAt).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		if err := addScope(ctx, tx, "token_grids", "token_id", id, gridIDs); err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		if tok, err = getToken(ctx, tx, id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "token.create", "token", strconv.FormatInt(id, 10),
			map[string]any{"after": map[string]any{"name": tok.Name, "role": tok.Role, "grids": refCodes(tok.Grids), "expires_at": tok.ExpiresAt}})
	})
	return tok, err
}

// ListTokens lists every token, newest first.
func (s *Service) ListTokens(ctx context.Context) ([]Token, error) {
	return listEach(ctx, s.pool, "list tokens", "SELECT id FROM api_tokens ORDER BY id DESC", getToken)
}

// RevokeToken revokes token id; it stops working at once.
func (s *Service) RevokeToken(ctx context.Context, id int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var name string
		var revoked *time.Time
		err := tx.QueryRow(ctx, "SELECT name, revoked_at FROM api_tokens WHERE id = $1 FOR UPDATE", id).Scan(&name, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "token %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if revoked != nil {
			return nil
		}
		if _, err := tx.Exec(ctx, "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1", id, s.now()); err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		return audit.Record(ctx, tx, "token.revoke", "token", strconv.FormatInt(id, 10), map[string]any{"before": map[string]any{"name": name}})
	})
}

func getToken(ctx context.Context, q querier, id int64) (*Token, error) {
	return getScoped(ctx, q, "token", `SELECT id, name, role, created_by, created_at, expires_at, last_used_at, revoked_at FROM api_tokens WHERE id = $1`,
		"token_grids", "token_id", id, func(t *Token) *[]geo.Ref { return &t.Grids })
}
