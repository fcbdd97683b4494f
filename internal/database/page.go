package database

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// DefaultLimit is the size of a page whose Keyset names none.
const DefaultLimit = 100

// Keyset is one page of a list read in the order of a unique bigint key
// (keyset pagination): the rows after the cursor, at most Limit of them.
// The next page starts after the last row of this one, so pages stay
// stable while rows are added, unlike OFFSET.
type Keyset struct {
	// Key is the ordering column, e.g. "i.id".
	Key string
	// Desc reads newest first: the next page holds smaller keys.
	Desc bool
	// Cursor is the key the previous page ended on; 0 for the first page.
	Cursor int64
	// Limit is the page size: DefaultLimit when 0 or less.
	Limit int
	// All reads every row in one page, whatever Limit says.
	All bool
}

// limit is the page size, 0 for all rows.
func (k Keyset) limit() int {
	switch {
	case k.All:
		return 0
	case k.Limit <= 0:
		return DefaultLimit
	}
	return k.Limit
}

// Querier runs a query: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Count returns how many rows of from (a FROM list, e.g. "cameras c")
// match w: the total a paged list reports beside its page.
func Count(ctx context.Context, q Querier, from string, w Where) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT count(*) FROM `+from+w.SQL(), w.Args()...).Scan(&n)
	return n, err
}

// QueryPage runs query (a SELECT … FROM …, without WHERE) with w and k's
// cursor condition, in k's order, scanning each row with scan, and returns
// the page (never nil) and the cursor of the next page: the key of its
// last row, read with key, or 0 when this page is the last.
func QueryPage[T any](ctx context.Context, q Querier, query string, w Where, k Keyset,
	scan func(pgx.CollectableRow) (T, error), key func(T) int64) ([]T, int64, error) {
	w.Clip()
	if k.Cursor > 0 {
		if k.Desc {
			w.Add(k.Key+" < ?", k.Cursor)
		} else {
			w.Add(k.Key+" > ?", k.Cursor)
		}
	}
	query += w.SQL() + " ORDER BY " + k.Key
	if k.Desc {
		query += " DESC"
	}
	limit := k.limit()
	if limit > 0 {
		// One row more than asked says whether there is a next page.
		query += " LIMIT " + strconv.Itoa(limit+1)
	}
	rows, err := q.Query(ctx, query, w.Args()...)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, 0, err
	}
	if out == nil {
		out = []T{}
	}
	var next int64
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		next = key(out[len(out)-1])
	}
	return out, next, nil
}
