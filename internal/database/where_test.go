package database_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/internal/database"
	"gridwatch/internal/testdb"
)

func TestWhere(t *testing.T) {
	type cond struct {
		sql  string
		args []any
	}
	cases := []struct {
		name     string
		args     []any // taken with Arg before the conditions
		conds    []cond
		wantSQL  string
		wantArgs []any
	}{
		{name: "none", wantSQL: ""},
		{name: "no placeholder", conds: []cond{{"x IS NULL", nil}}, wantSQL: " WHERE x IS NULL"},
		{name: "one", conds: []cond{{"a = ?", []any{1}}}, wantSQL: " WHERE a = $1", wantArgs: []any{1}},
		{
			name:     "several in one",
			conds:    []cond{{"a = ?", []any{"a"}}, {"g && ST_MakeEnvelope(?, ?, ?, ?, 4326)", []any{1, 2, 3, 4}}, {"(b = ? OR c = ?)", []any{5, "5"}}},
			wantSQL:  " WHERE a = $1 AND g && ST_MakeEnvelope($2, $3, $4, $5, 4326) AND (b = $6 OR c = $7)",
			wantArgs: []any{"a", 1, 2, 3, 4, 5, "5"},
		},
		{
			name:     "after Arg",
			args:     []any{"from", "to"},
			conds:    []cond{{"t >= ?", []any{10}}},
			wantSQL:  " WHERE t >= $3",
			wantArgs: []any{"from", "to", 10},
		},
		{
			name:     "ten and more",
			conds:    []cond{{strings.Repeat("? ", 11), []any{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}},
			wantSQL:  " WHERE $1 $2 $3 $4 $5 $6 $7 $8 $9 $10 $11 ",
			wantArgs: []any{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w database.Where
			for i, a := range tc.args {
				if got, want := w.Arg(a), "$"+strconv.Itoa(i+1); got != want {
					t.Errorf("Arg %d = %q, want %q", i, got, want)
				}
			}
			for _, c := range tc.conds {
				w.Add(c.sql, c.args...)
			}
			if got := w.SQL(); got != tc.wantSQL {
				t.Errorf("SQL() = %q, want %q", got, tc.wantSQL)
			}
			if got := fmt.Sprint(w.Args()); got != fmt.Sprint(tc.wantArgs) {
				t.Errorf("Args() = %v, want %v", got, tc.wantArgs)
			}
		})
	}
}

func TestWhereCountMismatchPanics(t *testing.T) {
	for _, tc := range []struct {
		cond string
		args []any
	}{{"a = ?", nil}, {"a = ?", []any{1, 2}}, {"a = 1", []any{1}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Add(%q, %v) did not panic", tc.cond, tc.args)
				}
			}()
			var w database.Where
			w.Add(tc.cond, tc.args...)
		}()
	}
}

var placeholder = regexp.MustCompile(`\$([0-9]+)`)

// FuzzWhere checks the numbering: whatever the conditions, the SQL names
// $1…$n once each in order, n is the number of arguments, and each
// placeholder stands where its condition had its "?", next to its text.
func FuzzWhere(f *testing.F) {
	f.Add("a = ?", "b IN (?, ?)", "c", 2)
	f.Add("", "?", "(x = ? OR y = ?)", 0)
	f.Add("?????", "?", "?? ", 3)
	f.Fuzz(func(t *testing.T, c1, c2, c3 string, extra int) {
		var w database.Where
		pre := (extra%4 + 4) % 4
		for range pre {
			w.Arg("pre")
		}
		conds := []string{c1, c2, c3}
		n := len(w.Args())
		for i, c := range conds {
			// Without "$" and digits, every "$n" in the result is a placeholder.
			c = strings.Map(func(r rune) rune {
				if r == '$' || r >= '0' && r <= '9' {
					return -1
				}
				return r
			}, c)
			conds[i] = c
			args := make([]any, strings.Count(c, "?"))
			for j := range args {
				args[j] = j
			}
			n += len(args)
			w.Add(c, args...)
		}
		if got := len(w.Args()); got != n {
			t.Fatalf("%d arguments, want %d", got, n)
		}
		sql := w.SQL()
		if strings.ContainsRune(sql, '?') {
			t.Fatalf("%q still has a ?", sql)
		}
		next := pre + 1 // after the Arg placeholders, which are not in the SQL
		for _, m := range placeholder.FindAllStringSubmatch(sql, -1) {
			if got := m[1]; got != strconv.Itoa(next) {
				t.Fatalf("%q: placeholder $%s where $%d comes next", sql, got, next)
			}
			next++
		}
		if next-1 != n {
			t.Fatalf("%q: %d placeholders for %d arguments", sql, next-1, n)
		}
		// Back from $n to ?, the conditions are as written.
		back := placeholder.ReplaceAllString(sql, "?")
		if want := " WHERE " + strings.Join(conds, " AND "); back != want {
			t.Fatalf("%q does not read back as %q", back, want)
		}
	})
}

