package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// Options configure the service.
type Options struct {
	// SessionIdle ends a session not used for this long (default 2 h).
	SessionIdle time.Duration
	// SessionMax ends any session this long after login (default 12 h: a shift).
	SessionMax time.Duration
	// BootstrapToken, when set, is accepted as an admin API token
	// (GRIDWATCH_ADMIN_TOKEN, for automation).
	BootstrapToken string
	// Hash sets the password hashing cost.
	Hash HashParams
	// Throttle sets login throttling.
	Throttle ThrottleOptions
	// Now is the clock (tests move it).
	Now    func() time.Time
	Logger *slog.Logger
}

// ThrottleOptions set when failed logins lock an account or an address.
type ThrottleOptions struct {
	AccountFailures int           // failures per account before it locks (default 5)
	AddressFailures int           // failures per client address before it locks (default 20)
	Window          time.Duration // failures older than this are forgotten (default 15 min)
	BaseLock        time.Duration // the first lock; it doubles with each failure after (default 30 s)
	MaxLock         time.Duration // the longest lock (default 15 min)
}

// Service is the accounts and access service over PostgreSQL.
type Service struct {
	pool      *pgxpool.Pool
	opts      Options
	log       *slog.Logger
	dummyHash string
	bootstrap []byte
	basic     basicCache // verified Basic credentials (basic.go)
}

// NewService returns the service.
func NewService(pool *pgxpool.Pool, opts Options) *Service {
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = 2 * time.Hour
	}
	if opts.SessionMax <= 0 {
		opts.SessionMax = 12 * time.Hour
	}
	if opts.Hash.MemoryKiB == 0 {
		opts.Hash = DefaultHashParams()
	}
	t := &opts.Throttle
	if t.AccountFailures <= 0 {
		t.AccountFailures = 5
	}
	if t.AddressFailures <= 0 {
		t.AddressFailures = 20
	}
	if t.Window <= 0 {
		t.Window = 15 * time.Minute
	}
	if t.BaseLock <= 0 {
		t.BaseLock = 30 * time.Second
	}
	if t.MaxLock <= 0 {
		t.MaxLock = 15 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{pool: pool, opts: opts, log: log}
	// Unknown users are checked against this, so a refusal takes as long
	// whether or not the account exists.
	s.dummyHash = HashPassword(newSecret(), opts.Hash)
	if opts.BootstrapToken != "" {
		s.bootstrap = hashSecret(opts.BootstrapToken)
	}
	return s
}

func (s *Service) now() time.Time { return s.opts.Now() }

var errUnauthenticated = gridwatch.Errorf(gridwatch.EUnauthenticated, "sign in first: no valid session or token")

// --- sessions ---

// Login checks a username and password and opens a session. It returns the
// principal and the cookie value. Wrong usernames and wrong passwords get
// the same answer; repeated failures lock the account and the address.
func (s *Service) Login(ctx context.Context, username, password, ip, userAgent string) (*Principal, string, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	now := s.now()
	keys := throttleKeys(username, ip)
	// The attempt is counted before the password is hashed: parallel
	// guesses cannot all pass a check made before any of them failed.
	ownLocks, err := s.attempt(ctx, keys, now)
	if err != nil {
		return nil, "", err
	}
	var (
		id       int64
		hash     string
		disabled bool
	)
	err = s.pool.QueryRow(ctx, "SELECT id, password_hash, disabled FROM users WHERE username = $1", username).Scan(&id, &hash, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		hash, id = s.dummyHash, 0
	} else if err != nil {
		return nil, "", fmt.Errorf("login: %w", err)
	}
	ok := VerifyPassword(password, hash) && id != 0 && !disabled
	if !ok {
		if err := s.recordFailure(ctx, "auth.login_failed", username, ip); err != nil {
			return nil, "", err
		}
		return nil, "", gridwatch.Errorf(gridwatch.ECredentials, "wrong username or password")
	}
	secret := newSecret()
	csrf := newSecret()
	var p *Principal
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.succeeded(ctx, tx, keys, ownLocks); err != nil {
			return err
		}
		var sid int64
		if err := tx.QueryRow(ctx, `INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent)
			VALUES ($1, $2, $3, $4, $4, $5, $6, $7) RETURNING id`,
			hashSecret(secret), id, csrf, now, now.Add(s.opts.SessionMax), ip, truncate(userAgent, 300)).Scan(&sid); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET last_login_at = $2 WHERE id = $1", id, now); err != nil {
			return err
		}
		var err error
		if p, err = s.userPrincipal(ctx, tx, id); err != nil {
			return err
		}
		p.SessionID, p.CSRFToken = sid, csrf
		actx := audit.WithActor(ctx, audit.Actor{Kind: "user", ID: id, Name: username, IP: ip, RequestID: audit.ActorFrom(ctx).RequestID})
		return audit.Record(actx, tx, "auth.login", "user", strconv.FormatInt(id, 10), map[string]any{"session": sid})
	})
	if err != nil {
		return nil, "", fmt.Errorf("login: %w", err)
	}
	return p, secret, nil
}

