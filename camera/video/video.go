// Package video joins the camera registry (package camera, which owns the
// cameras table) to the running streams (camera/live and camera/pull). The
// live manager finds cameras through the registry, and every stream's
// status change is written back to it. This is the one package that
// imports both sides: the registry knows nothing of video, and the video
// packages nothing of SQL.
package video

import (
	"context"
	"net/url"

	"gridwatch/camera"
	"gridwatch/camera/live"
	"gridwatch/camera/pull"
	"gridwatch/cluster"
	"gridwatch/internal/fence"
)

// NewManager makes a live.Manager whose cameras come from cams and whose
// status changes go to it (see camera.Store.SetStatus). onErr, when not
// nil, hears a status that could not be written; those of a stopping
// manager are not errors. cfg's Sources and OnState are set here.
func NewManager(cams *camera.Store, cfg live.Config, onErr func(live.Key, error)) *live.Manager {
	cfg.Sources = Sources{cams}
	cfg.OnState = func(ctx context.Context, k live.Key, st pull.State) {
		err := cams.SetStatus(ctx, k.Camera, k.Stream, camera.StreamStatus{Status: string(st.Status), Reason: st.Reason, Since: st.Since})
		// A status refused because another node owns the camera now is
		// the fence working, not an error: the new owner writes it.
		if err != nil && ctx.Err() == nil && onErr != nil && !fence.IsStale(err) {
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

// Router is the cluster node as the live manager's router: a camera this
// node holds the lease on is pulled here; one another node holds is relayed
// from that node's RTSP re-serve, signed in with the cluster's peer token
// (a camera's own credentials never travel between nodes).
type Router struct{ Node *cluster.Node }

// Route implements live.Router.
func (r Router) Route(camera int64) live.Route {
	o, ok := r.Node.Owner(camera)
	switch {
	case !ok:
		return live.Route{}
	case o.Self:
		return live.Route{Local: true, Fence: fence.Fence{Node: o.Node, Epoch: o.Epoch}}
	case o.RTSPURL == "":
		return live.Route{} // its owner re-serves nothing: nothing to relay
	}
	u, err := url.Parse(o.RTSPURL)
	if err != nil {
		return live.Route{}
	}
	u.User = url.UserPassword(PeerUser, r.Node.PeerToken())
	// The owner's fence is part of the route only so that a new owner
	// (even the same node again) is a new route and the relay reopens; a
	// relay writes nothing.
	return live.Route{Relay: u.String(), Fence: fence.Fence{Node: o.Node, Epoch: o.Epoch}}
}

// Want implements live.Router.
func (r Router) Want(camera int64, on bool) { r.Node.Want(camera, on) }

// PeerUser is the user name a node relaying a camera signs in with.
const PeerUser = "gridwatch-node"
