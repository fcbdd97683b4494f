package basedata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"gridwatch/internal/database"
	"gridwatch/internal/pii"
)

// Key rotation: a new key is added to the ring as the one that seals
// (gridwatch pii rotate), then every row sealed under an older key is
// opened and sealed again under it, its hashes recomputed, batch by batch,
// each batch its own transaction. A rotation stopped half-way is resumed
// by running it again: the rows still under older keys are what is left.
// Rows under the current key are found by every key's hash meanwhile.

// RotateResult is what a rotation did.
type RotateResult struct {
	// Key is the key rows are now sealed under.
	Key int `json:"key"`
	// Resealed is how many rows this run sealed again; Remaining how many
	// are still under other keys (0 when done).
	Resealed  int64 `json:"resealed"`
	Remaining int64 `json:"remaining"`
	// Rows is how many rows each key seals, after the run.
	Rows map[int]int64 `json:"rows"`
}

// DefaultRotateBatch is how many rows a rotation re-seals per transaction.
const DefaultRotateBatch = 1000

// Rotate re-seals every resident not under the current key, in batches of
// batch rows (0: DefaultRotateBatch).
func (s *Service) Rotate(ctx context.Context, batch int) (RotateResult, error) {
	if s.keys == nil {
		return RotateResult{}, noKeys()
	}
	if batch <= 0 {
		batch = DefaultRotateBatch
	}
	res := RotateResult{Key: s.keys.Current()}
	// One pass through the table by id (no index on key_id: it would cost
	// every import), a batch of rows under older keys at a time.
	for after := int64(0); ; {
		n, last, err := s.rotateBatch(ctx, after, batch)
		res.Resealed += int64(n)
		if err != nil {
			return res, err
		}
		if last == 0 {
			break
		}
		after = last
	}
	rows, err := s.KeyRows(ctx)
	if err != nil {
		return res, err
	}
	res.Rows = rows
	for id, n := range rows {
		if id != res.Key {
			res.Remaining += n
		}
	}
	return res, nil
}

// rotateBatch re-seals up to batch rows with ids above after that are not
// under the current key, and returns how many and the last id it looked
// at (0: the table's end).
func (s *Service) rotateBatch(ctx context.Context, after int64, batch int) (int, int64, error) {
	cur := s.keys.Current()
	n := 0
	var last int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Batch work: bounded by its context, not by a request's statement timeout.
		if err := database.Long(ctx, tx); err != nil {
			return err
		}
		// SKIP LOCKED: rows held by a concurrent change (a move, an
		// import) are left to the next run, which reports them.
		rows, err := tx.Query(ctx, `SELECT id, id_sealed, phone_sealed, birth_sealed FROM residents
			WHERE id > $1 AND key_id <> $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`, after, cur, batch)
		if err != nil {
			return err
		}
		type resealed struct {
			id                     int64
			idS, idH               []byte
			phoneS, phoneH, birthS []byte
		}
		var out []resealed
		for rows.Next() {
			var r resealed
			var idS, phoneS, birthS []byte
			if err := rows.Scan(&r.id, &idS, &phoneS, &birthS); err != nil {
				return err
			}
			num, err := s.keys.Open(pii.FieldID, idS)
			if err != nil {
				return fmt.Errorf("resident %d: %w", r.id, err)
			}
			if r.idS, err = s.keys.Seal(pii.FieldID, num); err != nil {
				return err
			}
			r.idH = s.keys.Hash(pii.FieldID, string(num))
			if phoneS != nil {
				phone, err := s.keys.Open(pii.FieldPhone, phoneS)
				if err != nil {
					return fmt.Errorf("resident %d: %w", r.id, err)
				}
				if r.phoneS, err = s.keys.Seal(pii.FieldPhone, phone); err != nil {
					return err
				}
				r.phoneH = s.keys.Hash(pii.FieldPhone, string(phone))
			}
			if birthS != nil {
				birth, err := s.keys.Open(pii.FieldBirth, birthS)
				if err != nil {
					return fmt.Errorf("resident %d: %w", r.id, err)
				}
				if r.birthS, err = s.keys.Seal(pii.FieldBirth, birth); err != nil {
					return err
				}
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		if len(out) == batch {
			last = out[len(out)-1].id
		}
		ids := make([]int64, len(out))
		idS, idH, phoneS, phoneH, birthS := make([][]byte, len(out)), make([][]byte, len(out)), make([][]byte, len(out)), make([][]byte, len(out)), make([][]byte, len(out))
		for i, r := range out {
			ids[i], idS[i], idH[i], phoneS[i], phoneH[i], birthS[i] = r.id, r.idS, r.idH, r.phoneS, r.phoneH, r.birthS
		}
		if _, err := tx.Exec(ctx, `UPDATE residents r SET id_sealed = u.id_s, id_hash = u.id_h, phone_sealed = u.phone_s,
				phone_hash = u.phone_h, birth_sealed = u.birth_s, key_id = $7
			FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[])
				AS u (id, id_s, id_h, phone_s, phone_h, birth_s)
			WHERE r.id = u.id`, ids, idS, idH, phoneS, phoneH, birthS, cur); err != nil {
			return err
		}
		n = len(out)
		return nil
	})
	if err != nil {
		if errors.Is(err, pii.ErrNoKey) {
			return 0, 0, fmt.Errorf("rotate: %w: put the key back in the key file and run again", err)
		}
		return 0, 0, fmt.Errorf("rotate: %w", err)
	}
	return n, last, nil
}

// KeyRows returns how many residents each key seals.
func (s *Service) KeyRows(ctx context.Context) (map[int]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT key_id, count(*) FROM residents GROUP BY key_id`)
	if err != nil {
		return nil, fmt.Errorf("rows per key: %w", err)
	}
	out := map[int]int64{}
	for rows.Next() {
		var id int
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rows per key: %w", err)
	}
	return out, nil
}

// CheckKeys records the ring's keys (their ids and check values, never
// the keys) in the database, and compares them with those recorded by
// every node and rotation before: a node started with a key file of its
// own (each node makes one on a first start when none is given) or with
// the file from before a rotation would seal under a key the others lack,
// and could not open what they sealed. The problem is an error (the server
// must not start) once residents are stored; with none yet, only a
// warning to log, as nothing is lost until the first import.
func (s *Service) CheckKeys(ctx context.Context) (warning, err error) {
	if s.keys == nil {
		return nil, nil
	}
	fps := s.keys.Fingerprints()
	var problems []string
	var stored bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, id := range s.keys.IDs() {
			if _, err := tx.Exec(ctx, `INSERT INTO pii_keys (id, fingerprint) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, fps[id]); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT id, fingerprint FROM pii_keys ORDER BY id`)
		if err != nil {
			return err
		}
		var id int
		var fp []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &fp}, func() error {
			switch mine, ok := fps[id]; {
			case ok && !bytes.Equal(mine, fp):
				problems = append(problems, fmt.Sprintf("key %d is not the key %d the database knows", id, id))
			case !ok && id > s.keys.Current():
				problems = append(problems, fmt.Sprintf("the database knows key %d, newer than this ring's newest (%d)", id, s.keys.Current()))
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM residents)`).Scan(&stored)
	})
	if err != nil {
		return nil, fmt.Errorf("personal-data keys: %w", err)
	}
	if len(problems) == 0 {
		return nil, nil
	}
	p := fmt.Errorf("personal-data keys: %s: every node needs the same key file (copy it from the node where `gridwatch pii rotate` last ran, or give them all the same GRIDWATCH_PII_KEYS)",
		strings.Join(problems, "; "))
	if stored {
		return nil, p
	}
	return p, nil
}
