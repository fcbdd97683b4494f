package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"gridwatch/basedata"
	"gridwatch/internal/pii"
)

// Residents' personal data are sealed with keys kept out of the database
// (internal/pii): in the key file (--pii-key-file, <data-dir>/pii.keys by
// default, made with one fresh key on the first start) or given as
// --pii-keys (GRIDWATCH_PII_KEYS). `gridwatch pii` looks after them:
//
//	gridwatch pii keys                the keys, the one that seals, and the rows under each
//	gridwatch pii rotate [--no-new-key]  add a new key that seals (unless --no-new-key) and
//	                                     re-seal every row under an older one; resumable
//	gridwatch pii prune               remove the keys no row is sealed under any more

const piiUsage = `Usage:
  gridwatch pii keys   [flags]               list the keys and how many residents each seals
  gridwatch pii rotate [--no-new-key] [flags] add a new sealing key to the key file (unless
                                              --no-new-key) and re-seal every resident under it;
                                              run again to resume an interrupted rotation
  gridwatch pii prune  [flags]               remove from the key file the keys no resident uses

A server reads the key file when it starts. Every node must hold the same
keys: give them one key file (or the same GRIDWATCH_PII_KEYS), never let
each make its own. To rotate: stop every node, run rotate on one of them,
copy its key file to the others, start them. The database records each
key's check value (never the key): a node whose key file differs from the
database's keys, or lacks the newest, is refused at start once residents
are stored (a warning before), and so is a rotate or prune run with a
stale file. The flags are serve's (--data-dir, --database-url,
--pii-key-file, …).
`

// piiKeyFile is where the key file is: --pii-key-file, or pii.keys in the
// data directory.
func piiKeyFile(cfg *Config) string {
	if cfg.PIIKeyFile != "" {
		return cfg.PIIKeyFile
	}
	return filepath.Join(cfg.DataDir, "pii.keys")
}

// loadPIIKeys returns the keys cfg names: --pii-keys, else the key file,
// made with one fresh key when missing. file is the key file ("" when
// the keys came from --pii-keys).
func loadPIIKeys(cfg *Config) (keys *pii.Keyring, file string, err error) {
	if cfg.PIIKeys != "" {
		keys, err = pii.ParseEntries(cfg.PIIKeys)
		if err != nil {
			return nil, "", fmt.Errorf("pii-keys: %w", err)
		}
		return keys, "", nil
	}
	file = piiKeyFile(cfg)
	keys, err = pii.LoadOrCreate(file)
	return keys, file, err
}

// loadKeys loads the personal-data keys for the domain (before seeding:
// the demo's residents are sealed too).
func (m *Main) loadKeys() error {
	keys, file, err := loadPIIKeys(m.Config)
	if err != nil {
		return err
	}
	m.keys = keys
	if file != "" {
		m.Logger.Info("personal-data keys", "file", file, "keys", len(keys.IDs()), "sealing", keys.Current())
	}
	if m.pool == nil {
		return nil
	}
	// Nodes share the database, not their data directories: one started
	// with a key file of its own, or the one from before a rotation, must
	// not seal under a key the others cannot open.
	warn, err := basedata.NewService(m.pool, basedata.Options{Keys: keys}).CheckKeys(context.Background())
	if warn != nil {
		m.Logger.Warn("personal-data keys differ from other nodes'", "err", warn)
	}
	return err
}

