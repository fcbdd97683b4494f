package geo

import (
	"context"
	"strconv"
	"strings"
	"sync"
)

// Grid tiles change only when the grids do, and every change bumps the
// grid revision; so tiles drawn at one revision are kept until the next,
// and a change warms the tiles a dashboard opens on before anyone asks.
// A cold tile over a whole 10,000-grid city takes PostGIS about 100 ms to
// draw; a kept one is a map lookup.

// TileCacheBytes bounds the kept tiles: past it, the cache starts over.
const TileCacheBytes = 64 << 20

type tileKey struct {
	scope string
	t     Tile
}

type tileCache struct {
	mu    sync.Mutex
	rev   int64
	tiles map[tileKey][]byte
	bytes int
	hits  int64
}

// get returns the tile kept for rev, if any.
func (c *tileCache) get(rev int64, k tileKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rev != rev {
		return nil, false
	}
	b, ok := c.tiles[k]
	if ok {
		c.hits++
	}
	return b, ok
}

// put keeps a tile drawn at rev; an older revision's tiles go.
func (c *tileCache) put(rev int64, k tileKey, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case rev < c.rev:
		return
	case rev > c.rev || c.tiles == nil || c.bytes+len(b) > TileCacheBytes:
		c.rev, c.tiles, c.bytes = rev, map[tileKey][]byte{}, 0
	}
	if _, ok := c.tiles[k]; !ok {
		c.tiles[k] = b
		c.bytes += len(b)
	}
}

func scopeString(scope []int64) string {
	if scope == nil {
		return "*"
	}
	parts := make([]string, len(scope))
	for i, id := range scope {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

// WarmTiles draws the unscoped grid tiles from zoom 0 to maxZoom over the
// city's extent, so the dashboard's first views are kept already. It stops
// when ctx ends or the grids change under it.
func (s *Store) WarmTiles(ctx context.Context, maxZoom int) (int, error) {
	box, ok, err := s.Bounds(ctx, nil)
	if err != nil || !ok {
		return 0, err
	}
	rev, err := s.Revision(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for z := 0; z <= maxZoom; z++ {
		nw, se := TileAt(z, box.MinLon, box.MaxLat), TileAt(z, box.MaxLon, box.MinLat)
		for x := nw.X; x <= se.X; x++ {
			for y := nw.Y; y <= se.Y; y++ {
				if ctx.Err() != nil {
					return n, ctx.Err()
				}
				_, at, err := s.GridTileFor(ctx, Tile{z, x, y}, nil)
				if err != nil {
					return n, err
				}
				if at != rev {
					return n, nil // changed meanwhile: the next warm-up starts over
				}
				n++
			}
		}
	}
	return n, nil
}
