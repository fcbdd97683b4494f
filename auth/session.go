package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"gridwatch"
	"gridwatch/audit"
)

// Sessions: sign-in with login throttling, the session cookie, CSRF and
// sign-out; the principal a session or token stands for.

// SessionInfo describes a session: the signed-in user's own (in /me) or,
// for an admin, each of a user's.
type SessionInfo struct {
	ID int64 `json:"id"`
	// Device names the phone of a device session ("" for a dashboard
	// sign-in, which ends with the shift).
	Device     string    `json:"device"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// IdleUntil is when the session ends if it is not used meanwhile.
	IdleUntil time.Time `json:"idle_until"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

// DeviceSessionsFor reports whether accounts of role r may open device
// sessions (months long, on a phone): not those that manage users or API
// tokens, whose stolen cookie would be worth the most.
func DeviceSessionsFor(r Role) bool {
	return !Allowed(r, UsersManage) && !Allowed(r, TokensManage)
}

// MaxDeviceName is the longest device name a sign-in may give.
const MaxDeviceName = 100

// Login checks a username and password and opens a session. It returns the
// principal and the cookie value. Wrong usernames and wrong passwords get
// the same answer; repeated failures lock the account and the address.
// A device name (the field app's sign-in on a phone) opens a device
// session, with the longer device limits.
func (s *Service) Login(ctx context.Context, username, password, device, ip, userAgent string) (*Principal, string, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	device = strings.TrimSpace(device)
	if n := len([]rune(device)); n > MaxDeviceName || strings.ContainsFunc(device, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, "", gridwatch.Errorf(gridwatch.EInvalid, "device: a device name is at most %d characters, without control characters", MaxDeviceName).
			WithDetails(map[string]any{"field": "device"})
	}
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
		role     Role
	)
	err = s.pool.QueryRow(ctx, "SELECT id, password_hash, disabled, role FROM users WHERE username = $1", username).Scan(&id, &hash, &disabled, &role)
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
	if device != "" && !DeviceSessionsFor(role) {
		// The right password, for an account whose sessions must stay
		// short: the attempt is not a failure, and opens nothing.
		if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.succeeded(ctx, tx, keys, ownLocks) }); err != nil {
			return nil, "", err
		}
		return nil, "", gridwatch.Errorf(gridwatch.EForbidden, "device: an account that manages users or tokens signs in on the dashboard only, for a shift, not as a device").
			WithDetails(map[string]any{"field": "device"})
	}
	secret := newSecret()
	csrf := newSecret()
	var p *Principal
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.succeeded(ctx, tx, keys, ownLocks); err != nil {
			return err
		}
		var sid int64
		idle, maxAge := s.limits(device)
		if err := tx.QueryRow(ctx, `INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent, device)
			VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8) RETURNING id`,
			hashSecret(secret), id, csrf, now, now.Add(maxAge), ip, truncate(userAgent, 300), device).Scan(&sid); err != nil {
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
		p.Session = &SessionInfo{ID: sid, Device: device, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(maxAge), IdleUntil: now.Add(idle)}
		actx := audit.WithActor(ctx, audit.Actor{Kind: "user", ID: id, Name: username, IP: ip, RequestID: audit.ActorFrom(ctx).RequestID})
		summary := map[string]any{"session": sid}
		if device != "" {
			summary["device"] = device
		}
		return audit.Record(actx, tx, "auth.login", "user", strconv.FormatInt(id, 10), summary)
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
		info     SessionInfo
	)
	// One round trip on every request: the session, its user and the scope.
	// A device session has the longer idle limit.
	err = s.pool.QueryRow(ctx, `SELECT s.id, s.csrf_token, s.last_seen_at, s.device, s.created_at, s.expires_at,
			u.id, u.username, u.display_name, u.role, `+scopeJSON("user_grids", "user_id", "u.id")+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > CASE WHEN s.device = '' THEN $3::timestamptz ELSE $4::timestamptz END AND NOT u.disabled`,
		hashSecret(secret), now, now.Add(-s.opts.SessionIdle), now.Add(-s.opts.DeviceSessionIdle)).
		Scan(&sid, &p.CSRFToken, &lastSeen, &info.Device, &info.CreatedAt, &info.ExpiresAt, &p.ID, &p.Username, &p.DisplayName, &p.Role, &p.Grids)
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
		lastSeen = now
	}
	idle, _ := s.limits(info.Device)
	info.ID, info.LastSeenAt, info.IdleUntil = sid, lastSeen, earlier(lastSeen.Add(idle), info.ExpiresAt)
	p.SessionID, p.Session = sid, &info
	p.fill()
	return p, nil
}

// limits returns the idle and the absolute limit of a session opened with
// device ("" for a dashboard session).
func (s *Service) limits(device string) (idle, maxAge time.Duration) {
	if device != "" {
		return s.opts.DeviceSessionIdle, s.opts.DeviceSessionMax
	}
	return s.opts.SessionIdle, s.opts.SessionMax
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// CookieMaxAge is how long the browser should keep the cookie of p's
// session: a device session's cookie outlives the browser (a phone closes
// it often); a dashboard session's ends with the browser (0).
func (s *Service) CookieMaxAge(p *Principal) int {
	if p == nil || p.Session == nil || p.Session.Device == "" {
		return 0
	}
	return max(int(p.Session.ExpiresAt.Sub(s.now()).Seconds()), 1)
}

// Sessions lists user id's sessions that have not ended, newest first.
func (s *Service) Sessions(ctx context.Context, userID int64) ([]SessionInfo, error) {
	if _, err := getUser(ctx, s.pool, userID); err != nil {
		return nil, err
	}
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT id, device, created_at, last_seen_at, expires_at, ip, user_agent FROM sessions
		WHERE user_id = $1 AND expires_at > $2 AND last_seen_at > CASE WHEN device = '' THEN $3::timestamptz ELSE $4::timestamptz END
		ORDER BY last_seen_at DESC, id DESC`, userID, now, now.Add(-s.opts.SessionIdle), now.Add(-s.opts.DeviceSessionIdle))
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SessionInfo, error) {
		var i SessionInfo
		err := row.Scan(&i.ID, &i.Device, &i.CreatedAt, &i.LastSeenAt, &i.ExpiresAt, &i.IP, &i.UserAgent)
		idle, _ := s.limits(i.Device)
		i.IdleUntil = earlier(i.LastSeenAt.Add(idle), i.ExpiresAt)
		return i, err
	})
	if out == nil {
		out = []SessionInfo{}
	}
	return out, err
}

// RevokeSession ends session id (an admin signing out a lost phone), audited.
func (s *Service) RevokeSession(ctx context.Context, id int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			user   int64
			device string
		)
		err := tx.QueryRow(ctx, "DELETE FROM sessions WHERE id = $1 RETURNING user_id, device", id).Scan(&user, &device)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "session %d not found (it may have ended already)", id)
		}
		if err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
		return audit.Record(ctx, tx, "auth.session_revoked", "user", strconv.FormatInt(user, 10), map[string]any{"session": id, "device": device})
	})
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
