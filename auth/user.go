package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// Accounts: creation, changes (the last admin is kept), passwords, and
// the grid scopes of users and tokens.

// User is an account as shown to admins; the password hash never leaves.
type User struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	Role        Role       `json:"role"`
	Grids       []geo.Ref  `json:"grids" db:"-"`
	Disabled    bool       `json:"disabled"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

// NewUser describes an account to create.
type NewUser struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"display_name"`
	Role        Role     `json:"role"`
	Password    string   `json:"password"`
	GridCodes   []string `json:"grid_codes"`
}

// UserPatch changes an account; nil fields stay as they are.
type UserPatch struct {
	DisplayName *string   `json:"display_name"`
	Role        *Role     `json:"role"`
	Password    *string   `json:"password"`
	GridCodes   *[]string `json:"grid_codes"`
	Disabled    *bool     `json:"disabled"`
}

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,62}$`)

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 10

func checkPassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen {
		return fieldError("password", fmt.Sprintf("must be at least %d characters", MinPasswordLen))
	}
	if len(pw) > 1024 {
		return fieldError("password", "is longer than 1024 bytes")
	}
	return nil
}

func fieldError(field, msg string) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "%s %s", field, msg).WithDetails(map[string]any{"field": field})
}

// CreateUser creates an account.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	nu.Username = strings.ToLower(strings.TrimSpace(nu.Username))
	if !usernamePattern.MatchString(nu.Username) {
		return nil, fieldError("username", "must be 2 to 63 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if !nu.Role.Valid() {
		return nil, fieldError("role", fmt.Sprintf("unknown role %q", nu.Role))
	}
	if err := checkPassword(nu.Password); err != nil {
		return nil, err
	}
	hash := HashPassword(nu.Password, s.opts.Hash)
	var u *User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		gridIDs, err := resolveGrids(ctx, tx, nu.GridCodes, nu.Role)
		if err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO users (username, display_name, role, password_hash, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) RETURNING id`, nu.Username, strings.TrimSpace(nu.DisplayName), nu.Role, hash, s.now()).Scan(&id)
		if v, _ := database.Violated(err); v == database.Unique {
			return gridwatch.Errorf(gridwatch.EConflict, "user %s already exists", nu.Username).WithDetails(map[string]any{"field": "username"})
		}
		if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		if err := addScope(ctx, tx, "user_grids", "user_id", id, gridIDs); err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		if u, err = getUser(ctx, tx, id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "user.create", "user", strconv.FormatInt(id, 10), map[string]any{"after": userSummary(u)})
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// UpdateUser changes account id. The last enabled admin cannot be demoted
// or disabled, so the system always has one.
func (s *Service) UpdateUser(ctx context.Context, id int64, up UserPatch) (*User, error) {
	var hash string
	if up.Password != nil {
		if err := checkPassword(*up.Password); err != nil {
			return nil, err
		}
		hash = HashPassword(*up.Password, s.opts.Hash)
	}
	if up.Role != nil && !up.Role.Valid() {
		return nil, fieldError("role", fmt.Sprintf("unknown role %q", *up.Role))
	}
	var u *User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Serialise account changes so the last-admin check cannot race.
		if _, err := tx.Exec(ctx, "LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		before, err := getUser(ctx, tx, id)
		if err != nil {
			return err
		}
		role := before.Role
		if up.Role != nil {
			role = *up.Role
		}
		disabled := before.Disabled
		if up.Disabled != nil {
			disabled = *up.Disabled
		}
		if before.Role == RoleAdmin && !before.Disabled && (role != RoleAdmin || disabled) {
			var admins int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled").Scan(&admins); err != nil {
				return err
			}
			if admins <= 1 {
				return gridwatch.Errorf(gridwatch.EConflict, "%s is the last enabled admin; make another admin first", before.Username)
			}
		}
		name := before.DisplayName
		if up.DisplayName != nil {
			name = strings.TrimSpace(*up.DisplayName)
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET display_name = $2, role = $3, disabled = $4, updated_at = $5,
			password_hash = CASE WHEN $6 = '' THEN password_hash ELSE $6 END WHERE id = $1`,
			id, name, role, disabled, s.now(), hash); err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		if up.GridCodes != nil || up.Role != nil {
			codes := refCodes(before.Grids)
			if up.GridCodes != nil {
				codes = *up.GridCodes
			}
			gridIDs, err := resolveGrids(ctx, tx, codes, role)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DELETE FROM user_grids WHERE user_id = $1", id); err != nil {
				return err
			}
			if err := addScope(ctx, tx, "user_grids", "user_id", id, gridIDs); err != nil {
				return err
			}
		}
		// Disabling or a new password ends the account's sessions.
		if disabled || hash != "" {
			if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1", id); err != nil {
				return err
			}
		}
		if u, err = getUser(ctx, tx, id); err != nil {
			return err
		}
		summary := map[string]any{"before": userSummary(before), "after": userSummary(u)}
		if hash != "" {
			summary["password_changed"] = true
		}
		return audit.Record(ctx, tx, "user.update", "user", strconv.FormatInt(id, 10), summary)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// ChangePassword lets p change their own password, given the current one,
// from address ip. Guesses of the current password are throttled as
// sign-ins are, on the same counters: the account's and the address's.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next, ip string) error {
	if p == nil || p.Kind != "user" {
		return gridwatch.Errorf(gridwatch.EForbidden, "only users have passwords")
	}
	// A new password that would be refused costs no attempt.
	if err := checkPassword(next); err != nil {
		return err
	}
	keys := throttleKeys(p.Username, ip)
	ownLocks, err := s.attempt(ctx, keys, s.now())
	if err != nil {
		return err
	}
	var hash string
	if err := s.pool.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1", p.ID).Scan(&hash); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if !VerifyPassword(current, hash) {
		if err := s.recordFailure(ctx, "user.password_failed", p.Username, ip); err != nil {
			return err
		}
		return gridwatch.Errorf(gridwatch.ECredentials, "the current password is wrong").WithDetails(map[string]any{"field": "current_password"})
	}
	newHash := HashPassword(next, s.opts.Hash)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1", p.ID, newHash, s.now()); err != nil {
			return err
		}
		if err := s.succeeded(ctx, tx, keys, ownLocks); err != nil {
			return err
		}
		// Other sessions end; this one stays.
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1 AND id <> $2", p.ID, p.SessionID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "user.password", "user", strconv.FormatInt(p.ID, 10), map[string]any{"password_changed": true})
	})
}

// GetUser returns account id.
func (s *Service) GetUser(ctx context.Context, id int64) (*User, error) {
	return getUser(ctx, s.pool, id)
}

// ListUsers lists every account by username.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	return listEach(ctx, s.pool, "list users", "SELECT id FROM users ORDER BY username", getUser)
}

// listEach lists the ids query returns, each read with get: accounts and
// tokens are listed as they are shown one by one, scopes included.
func listEach[T any](ctx context.Context, q querier, what, query string, get func(context.Context, querier, int64) (*T, error)) ([]T, error) {
	rows, err := q.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		v, err := get(ctx, q, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

func getUser(ctx context.Context, q querier, id int64) (*User, error) {
	return getScoped(ctx, q, "user", `SELECT id, username, display_name, role, disabled, created_at, updated_at, last_login_at FROM users WHERE id = $1`,
		"user_grids", "user_id", id, func(u *User) *[]geo.Ref { return &u.Grids })
}

// getScoped reads the account or token id (kind names it in errors): its
// row by query into T's fields by column name, then its grid scope from
// scopeTable (see scopeOf) into the field grids points at.
func getScoped[T any](ctx context.Context, q querier, kind, query, scopeTable, scopeColumn string, id int64, grids func(*T) *[]geo.Ref) (*T, error) {
	rows, err := q.Query(ctx, query, id)
	if err != nil {
		return nil, fmt.Errorf("%s %d: %w", kind, id, err)
	}
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByName[T])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "%s %d not found", kind, id)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %d: %w", kind, id, err)
	}
	if *grids(v), err = scopeOf(ctx, q, scopeTable, scopeColumn, id); err != nil {
		return nil, err
	}
	return v, nil
}

// addScope adds the grids gridIDs to the scope of a user or token, in
// table (user_grids or token_grids) by column; both are constants of this
// package, never user input.
func addScope(ctx context.Context, tx pgx.Tx, table, column string, id int64, gridIDs []int64) error {
	_, err := tx.Exec(ctx, "INSERT INTO "+table+" ("+column+", grid_id) SELECT $1, unnest($2::bigint[])", id, gridIDs)
	return err
}

// scopeOf returns the scope roots of a user or token; nil when unscoped.
// table and column are constants of this file, never user input.
func scopeOf(ctx context.Context, q querier, table, column string, id int64) ([]geo.Ref, error) {
	rows, err := q.Query(ctx, `SELECT g.id, g.code, g.name, g.level FROM `+table+` s JOIN grids g ON g.id = s.grid_id
		WHERE s.`+column+` = $1 ORDER BY g.code`, id)
	if err != nil {
		return nil, fmt.Errorf("grid scope: %w", err)
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (geo.Ref, error) {
		var r geo.Ref
		err := row.Scan(&r.ID, &r.Code, &r.Name, &r.Level)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("grid scope: %w", err)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	return refs, nil
}

// resolveGrids turns grid codes into ids; a grid leader needs at least one.
func resolveGrids(ctx context.Context, tx pgx.Tx, codes []string, role Role) ([]int64, error) {
	clean := make([]string, 0, len(codes))
	for _, c := range codes {
		if c = strings.TrimSpace(c); c != "" {
			clean = append(clean, c)
		}
	}
	if role == RoleGridLeader && len(clean) == 0 {
		return nil, fieldError("grid_codes", "a grid leader needs the codes of the grids they lead")
	}
	if len(clean) == 0 {
		return []int64{}, nil
	}
	rows, err := tx.Query(ctx, `SELECT c.code, g.id FROM unnest($1::text[]) AS c(code) LEFT JOIN grids g ON g.code = c.code`, clean)
	if err != nil {
		return nil, fmt.Errorf("grid scope: %w", err)
	}
	defer rows.Close()
	var ids []int64
	var unknown []string
	for rows.Next() {
		var code string
		var id *int64
		if err := rows.Scan(&code, &id); err != nil {
			return nil, err
		}
		if id == nil {
			unknown = append(unknown, code)
			continue
		}
		ids = append(ids, *id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		return nil, fieldError("grid_codes", "has unknown grid codes: "+strings.Join(unknown, ", "))
	}
	return ids, nil
}

func refCodes(refs []geo.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Code
	}
	return out
}

func userSummary(u *User) map[string]any {
	return map[string]any{"username": u.Username, "display_name": u.DisplayName, "role": u.Role, "disabled": u.Disabled, "grids": refCodes(u.Grids)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
