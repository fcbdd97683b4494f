package auth

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
)

// Options configure the service.
type Options struct {
	// SessionIdle ends a session not used for this long (default 2 h).
	SessionIdle time.Duration
	// SessionMax ends any session this long after login (default 12 h: a shift).
	SessionMax time.Duration
	// DeviceSessionIdle and DeviceSessionMax are the limits of a device
	// session: a sign-in from the field app that names its phone (defaults
	// 30 days and 180 days). An admin revokes one by its device name.
	DeviceSessionIdle time.Duration
	DeviceSessionMax  time.Duration
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
	orDefault(&opts.SessionIdle, 2*time.Hour)
	orDefault(&opts.SessionMax, 12*time.Hour)
	orDefault(&opts.DeviceSessionIdle, 30*24*time.Hour)
	orDefault(&opts.DeviceSessionMax, 180*24*time.Hour)
	if opts.Hash.MemoryKiB == 0 {
		opts.Hash = DefaultHashParams()
	}
	t := &opts.Throttle
	orDefault(&t.AccountFailures, 5)
	orDefault(&t.AddressFailures, 20)
	orDefault(&t.Window, 15*time.Minute)
	orDefault(&t.BaseLock, 30*time.Second)
	orDefault(&t.MaxLock, 15*time.Minute)
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

// orDefault sets an option left at zero (or below) to its default.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func (s *Service) now() time.Time { return s.opts.Now() }

var errUnauthenticated = gridwatch.Errorf(gridwatch.EUnauthenticated, "sign in first: no valid session or token")
