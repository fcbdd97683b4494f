package auth

import (
	"context"
	"fmt"
	"strings"

	"gridwatch"
	"gridwatch/geo"
)

// FollowGrids vetoes a merge that would remove a grid some account or
// token is scoped to: the scope row would go with the grid, and an account
// left with no scope rows sees every grid. Their scope must be changed
// first, by someone who decides what they should see.
func (s *Service) FollowGrids(ctx context.Context, ch *geo.Change) error {
	if len(ch.Removed) == 0 {
		return nil
	}
	var users, tokens []string
	if err := ch.Tx.QueryRow(ctx, `SELECT
			coalesce((SELECT array_agg(u.username ORDER BY u.username) FROM user_grids ug JOIN users u ON u.id = ug.user_id WHERE ug.grid_id = ANY($1)), '{}'),
			coalesce((SELECT array_agg(t.name ORDER BY t.name) FROM token_grids tg JOIN api_tokens t ON t.id = tg.token_id
				WHERE tg.grid_id = ANY($1) AND t.revoked_at IS NULL), '{}')`, ch.Removed).Scan(&users, &tokens); err != nil {
		return fmt.Errorf("scopes follow the grids: %w", err)
	}
	if len(users)+len(tokens) == 0 {
		return nil
	}
	who := append(append([]string{}, users...), tokens...)
	return gridwatch.Errorf(gridwatch.EConflict, "the grid to be merged away is in the scope of %s; give them another scope first", strings.Join(who, ", ")).
		WithDetails(map[string]any{"users": users, "tokens": tokens})
}