// throttleKeys are the login_throttle keys of an attempt as username
// from address ip: the account's and the address's.
func throttleKeys(username, ip string) []string {
	return []string{"user:" + strings.ToLower(strings.TrimSpace(username)), "ip:" + ip}
}

// attempt counts a password attempt against each key (an account, an
// address) before the password is checked, in one statement: a key whose
// count reaches its limit is locked by this attempt, and an attempt while
// any key is locked is refused (EThrottled, with the wait) and counts
// nothing. Parallel attempts queue on the keys' rows, so of N parallel
// wrong passwords exactly the limit are checked; the rest wait out the lock.
// After the check, a success calls succeeded with what attempt returned
// (the locks this attempt's own count set); a failure stays counted.
func (s *Service) attempt(ctx context.Context, keys []string, now time.Time) (ownLocks []time.Time, err error) {
	t := s.opts.Throttle
	var (
		until   *time.Time
		counted int
	)
	// locked: a lock already committed; up: the count, skipped when
	// locked, and, for a row locked by an attempt committed meanwhile,
	// skipped by the WHERE of the update (which sees the newest row).
	// Keys are taken in order, so two attempts never wait on each other
	// in a cycle.
	err = s.pool.QueryRow(ctx, `WITH locked AS (
			SELECT max(locked_until) AS until FROM login_throttle WHERE key = ANY($1) AND locked_until > $2
		), up AS (
			INSERT INTO login_throttle AS t (key, failures, first_at, locked_until)
			SELECT k, 1, $2, CASE WHEN 1 >= (CASE WHEN k LIKE 'ip:%' THEN $4::int ELSE $3::int END) THEN $2 + $6::interval END
			FROM unnest($1::text[]) AS k WHERE (SELECT until FROM locked) IS NULL ORDER BY k
			ON CONFLICT (key) DO UPDATE SET
				failures = CASE WHEN t.first_at < $2 - $5::interval THEN 1 ELSE t.failures + 1 END,
				first_at = CASE WHEN t.first_at < $2 - $5::interval THEN $2 ELSE t.first_at END,
				locked_until = CASE WHEN (CASE WHEN t.first_at < $2 - $5::interval THEN 1 ELSE t.failures + 1 END)
						>= (CASE WHEN t.key LIKE 'ip:%' THEN $4::int ELSE $3::int END)
					THEN $2 + least($7::interval, $6::interval * power(2, least(
						(CASE WHEN t.first_at < $2 - $5::interval THEN 1 ELSE t.failures + 1 END)
						- (CASE WHEN t.key LIKE 'ip:%' THEN $4::int ELSE $3::int END), 20)))
					END
			WHERE t.locked_until IS NULL OR t.locked_until <= $2
			RETURNING t.key, t.locked_until
		) SELECT (SELECT until FROM locked), (SELECT count(*) FROM up),
			(SELECT coalesce(array_agg(locked_until) FILTER (WHERE locked_until IS NOT NULL), '{}') FROM up)`,
		keys, now, t.AccountFailures, t.AddressFailures, t.Window, t.BaseLock, t.MaxLock).Scan(&until, &counted, &ownLocks)
	if err != nil {
		return nil, fmt.Errorf("login throttle: %w", err)
	}
	if until == nil && counted == len(keys) {
		return ownLocks, nil
	}
	if until == nil {
		// Locked by an attempt that committed while this one queued.
		if err := s.pool.QueryRow(ctx, "SELECT max(locked_until) FROM login_throttle WHERE key = ANY($1)", keys).Scan(&until); err != nil {
			return nil, fmt.Errorf("login throttle: %w", err)
		}
	}
	secs := 1
	if until != nil {
		secs = max(int(math.Ceil(until.Sub(now).Seconds())), 1)
	}
	return nil, gridwatch.Errorf(gridwatch.EThrottled, "too many failed sign-ins; try again in %d s", secs).
		WithDetails(map[string]any{"retry_after_seconds": secs})
}

