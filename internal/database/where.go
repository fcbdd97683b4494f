package database

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Where builds the WHERE clause of a query from conditions written with "?"
// placeholders, numbering them $1, $2, … in the order they are added, so a
// list filter can add its conditions one by one without counting
// arguments. Values always travel as arguments, never in the SQL text.
//
// A condition's "?" are all placeholders: write none in its SQL otherwise
// (no jsonb ? operators, no "?" inside string literals).
type Where struct {
	conds []string
	args  []any
}

// Add appends cond, AND-ed with the others; its "?" placeholders take args
// in order. It panics when their counts differ, a mistake in the caller's
// code rather than in its input.
func (w *Where) Add(cond string, args ...any) {
	if n := strings.Count(cond, "?"); n != len(args) {
		panic(fmt.Sprintf("database.Where: %q has %d placeholders for %d arguments", cond, n, len(args)))
	}
	var b strings.Builder
	for _, a := range args {
		i := strings.IndexByte(cond, '?')
		b.WriteString(cond[:i])
		b.WriteString(w.Arg(a))
		cond = cond[i+1:]
	}
	b.WriteString(cond)
	w.conds = append(w.conds, b.String())
}

// Eq keeps the rows whose col equals v; an empty v (a filter left out)
// adds nothing.
func (w *Where) Eq(col, v string) {
	if v != "" {
		w.Add(col+" = ?", v)
	}
}

// Within keeps the rows whose col lies in [from, until]; a zero time leaves
// that end open, and two zero times add nothing.
func (w *Where) Within(col string, from, until time.Time) {
	w.AddTime(col+" >= ?", from)
	w.AddTime(col+" <= ?", until)
}

// AddTime appends cond, with its one "?" taking t, unless t is zero: the
// optional end of a time filter, for ranges other than Within's (half-open,
// or overlapping a span).
func (w *Where) AddTime(cond string, t time.Time) {
	if !t.IsZero() {
		w.Add(cond, t)
	}
}

// Arg appends an argument used elsewhere in the query (a column list, a
// tile envelope) and returns its placeholder, "$n".
func (w *Where) Arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// SQL is " WHERE c1 AND c2 …", or "" without conditions.
func (w *Where) SQL() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// Clip makes later additions to w copy its slices first: a Where passed by
// value can then grow without writing into the spare capacity the caller's
// copy shares.
func (w *Where) Clip() {
	w.conds, w.args = slices.Clip(w.conds), slices.Clip(w.args)
}

// Args are the query's arguments, in placeholder order.
func (w *Where) Args() []any { return w.args }