// runPII is `gridwatch pii keys|rotate|prune`.
func runPII(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, piiUsage)
		if len(args) == 0 {
			return errors.New("no pii command given")
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	noNewKey := false
	switch sub {
	case "rotate":
		rest, noNewKey = takeFlag(rest, "--no-new-key")
	case "keys", "prune":
	default:
		fmt.Fprint(stderr, piiUsage)
		return fmt.Errorf("unknown pii command %q", sub)
	}
	cfg, err := LoadConfig("pii "+sub, rest, getenv, stderr)
	if err != nil {
		return err
	}
	keys, file, err := loadPIIKeys(cfg)
	if err != nil {
		return err
	}
	m := NewMain(cfg, NewLogger(cfg, stderr))
	defer m.Close()
	if err := m.openDatabase(ctx); err != nil {
		return err
	}
	// The key file must be the database's before a key is added to it: a
	// rotation from a node whose file is stale would add a key of the id
	// another rotation gave a different key.
	check := func() error {
		warn, err := basedata.NewService(m.pool, basedata.Options{Keys: keys}).CheckKeys(ctx)
		if warn != nil {
			fmt.Fprintf(stderr, "warning: %v\n", warn)
		}
		return err
	}
	if err := check(); err != nil {
		return err
	}
	if sub == "rotate" && !noNewKey {
		if file == "" {
			return errors.New("the keys come from --pii-keys (GRIDWATCH_PII_KEYS): add the new key there yourself, with the highest id, then run `gridwatch pii rotate --no-new-key`")
		}
		// The new key is in the file before any row is sealed under it: a
		// rotation cut short loses nothing and resumes with --no-new-key.
		if keys, err = pii.Generate(keys); err != nil {
			return err
		}
		if err := pii.WriteFile(file, keys); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added key %d to %s: it seals from now on; copy this file to every other node before it starts again\n", keys.Current(), file)
		// Recorded before any row is sealed under it: a node started with
		// the older file is refused from now on.
		if err := check(); err != nil {
			return err
		}
	}
	svc := basedata.NewService(m.pool, basedata.Options{Keys: keys, Logger: m.Logger})
	switch sub {
	case "rotate":
		res, err := svc.Rotate(ctx, basedata.DefaultRotateBatch)
		fmt.Fprintf(stdout, "re-sealed %d residents under key %d; %d still under older keys\n", res.Resealed, res.Key, res.Remaining)
		if err != nil {
			return err
		}
		if res.Remaining > 0 {
			return fmt.Errorf("%d residents were busy (being changed): run the rotation again", res.Remaining)
		}
		fmt.Fprintln(stdout, "every resident is sealed under the current key: `gridwatch pii prune` removes the old keys")
		return nil
	case "keys":
		rows, err := svc.KeyRows(ctx)
		if err != nil {
			return err
		}
		printKeys(stdout, keys, rows, file)
		return nil
	}
	// prune
	rows, err := svc.KeyRows(ctx)
	if err != nil {
		return err
	}
	var unused []int
	for _, id := range keys.IDs() {
		if id != keys.Current() && rows[id] == 0 {
			unused = append(unused, id)
		}
	}
	if len(unused) == 0 {
		fmt.Fprintln(stdout, "no key to remove: every key but the current one still seals residents (run `gridwatch pii rotate --no-new-key`)")
		return nil
	}
	if file == "" {
		return fmt.Errorf("keys %v seal nothing: remove them from --pii-keys (GRIDWATCH_PII_KEYS) yourself", unused)
	}
	for _, id := range unused {
		if keys, err = keys.Without(id); err != nil {
			return err
		}
	}
	if err := pii.WriteFile(file, keys); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed keys %v from %s\n", unused, file)
	return nil
}

// printKeys lists the ring's keys with the rows each seals, and rows
// sealed under keys the ring lacks (they cannot be opened).
func printKeys(w io.Writer, keys *pii.Keyring, rows map[int]int64, file string) {
	if file != "" {
		fmt.Fprintf(w, "key file %s\n", file)
	}
	fmt.Fprintf(w, "%-6s %-10s %s\n", "KEY", "RESIDENTS", "")
	for _, id := range keys.IDs() {
		note := ""
		if id == keys.Current() {
			note = "seals"
		} else if rows[id] == 0 {
			note = "unused: `gridwatch pii prune` removes it"
		}
		fmt.Fprintf(w, "%-6d %-10d %s\n", id, rows[id], note)
	}
	var missing []string
	for id, n := range rows {
		if !slices.Contains(keys.IDs(), id) {
			missing = append(missing, fmt.Sprintf("%d (%d residents)", id, n))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		fmt.Fprintf(w, "MISSING keys %s: these residents cannot be opened; put the keys back\n", strings.Join(missing, ", "))
	}
}