// succeeded takes back what attempt counted for a right password, in tx:
// the account starts afresh; the address loses this one attempt, and a
// lock this attempt's own count set on it (one of ownLocks: no attempt
// after it was counted) is lifted.
func (s *Service) succeeded(ctx context.Context, tx pgx.Tx, keys []string, ownLocks []time.Time) error {
	if _, err := tx.Exec(ctx, "DELETE FROM login_throttle WHERE key = $1", keys[0]); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE login_throttle SET failures = greatest(failures - 1, 0),
			locked_until = CASE WHEN locked_until = ANY($2) THEN NULL ELSE locked_until END
		WHERE key = $1`, keys[1], ownLocks); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	return nil
}

// recordFailure audits a failed attempt (already counted by attempt).
func (s *Service) recordFailure(ctx context.Context, action, username, ip string) error {
	actx := audit.WithActor(ctx, audit.Actor{Kind: "anonymous", Name: username, IP: ip, RequestID: audit.ActorFrom(ctx).RequestID})
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return audit.Record(actx, tx, action, "user", "", map[string]any{"username": truncate(username, 64)})
	})
}

// AuthenticateSession returns the principal of a session cookie value, and
// keeps the session alive.
func (s *Service) AuthenticateSession(ctx context.Context, cookie string) (*Principal, error) {
	secret, err := ParseSessionCookie(cookie)
	if err != nil {
		return nil, errUnauthenticated
	}
	now := s.now()
	var (
		sid      int64
		lastSeen time.Time
		p        = &Principal{Kind: "user"}
	)
	// One round trip on every request: the session, its user and the scope.
	err = s.pool.QueryRow(ctx, `SELECT s.id, s.csrf_token, s.last_seen_at, u.id, u.username, u.display_name, u.role, `+scopeJSON("user_grids", "user_id", "u.id")+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND NOT u.disabled`,
		hashSecret(secret), now, now.Add(-s.opts.SessionIdle)).Scan(&sid, &p.CSRFToken, &lastSeen, &p.ID, &p.Username, &p.DisplayName, &p.Role, &p.Grids)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.EUnauthenticated, "your session has ended; sign in again")
	}
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	// Touch at most once a minute: one write per user per minute, not per request.
	if now.Sub(lastSeen) > time.Minute {
		if _, err := s.pool.Exec(ctx, "UPDATE sessions SET last_seen_at = $2 WHERE id = $1", sid, now); err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
	}
	p.SessionID = sid
	p.fill()
	return p, nil
}

// scopeJSON is a subquery giving the scope grids of owner (a column
// expression) from table as JSON refs, NULL when unscoped. table and column
// are constants of this file, never input.
func scopeJSON(table, column, owner string) string {
	return `(SELECT json_agg(json_build_object('id', g.id, 'code', g.code, 'name', g.name, 'level', g.level) ORDER BY g.code)
		FROM ` + table + ` sg JOIN grids g ON g.id = sg.grid_id WHERE sg.` + column + ` = ` + owner + `)`
}

