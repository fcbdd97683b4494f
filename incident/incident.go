// Package incident owns incidents (事件): how they are reported from every
// channel, assigned to the most specific grid covering them in the same
// transaction as the insert, and worked through the GB/T 30428 case
// workflow — reported → registered (立案) → dispatched (派遣) → in_progress
// (处置) → handled (反馈) → verified (核查) → closed (结案), with rejected (不予
// 立案) and returned (退回) — against a deadline per category. It also owns
// each grid's 1+X+Y staff, to whom cases are dispatched.
//
// The Service is cut by concern: store.go (the service, reading cases and
// the scope a viewer sees), report.go (filing a report: its grid, the
// reporter's confinement, retries), transition.go (one workflow step),
// staff.go (the grids' teams), bulk.go (bulk ingest), stats.go, follow.go,
// attachments.go, features.go and tiles.go.
package incident

import (
	"slices"
	"time"

	"gridwatch/geo"
)

// Status is where a case stands in the workflow.
type Status string

// The statuses.
const (
	Reported   Status = "reported"
	Registered Status = "registered"
	Dispatched Status = "dispatched"
	InProgress Status = "in_progress"
	Handled    Status = "handled"
	Verified   Status = "verified"
	Closed     Status = "closed"
	Rejected   Status = "rejected"
	Returned   Status = "returned"
)

// Statuses lists every status in workflow order.
func Statuses() []Status {
	return []Status{Reported, Registered, Dispatched, InProgress, Handled, Verified, Closed, Rejected, Returned}
}

// Open reports whether a case in status s is still being worked.
func (s Status) Open() bool { return s != Closed && s != Rejected }

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return slices.Contains(Statuses(), s) }

// Stage tells who moves a case to a status: the command centre (register,
// reject, dispatch, verify, close) or those who handle it on the ground
// (accept, hand back, report it handled). api maps each to a permission.
type Stage string

// The two stages.
const (
	StageCommand Stage = "command"
	StageHandle  Stage = "handle"
)

// transitions is the workflow: from each status, the statuses it may move
// to and who moves it there.
func transitions(from Status) map[Status]Stage {
	switch from {
	case Reported:
		return map[Status]Stage{Registered: StageCommand, Rejected: StageCommand}
	case Registered:
		return map[Status]Stage{Dispatched: StageCommand, Rejected: StageCommand}
	case Dispatched:
		return map[Status]Stage{InProgress: StageHandle, Returned: StageHandle}
	case Returned:
		return map[Status]Stage{Dispatched: StageCommand}
	case InProgress:
		return map[Status]Stage{Handled: StageHandle, Returned: StageHandle}
	case Handled:
		return map[Status]Stage{Verified: StageCommand, InProgress: StageCommand}
	case Verified:
		return map[Status]Stage{Closed: StageCommand}
	}
	return nil
}

// Allowed lists the statuses a case in status from may move to, in
// workflow order.
func Allowed(from Status) []Status {
	next := transitions(from)
	var out []Status
	for _, s := range Statuses() {
		if _, ok := next[s]; ok {
			out = append(out, s)
		}
	}
	return out
}

// StageOf returns who moves a case from one status to another, and false
// when the workflow has no such step.
func StageOf(from, to Status) (Stage, bool) {
	st, ok := transitions(from)[to]
	return st, ok
}

// Source is the channel an incident came through.
type Source string

// Sources lists the channels.
func Sources() []Source {
	return []Source{"patrol", "hotline", "citizen", "camera", "sensor", "superior"}
}

// Priorities lists the priorities, lowest first.
func Priorities() []string { return []string{"low", "normal", "high", "urgent"} }

// Incident is a case.
type Incident struct {
	ID           int64      `json:"id"`
	Source       Source     `json:"source"`
	ExternalID   *string    `json:"external_id"`
	Category     string     `json:"category"`
	CategoryName string     `json:"category_name"`
	Title        string     `json:"title"`
	Description  string     `json:"description"`
	Location     Point      `json:"location"`
	Address      string     `json:"address"`
	ReportedAt   time.Time  `json:"reported_at"`
	ReceivedAt   time.Time  `json:"received_at"`
	Priority     string     `json:"priority"`
	Grid         *geo.Ref   `json:"grid"`
	Unassigned   bool       `json:"unassigned"`
	Assignee     *Staff     `json:"assignee"`
	Deadline     time.Time  `json:"deadline"`
	Overdue      bool       `json:"overdue"`
	Status       Status     `json:"status"`
	Allowed      []Status   `json:"allowed_transitions"`
	Version      int        `json:"version"`
	RegisteredAt *time.Time `json:"registered_at"`
	ClosedAt     *time.Time `json:"closed_at"`
	CreatedBy    string     `json:"created_by"`
	// Via is "field" for a report from the field app, with AccuracyM the
	// phone's accuracy of the location, in metres.
	Via       string   `json:"via,omitempty"`
	AccuracyM *float64 `json:"accuracy_m,omitempty"`
	// ComponentID names the city component a component case (部件类) is
	// about (nil: none).
	ComponentID *int64       `json:"component_id"`
	UpdatedAt   time.Time    `json:"updated_at"`
	History     []Event      `json:"history,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Point is a GeoJSON Point in WGS-84.
type Point struct {
	Type        string     `json:"type"`
	Coordinates [2]float64 `json:"coordinates"`
}

// Event is one step of a case's history.
type Event struct {
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	From    *Status        `json:"from"`
	To      Status         `json:"to"`
	Note    string         `json:"note"`
	Details map[string]any `json:"details"`
}

// Staff is one member of a grid's 1+X+Y team.
type Staff struct {
	ID           int64     `json:"id"`
	GridID       int64     `json:"grid_id"`
	Role         string    `json:"role"` // leader, volunteer or staff
	Name         string    `json:"name"`
	Phone        string    `json:"phone"`
	Organisation string    `json:"organisation"`
	UserID       *int64    `json:"user_id"`
	CreatedAt    time.Time `json:"created_at"`
}

// Category is an event class (2 digits) or subclass (4 digits) with the
// hours allowed from report to the deadline.
type Category struct {
	Code          string  `json:"code"`
	Name          string  `json:"name"`
	ParentCode    *string `json:"parent_code"`
	DeadlineHours int     `json:"deadline_hours"`
}
