// Package pgcluster runs a private PostgreSQL cluster from the system's
// binaries under a data directory: initdb on first start, a unix socket in the
// data directory and no TCP port, stopped on Close. It is gridwatch's embedded
// default when no DATABASE_URL is given, and the database of the tests.
//
// Layout under Dir: data/ (PGDATA), run/ (the socket), postgres.log, and
// gridwatch.lock, an flock held while a process owns the cluster. A second
// owner is refused; a postmaster left running by a killed owner is stopped and
// the cluster started again.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// socketPort names the socket file (.s.PGSQL.<port>); no TCP port is opened.
const socketPort = 5432

// maxSocketPath is the longest unix socket path Linux accepts (sun_path minus NUL).
const maxSocketPath = 107

// Options configure a cluster.
type Options struct {
	// Dir holds the cluster; created if missing.
	Dir string
	// BinDir holds initdb, pg_ctl and postgres; found under /usr/lib/postgresql when empty.
	BinDir string
	// Fast trades durability for speed (fsync off): for tests only.
	Fast bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running private cluster.
type Cluster struct {
	dir    string
	binDir string
	log    *slog.Logger
	cred   *syscall.Credential
	lock   *os.File
	fast   bool
}

// ErrInUse is returned by Start when another process owns the cluster.
var ErrInUse = errors.New("data directory is in use by another gridwatch process")

// Start locks opts.Dir, creates the cluster if needed, recovers one left by a
// killed process and starts it. Close stops it.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("postgres dir: %w", err)
	}
	if strings.ContainsAny(dir, "'\"\\$`") {
		return nil, fmt.Errorf("postgres dir %s: quotes, backslashes, $ and backticks are not allowed in the path", dir)
	}
	if n := len(filepath.Join(dir, "run", ".s.PGSQL.5432")); n > maxSocketPath {
		return nil, fmt.Errorf("postgres dir %s: the socket path would be %d bytes, over the limit of %d; choose a shorter --data-dir", dir, n, maxSocketPath)
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{dir: dir, binDir: binDir, log: log, fast: opts.Fast}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root: run them as postgres.
		if c.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("postgres dir: %w", err)
	}
	if err := c.acquireLock(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.releaseLock()
		}
	}()
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	// We hold the lock, so a postmaster still running on this directory was
	// left by a process that died without stopping it.
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		log.Warn("recovering a postgres cluster left running by an earlier process", "dir", c.dataDir())
		_ = c.pgctl(ctx, "stop", "-m", "fast", "-w", "-t", "30")
	}
	if err := c.start(ctx, opts.Fast); err != nil {
		return nil, err
	}
	ok = true
	log.Info("private postgres started", "dir", c.dataDir(), "socket", c.SocketDir())
	return c, nil
}

// FindBinDir returns the newest /usr/lib/postgresql/NN/bin holding initdb.
func FindBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("PostgreSQL server binaries not found (looked for /usr/lib/postgresql/*/bin/initdb and initdb on PATH): install postgresql and postgresql-NN-postgis-3, or set DATABASE_URL")
	}
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) > pgMajor(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func pgMajor(initdbPath string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdbPath))))
	return n
}

// EnsureDatabase creates database name in the cluster when it is missing.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("private database: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("private database: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("private database: %w", err)
	}
	return nil
}

// SocketDir is the directory of the cluster's unix socket.
func (c *Cluster) SocketDir() string { return filepath.Join(c.dir, "run") }

// DSN returns a connection string for database dbname over the socket.
func (c *Cluster) DSN(dbname string) string {
	return fmt.Sprintf("host='%s' port=%d user=postgres dbname='%s' sslmode=disable", c.SocketDir(), socketPort, dbname)
}

// Close stops the cluster and releases the directory.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := c.pgctl(ctx, "stop", "-m", "fast", "-w", "-t", "55")
	c.releaseLock()
	if err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	c.log.Info("private postgres stopped", "dir", c.dataDir())
	return nil
}

// Stop stops the postmaster in pg_ctl's mode ("fast", "immediate": as a
// crash, with recovery at the next start) and keeps the directory: the
// fault tests take the database away under load and give it back with
// StartAgain.
func (c *Cluster) Stop(ctx context.Context, mode string) error {
	return c.pgctl(ctx, "stop", "-m", mode, "-w", "-t", "55")
}

