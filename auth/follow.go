package auth

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/geo"
)

// FollowGrids vetoes a merge or a delete that would remove a grid some
// account or token is scoped to: the scope row would go with the grid, and an account
// left with no scope rows sees every grid. Their scope must be changed
// first, by someone who decides what they should see.
//
// A grid a change creates joins the scopes that held the grid it was cut
// from (the handover to it), so no one loses sight of the cases that move
// into it.
func (s *Service) FollowGrids(ctx context.Context, tx pgx.Tx, ch *geo.Change) error {
	for _, h := range ch.Handovers {
		if h.From == 0 || !ch.IsCreated(h.To) {
			continue
		}
		from, created := h.From, h.To
		if _, err := tx.Exec(ctx, `INSERT INTO user_grids (user_id, grid_id) SELECT user_id, $2 FROM user_grids WHERE grid_id = $1 ON CONFLICT DO NOTHING`,
			from, created); err != nil {
			return fmt.Errorf("scopes follow the grids: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO token_grids (token_id, grid_id) SELECT token_id, $2 FROM token_grids WHERE grid_id = $1 ON CONFLICT DO NOTHING`,
			from, created); err != nil {
			return fmt.Errorf("scopes follow the grids: %w", err)
		}
	}
	if len(ch.Removed) == 0 {
		return nil
	}
	var users, tokens []string
	if err := tx.QueryRow(ctx, `SELECT
			coalesce((SELECT array_agg(u.username ORDER BY u.username) FROM user_grids ug JOIN users u ON u.id = ug.user_id WHERE ug.grid_id = ANY($1)), '{}'),
			coalesce((SELECT array_agg(t.name ORDER BY t.name) FROM token_grids tg JOIN api_tokens t ON t.id = tg.token_id
				WHERE tg.grid_id = ANY($1) AND t.revoked_at IS NULL), '{}')`, ch.Removed).Scan(&users, &tokens); err != nil {
		return fmt.Errorf("scopes follow the grids: %w", err)
	}
	if len(users)+len(tokens) == 0 {
		return nil
	}
	who := append(append([]string{}, users...), tokens...)
	return gridwatch.Errorf(gridwatch.EConflict, "the grid to be removed is in the scope of %s; give them another scope first", strings.Join(who, ", ")).
		WithDetails(map[string]any{"users": users, "tokens": tokens})
}