// TestQueryPage reads a list both ways, page by page, and checks each row
// comes once, in order, with the filter and the cursor both applied.
func TestQueryPage(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	scan := func(r pgx.CollectableRow) (int64, error) {
		var id int64
		err := r.Scan(&id)
		return id, err
	}
	key := func(id int64) int64 { return id }
	for _, desc := range []bool{false, true} {
		t.Run(fmt.Sprintf("desc=%v", desc), func(t *testing.T) {
			var w database.Where
			w.Add("s.id % ? = 0", 3) // 3, 6, …, 30
			k := database.Keyset{Key: "s.id", Desc: desc, Limit: 4}
			var got []int64
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("no last page")
				}
				page, next, err := database.QueryPage(ctx, pool, `SELECT s.id FROM generate_series(1, 30) s (id)`, w, k, scan, key)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > 4 {
					t.Fatalf("page of %d rows, limit 4", len(page))
				}
				got = append(got, page...)
				if next == 0 {
					break
				}
				if next != page[len(page)-1] {
					t.Fatalf("next = %d, want the last row %d", next, page[len(page)-1])
				}
				k.Cursor = next
			}
			var want []int64
			for i := int64(1); i <= 10; i++ {
				want = append(want, 3*i)
			}
			if desc {
				for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
					want[i], want[j] = want[j], want[i]
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			if len(w.Args()) != 1 {
				t.Errorf("QueryPage changed the caller's Where: %d args", len(w.Args()))
			}
		})
	}
	t.Run("empty and unlimited", func(t *testing.T) {
		var w database.Where
		w.Add("false")
		page, next, err := database.QueryPage(ctx, pool, `SELECT s.id FROM generate_series(1, 3) s (id)`, w, database.Keyset{Key: "s.id"}, scan, key)
		if err != nil || page == nil || len(page) != 0 || next != 0 {
			t.Errorf("empty: %v, %d, %v; want [] (not nil), 0, nil", page, next, err)
		}
		page, next, err = database.QueryPage(ctx, pool, `SELECT s.id FROM generate_series(1, 250) s (id)`, database.Where{}, database.Keyset{Key: "s.id", All: true}, scan, key)
		if err != nil || len(page) != 250 || next != 0 {
			t.Errorf("All: %d rows, next %d, %v; want 250, 0, nil", len(page), next, err)
		}
		page, next, err = database.QueryPage(ctx, pool, `SELECT s.id FROM generate_series(1, 250) s (id)`, database.Where{}, database.Keyset{Key: "s.id", Limit: -5}, scan, key)
		if err != nil || len(page) != database.DefaultLimit || next != database.DefaultLimit {
			t.Errorf("default: %d rows, next %d, %v; want %d, %d, nil", len(page), next, err, database.DefaultLimit, database.DefaultLimit)
		}
	})
}

func TestWhereWithin(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		from, until time.Time
		want        string
		args        int
	}{
		{"open", time.Time{}, time.Time{}, "", 0},
		{"from", t0, time.Time{}, " WHERE t >= $1", 1},
		{"until", time.Time{}, t0, " WHERE t <= $1", 1},
		{"both", t0, t0, " WHERE t >= $1 AND t <= $2", 2},
	} {
		var w database.Where
		w.Within("t", tc.from, tc.until)
		if got := w.SQL(); got != tc.want || len(w.Args()) != tc.args {
			t.Errorf("%s: %q with %d args, want %q with %d", tc.name, got, len(w.Args()), tc.want, tc.args)
		}
	}
}

func TestWhereEq(t *testing.T) {
	var w database.Where
	w.Eq("a", "")
	w.Eq("b", "x")
	if got, want := w.SQL(), " WHERE b = $1"; got != want || len(w.Args()) != 1 || w.Args()[0] != "x" {
		t.Errorf("SQL() = %q with %v, want %q with [x]", got, w.Args(), want)
	}
}
