package audit

import (
	"strconv"
	"strings"
)

// where gathers the conditions of a filtered list and their arguments:
// each "?" of a condition becomes the next $n, in order, so values are
// always parameters. (Issue 16 moves one such builder to internal/database
// for every package; until then the trail and the view log share this one.)
type where struct {
	conds []string
	args  []any
}

// add appends cond, its "?" placeholders taking vs in order.
func (w *where) add(cond string, vs ...any) {
	for _, v := range vs {
		w.args = append(w.args, v)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

// sql is " WHERE …" (empty without conditions).
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