// StartAgain starts a cluster Stop stopped, as it was started.
func (c *Cluster) StartAgain(ctx context.Context) error { return c.start(ctx, c.fast) }

// Ctl runs pg_ctl with args on the cluster under dir, which another
// process owns (its lock is left alone): for the operator's or the fault
// tests' `pg_ctl restart -m immediate` of gridwatch's private database.
// pg_ctl's output, and a postmaster's it starts (restart has no -l), go
// to the cluster's log.
func Ctl(ctx context.Context, dir string, args ...string) error {
	binDir, err := FindBinDir()
	if err != nil {
		return err
	}
	c := &Cluster{dir: dir, binDir: binDir}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresCredential(); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(c.logFile(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w", args[0], err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_ctl"), append([]string{args[0], "-D", c.dataDir()}, args[1:]...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	// A file, not a pipe: a pipe would be held open by the postmaster.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(c.logFile())
		return fmt.Errorf("pg_ctl %s: %w: %s", args[0], err, lastLines(log, 5))
	}
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// LogFile is where the postmaster logs.
func (c *Cluster) LogFile() string { return c.logFile() }

func (c *Cluster) acquireLock() error {
	path := filepath.Join(c.dir, "gridwatch.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s is locked (held by pid %s); stop that process or use another --data-dir", ErrInUse, c.dir, strings.TrimSpace(string(holder)))
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	c.lock = f
	return nil
}

func (c *Cluster) releaseLock() {
	if c.lock != nil {
		_ = syscall.Flock(int(c.lock.Fd()), syscall.LOCK_UN)
		c.lock.Close()
		c.lock = nil
	}
}

// prepareDirs creates data/ and run/ and, when running as root, hands them
// and the log file to the postgres user.
func (c *Cluster) prepareDirs() error {
	for _, d := range []string{c.dataDir(), c.SocketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("postgres dir: %w", err)
		}
	}
	if _, err := os.Stat(c.logFile()); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(c.logFile(), nil, 0o640); err != nil {
			return fmt.Errorf("postgres log: %w", err)
		}
	}
	if c.cred == nil {
		return nil
	}
	uid, gid := int(c.cred.Uid), int(c.cred.Gid)
	for _, p := range []string{c.dataDir(), c.SocketDir(), c.logFile()} {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("hand %s to the postgres user: %w", p, err)
		}
	}
	// The postgres user must be able to reach the cluster through every parent.
	for d := c.dir; d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("postgres dir: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			// Search permission only (no listing): postgres must pass through.
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("the postgres user cannot reach %s: make it traversable (chmod o+x) or choose another --data-dir: %w", d, err)
			}
			c.log.Warn("made a directory traversable for the postgres user (chmod o+x)", "dir", d)
		}
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context) error {
	c.log.Info("creating private postgres cluster", "dir", c.dataDir())
	// initdb wants an empty directory.
	entries, _ := os.ReadDir(c.dataDir())
	if len(entries) > 0 {
		return fmt.Errorf("postgres data dir %s is not empty but holds no cluster (no PG_VERSION); move it away", c.dataDir())
	}
	out, err := c.run(ctx, filepath.Join(c.binDir, "initdb"),
		"-D", c.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	if err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(out, 5))
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, fast bool) error {
	opts := []string{
		"-c listen_addresses=''",
		"-k '" + c.SocketDir() + "'", // pg_ctl passes -o through a shell
		"-c unix_socket_permissions=0700",
		fmt.Sprintf("-p %d", socketPort),
	}
	if fast {
		opts = append(opts, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	err := c.pgctl(ctx, "start", "-w", "-t", "60", "-l", c.logFile(), "-o", strings.Join(opts, " "))
	if err != nil {
		log, _ := os.ReadFile(c.logFile())
		return fmt.Errorf("start postgres: %w; its log says: %s", err, lastLines(log, 8))
	}
	return nil
}

func (c *Cluster) pgctl(ctx context.Context, args ...string) error {
	args = append([]string{args[0], "-D", c.dataDir()}, args[1:]...)
	out, err := c.run(ctx, filepath.Join(c.binDir, "pg_ctl"), args...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", args[0], err, lastLines(out, 5))
	}
	return nil
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, the private cluster must run as the postgres user, which does not exist: install postgresql, run gridwatch as another user, or set DATABASE_URL")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