// CheckCSRF reports whether token is the session's CSRF token.
func CheckCSRF(p *Principal, token string) bool {
	return p != nil && p.CSRFToken != "" && subtle.ConstantTimeCompare([]byte(p.CSRFToken), []byte(token)) == 1
}

// Logout ends p's session.
func (s *Service) Logout(ctx context.Context, p *Principal) error {
	if p == nil || p.SessionID == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE id = $1", p.SessionID); err != nil {
			return fmt.Errorf("logout: %w", err)
		}
		return audit.Record(ctx, tx, "auth.logout", "user", strconv.FormatInt(p.ID, 10), nil)
	})
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (s *Service) userPrincipal(ctx context.Context, q querier, id int64) (*Principal, error) {
	u, err := getUser(ctx, q, id)
	if err != nil {
		return nil, err
	}
	p := &Principal{Kind: "user", ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role, Grids: u.Grids}
	p.fill()
	return p, nil
}

// --- tokens ---

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
	Grids      []geo.Ref  `json:"grids"`
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
	var tok *Token
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		gridIDs, err := resolveGrids(ctx, tx, nt.GridCodes, nt.Role)
		if err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO api_tokens (name, token_hash, role, created_by, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			nt.Name, hashSecret(secret), nt.Role, audit.ActorFrom(ctx).Name, s.now(), nt.ExpiresAt).Scan(&id); err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO token_grids (token_id, grid_id) SELECT $1, unnest($2::bigint[])", id, gridIDs); err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		if tok, err = getToken(ctx, tx, id); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "token.create", "token", strconv.FormatInt(id, 10),
			map[string]any{"after": map[string]any{"name": tok.Name, "role": tok.Role, "grids": refCodes(tok.Grids), "expires_at": tok.ExpiresAt}})
	})
	if err != nil {
		return nil, "", err
	}
	return tok, secret, nil
}

// ListTokens lists every token, newest first.
func (s *Service) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.pool.Query(ctx, "SELECT id FROM api_tokens ORDER BY id DESC")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]Token, 0, len(ids))
	for _, id := range ids {
		t, err := getToken(ctx, s.pool, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, nil
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
	var t Token
	err := q.QueryRow(ctx, `SELECT id, name, role, created_by, created_at, expires_at, last_used_at, revoked_at FROM api_tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.Name, &t.Role, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "token %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("token %d: %w", id, err)
	}
	if t.Grids, err = scopeOf(ctx, q, "token_grids", "token_id", id); err != nil {
		return nil, err
	}
	return &t, nil
}

// --- users ---

// User is an account as shown to admins; the password hash never leaves.
type User struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	Role        Role       `json:"role"`
	Grids       []geo.Ref  `json:"grids"`
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
		if _, err := tx.Exec(ctx, "INSERT INTO user_grids (user_id, grid_id) SELECT $1, unnest($2::bigint[])", id, gridIDs); err != nil {
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
			if _, err := tx.Exec(ctx, "INSERT INTO user_grids (user_id, grid_id) SELECT $1, unnest($2::bigint[])", id, gridIDs); err != nil {
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
	rows, err := s.pool.Query(ctx, "SELECT id FROM users ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		u, err := getUser(ctx, s.pool, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}

func getUser(ctx context.Context, q querier, id int64) (*User, error) {
	var u User
	err := q.QueryRow(ctx, `SELECT id, username, display_name, role, disabled, created_at, updated_at, last_login_at FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.Username, &u.DisplayName, &u.Role, &u.Disabled, &u.CreatedAt, &u.UpdatedAt, &u.LastLoginAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "user %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("user %d: %w", id, err)
	}
	if u.Grids, err = scopeOf(ctx, q, "user_grids", "user_id", id); err != nil {
		return nil, err
	}
	return &u, nil
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

// --- bootstrap ---

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
