package basedata

import (
	"context"

	"github.com/jackc/pgx/v5"

	"gridwatch/geo"
)

// FollowGrids carries buildings (and their households and residents),
// components and parcels along a boundary change or an import, in its
// transaction.
func (s *Service) FollowGrids(ctx context.Context, tx pgx.Tx, ch *geo.Change) error {
	return nil
}
