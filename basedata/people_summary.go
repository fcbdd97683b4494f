package basedata

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"gridwatch/internal/database"
)

// residentSummary counts the households and residents of grids (each of
// them: the caller gives a subtree whole, as Summary reads it once for
// every count), and the residents per care flag (every flag, zeros
// included): aggregates, shown to everyone who reads base data. It adds
// up people_counts, one row per grid that triggers keep as rows change,
// so a district of ten thousand grids and a million residents costs ten
// thousand rows, not a million.
func (s *Service) residentSummary(ctx context.Context, q database.Querier, grids []int64) (households, residents int64, care map[string]int64, err error) {
	rows, err := q.Query(ctx, `SELECT code, slot FROM care_flags ORDER BY slot`)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("people summary: %w", err)
	}
	type flag struct {
		code string
		slot int16
	}
	flags, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (flag, error) {
		var f flag
		return f, r.Scan(&f.code, &f.slot)
	})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("people summary: %w", err)
	}
	// One sum per slot in use; the slots are the table's small integers,
	// written as numbers, never text from outside.
	var b strings.Builder
	b.WriteString(`SELECT coalesce(sum(households), 0), coalesce(sum(residents), 0)`)
	for _, f := range flags {
		b.WriteString(", coalesce(sum(care[" + strconv.Itoa(int(f.slot)) + "]), 0)")
	}
	b.WriteString(` FROM people_counts WHERE grid_id = ANY($1)`)
	counts := make([]int64, len(flags))
	dest := []any{&households, &residents}
	for i := range counts {
		dest = append(dest, &counts[i])
	}
	if err := q.QueryRow(ctx, b.String(), grids).Scan(dest...); err != nil {
		return 0, 0, nil, fmt.Errorf("people summary: %w", err)
	}
	care = make(map[string]int64, len(flags))
	for i, f := range flags {
		care[f.code] = counts[i]
	}
	return households, residents, care, nil
}
