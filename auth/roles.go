// Package auth owns accounts and access: users with passwords, sessions,
// API tokens, roles and their permissions, grid scopes and login throttling.
// The HTTP layer asks it who a request is (Authenticate*) and whether that
// principal may do something (Principal.Can); one table, in api, names the
// permission each route needs.
//
// The Service (service.go) is split by what it keeps: sessions and sign-in
// (session.go), API tokens (token.go), accounts and their grid scopes
// (user.go), and the first admin and known-secret tokens (bootstrap.go).
package auth

import (
	"slices"

	"gridwatch/geo"
)

// Role is what a user or token is for.
type Role string

// The roles.
const (
	RoleAdmin       Role = "admin"       // everything, including users and settings
	RoleCommander   Role = "commander"   // command-centre staff: all grids, cases, live video
	RoleOperator    Role = "operator"    // camera operators: video, tags, exports
	RoleGISEditor   Role = "gis_editor"  // grids and boundaries
	RoleGridLeader  Role = "grid_leader" // only the incidents and cameras of their grids
	RoleIntegration Role = "integration" // hotline, sensor or app: posts incidents, reads their status; no cameras, no video
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleAdmin, RoleCommander, RoleOperator, RoleGISEditor, RoleGridLeader, RoleIntegration}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Permission is one thing a principal may do; api maps each route to one.
type Permission string

// The permissions. Public and Authenticated are not granted by roles: Public
// needs nothing, Authenticated any valid session or token.
const (
	Public        Permission = "public"
	Authenticated Permission = "authenticated"
	GridsRead     Permission = "grids.read"
	GridsWrite    Permission = "grids.write"
	Locate        Permission = "locate"
	UsersManage   Permission = "users.manage"
	TokensManage  Permission = "tokens.manage"
	AuditRead     Permission = "audit.read"
	MetricsRead   Permission = "metrics.read"
	// Incidents: read (scoped; an integration token reads only its own),
	// report, and move through the workflow — the command steps (register,
	// reject, dispatch, verify, close) and the handling steps (accept,
	// return, report handled). IncidentsTransition is either.
	IncidentsRead       Permission = "incidents.read"
	IncidentsCreate     Permission = "incidents.create"
	IncidentsTransition Permission = "incidents.transition"
	IncidentsCommand    Permission = "incidents.command"
	IncidentsHandle     Permission = "incidents.handle"
	// StaffManage edits grids' 1+X+Y teams.
	StaffManage Permission = "staff.manage"
	// CamerasRead sees cameras (scoped); CamerasWrite registers and edits them.
	CamerasRead  Permission = "cameras.read"
	CamerasWrite Permission = "cameras.write"
	// CamerasPTZ steers PTZ cameras (in scope): move, zoom, presets, home.
	CamerasPTZ Permission = "cameras.ptz"
	// VideoLive watches cameras live (MSE, HLS, RTSP re-serve), in scope.
	VideoLive Permission = "video.live"
	// VideoPlayback plays recorded footage, in scope.
	VideoPlayback Permission = "video.playback"
	// ExportsManage holds evidence exports against retention and deletes them.
	ExportsManage Permission = "exports.manage"
	// PatrolsRecord starts and ends one's own patrols (巡查) and records
	// their tracks; its holder always reads their own patrols.
	PatrolsRecord Permission = "patrols.record"
	// PatrolsRead reads everyone's patrols in scope, live and in the
	// monthly statistics.
	PatrolsRead Permission = "patrols.read"
	// Base data (issue 19: people, houses, land, components). BaseRead
	// sees buildings, parcels, components and grid summaries (care flags
	// only as counts), in scope; BaseImport imports and exports buildings,
	// parcels and components; BaseWrite edits them (a component's state),
	// in scope.
	BaseRead   Permission = "base.read"
	BaseImport Permission = "base.import"
	BaseWrite  Permission = "base.write"
	// ResidentsRead lists households and residents, always masked, in
	// scope; ResidentsWrite imports them and records moves; ResidentsUnmask
	// reveals one resident's ID number, phone and birth date for a stated
	// purpose, audited; ResidentsExport exports personal data in bulk
	// (audited, and only where the server allows it: --pii-export).
	ResidentsRead   Permission = "residents.read"
	ResidentsWrite  Permission = "residents.write"
	ResidentsUnmask Permission = "residents.unmask"
	ResidentsExport Permission = "residents.export"
	// VisitsRecord records home visits (走访) to households in scope.
	VisitsRecord Permission = "visits.record"
	// ClusterPeer is another node of the cluster, presenting the cluster's
	// peer token (package cluster); no role grants it.
	ClusterPeer Permission = "cluster.peer"
)

