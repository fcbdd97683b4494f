// Package video joins the camera registry (package camera, which owns the
// cameras table) to the running streams (camera/live and camera/pull). The
// live manager finds cameras through the registry, and every stream's
// status change is written back to it. This is the one package that
// imports both sides: the registry knows nothing of video, and the video
// packages nothing of SQL.
package video

import (
	"context"

	"gridwatch/camera"
	"gridwatch/camera/live"
	"gridwatch/camera/pull"
)

// NewManager makes a live.Manager whose cameras come from cams and whose
// status changes go to it (see camera.Store.SetStatus). onErr, when not
// nil, hears a status that could not be written; those of a stopping
// manager are not errors. cfg's Sources and OnState are set here.
func NewManager(cams *camera.Store, cfg live.Config, onErr func(live.Key, error)) *live.Manager {
	cfg.Sources = Sources{cams}
	cfg.OnState = func(ctx context.Context, k live.Key, st pull.State) {
		err := cams.SetStatus(ctx, k.Camera, k.Stream, camera.StreamStatus{Status: string(st.Status), Reason: st.Reason, Since: st.Since})
		if err != nil && ctx.Err() == nil && onErr != nil {
			onErr(k, err)
		}
	}
	return live.NewManager(cfg)
}

// Sources is the registry as the live manager's camera lookup.
type Sources struct{ Cameras *camera.Store }

// Source looks camera id up (a gridwatch.ENotFound error when it does not
// exist).
func (s Sources) Source(ctx context.Context, id int64) (live.Source, error) {
	src, err := s.Cameras.Source(ctx, id)
	return live.Source(src), err
}

// Recording lists the enabled cameras that record.
func (s Sources) Recording(ctx context.Context) ([]live.Source, error) {
	srcs, err := s.Cameras.Recording(ctx)
	out := make([]live.Source, len(srcs))
	for i, src := range srcs {
		out[i] = live.Source(src)
	}
	return out, err
}