// Permissions lists the permissions roles grant.
func Permissions() []Permission {
	return []Permission{GridsRead, GridsWrite, Locate, UsersManage, TokensManage, AuditRead, MetricsRead,
		IncidentsRead, IncidentsCreate, IncidentsTransition, IncidentsCommand, IncidentsHandle, StaffManage,
		CamerasRead, CamerasWrite, CamerasPTZ, VideoLive, VideoPlayback, ExportsManage, PatrolsRecord, PatrolsRead,
		BaseRead, BaseImport, BaseWrite, ResidentsRead, ResidentsWrite, ResidentsUnmask, ResidentsExport, VisitsRecord}
}

// grants is the role → permission table.
func grants(r Role) []Permission {
	switch r {
	case RoleAdmin:
		return Permissions()
	case RoleCommander:
		return []Permission{GridsRead, Locate, IncidentsRead, IncidentsCreate, IncidentsTransition, IncidentsCommand, IncidentsHandle, StaffManage, CamerasRead, CamerasPTZ, VideoLive, VideoPlayback, PatrolsRecord, PatrolsRead,
			BaseRead, ResidentsRead}
	case RoleOperator:
		return []Permission{GridsRead, Locate, IncidentsRead, CamerasRead, CamerasWrite, CamerasPTZ, VideoLive, VideoPlayback, BaseRead}
	case RoleGridLeader:
		return []Permission{GridsRead, Locate, IncidentsRead, IncidentsCreate, IncidentsTransition, IncidentsHandle, CamerasRead, CamerasPTZ, VideoLive, VideoPlayback, PatrolsRecord,
			BaseRead, BaseWrite, ResidentsRead, ResidentsWrite, ResidentsUnmask, VisitsRecord}
	case RoleGISEditor:
		return []Permission{GridsRead, GridsWrite, Locate, BaseRead, BaseImport, BaseWrite}
	case RoleIntegration:
		// A hotline, a sensor or a citizen app (its token is also the
		// Open311 api_key, which travels in URLs): it posts incidents and
		// reads their status, and sees no camera and no video. A video
		// system that pulls the re-served streams gets an operator token.
		return []Permission{IncidentsCreate, IncidentsRead}
	}
	return nil
}

// Allowed reports whether role r grants p.
func Allowed(r Role, p Permission) bool { return slices.Contains(grants(r), p) }

// Principal is who a request acts for: a user by session or a token.
type Principal struct {
	Kind        string `json:"kind"` // user or token
	ID          int64  `json:"id"`
	Username    string `json:"username"` // the user's name, or the token's
	DisplayName string `json:"display_name"`
	Role        Role   `json:"role"`
	// Grids is the scope: these grids and their descendants; nil means all.
	Grids       []geo.Ref    `json:"grids"`
	Permissions []Permission `json:"permissions"`
	CSRFToken   string       `json:"csrf_token,omitempty"`
	// SessionID is set for session principals (CSRF applies to them).
	SessionID int64 `json:"-"`
	// Session describes a session principal's session (nil for a token).
	Session *SessionInfo `json:"session,omitempty"`
}

// Can reports whether p may do perm.
func (p *Principal) Can(perm Permission) bool {
	switch perm {
	case Public:
		return true
	case Authenticated:
		return p != nil
	}
	return p != nil && Allowed(p.Role, perm)
}

// Scoped reports whether p sees only some grids.
func (p *Principal) Scoped() bool { return p != nil && p.Grids != nil }

// ScopeIDs returns the ids of the scope's root grids (nil: unscoped).
func (p *Principal) ScopeIDs() []int64 {
	if !p.Scoped() {
		return nil
	}
	ids := make([]int64, len(p.Grids))
	for i, g := range p.Grids {
		ids[i] = g.ID
	}
	return ids
}

// InScope filters a chain (a grid and its ancestors, most specific first) to
// the grids p may see: those at or below one of p's scope roots.
func (p *Principal) InScope(chain []geo.Ref) []geo.Ref {
	if !p.Scoped() {
		return chain
	}
	roots := p.ScopeIDs()
	// Walk from the district down: once a root is met, it and everything
	// more specific is in scope.
	for i := len(chain) - 1; i >= 0; i-- {
		if slices.Contains(roots, chain[i].ID) {
			return chain[:i+1]
		}
	}
	return []geo.Ref{}
}

func (p *Principal) fill() {
	p.Permissions = grants(p.Role)
	if p.Permissions == nil {
		p.Permissions = []Permission{}
	}
}
