// Package onvifcam manages registered cameras over ONVIF: it probes a
// device by its address (what it is, its clock, its profiles and their
// stream URIs) so that a camera can be added by address and credentials,
// lists the devices WS-Discovery finds that are not registered yet, and
// steers PTZ domes — continuous move and zoom with the device's own
// timeout as a dead man's switch, stop, presets, home — one actor at a
// time, every command audited.
//
// Who steers a camera is a row in PostgreSQL (camera_ptz_control), taken by
// a command and held until Hold after the holder's last one (or until they
// let go), so every node of a cluster agrees on it. The command runs inside
// that row's transaction: two commands for one camera never cross.
package onvifcam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/camera"
	"gridwatch/camera/onvif"
)

// Options configure a Service.
type Options struct {
	// HTTP talks to the devices (default: a client with a 5 s timeout).
	HTTP *http.Client
	// Hold is how long control stays with an actor after their last
	// command (default 30 s).
	Hold time.Duration
	// MoveTimeout is the timeout a continuous move carries: the device
	// stops by itself after it unless moved again (default 2 s). A held
	// button repeats its move more often than that.
	MoveTimeout time.Duration
	// Discovery is where WS-Discovery probes go (default: the multicast
	// group on the system's interface) and how long answers are awaited.
	Discovery onvif.DiscoverOptions
	Logger    *slog.Logger
	Now       func() time.Time
	// Driver steers the PTZ cameras that are not managed over ONVIF (GB/T
	// 28181 channels) under the same control and audit; nil: none.
	Driver Driver
}

// Driver steers PTZ cameras reached by other means than ONVIF.
type Driver interface {
	// Drives reports whether camera id is one of its cameras, and whether
	// it has a PTZ head.
	Drives(ctx context.Context, id int64) (ok, ptz bool, err error)
	// Send gives camera id one checked command (never release).
	Send(ctx context.Context, id int64, cmd Command) error
}

// driver is the Driver of camera id, nil when ONVIF drives it.
func (s *Service) driver(ctx context.Context, id int64) (Driver, bool, error) {
	if s.opts.Driver == nil {
		return nil, false, nil
	}
	ok, ptz, err := s.opts.Driver.Drives(ctx, id)
	if err != nil || !ok {
		return nil, false, err
	}
	return s.opts.Driver, ptz, nil
}

// Service is the ONVIF side of the camera registry.
type Service struct {
	pool *pgxpool.Pool
	cams *camera.Store
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	clients map[int64]*device // connected devices by camera
	snaps   map[int64]snapshot
}

// device is a connected client and the access it was made from.
type device struct {
	client *onvif.Client
	key    string
}

// New returns a service over the registry.
func New(pool *pgxpool.Pool, cams *camera.Store, opts Options) *Service {
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Hold <= 0 {
		opts.Hold = 30 * time.Second
	}
	if opts.MoveTimeout <= 0 {
		opts.MoveTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{pool: pool, cams: cams, opts: opts, log: opts.Logger, clients: map[int64]*device{}, snaps: map[int64]snapshot{}}
}

// ---- probing and registration --------------------------------------------------------

// Stream is one of a probed device's profiles with its stream URI (as
// shown: without credentials).
type Stream struct {
	camera.DeviceProfile
	URI string `json:"uri"`
}

// Probe is what a device at an address says, and how it would be added.
type Probe struct {
	URL     string            `json:"url"`
	Device  camera.DeviceInfo `json:"device"`
	Streams []Stream          `json:"streams"`
	// MainProfile and SubProfile are the profiles a camera added from it
	// pulls by default ("" sub: none); PTZProfile the one steered.
	MainProfile string `json:"main_profile"`
	SubProfile  string `json:"sub_profile"`
	PTZProfile  string `json:"ptz_profile"`
	// Registered is the camera already managed at this address, if any.
	Registered *camera.Ref `json:"registered"`

	// uris are the stream URIs by profile token, with the account put in.
	uris map[string]string
}

// Probe connects to the device service at rawURL with an account and reads
// what it is. Its errors name the field at fault (onvif.url, onvif.password)
// and never repeat the password.
func (s *Service) Probe(ctx context.Context, rawURL string, acct camera.ONVIFAccount) (*Probe, error) {
	if err := camera.CheckONVIFURL(rawURL); err != nil {
		return nil, err
	}
	c := &onvif.Client{URL: rawURL, Username: acct.Username, Password: acct.Password, HTTP: s.opts.HTTP}
	if err := c.Connect(ctx); err != nil {
		return nil, probeError(err)
	}
	d, err := c.Describe(ctx)
	if err != nil {
		return nil, probeError(err)
	}
	p := &Probe{URL: rawURL, Device: deviceInfo(d, s.opts.Now()), uris: map[string]string{}}
	if len(d.Profiles) == 0 {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "onvif.url: the device has no media profiles to pull").WithDetails(map[string]any{"field": "onvif.url"})
	}
	for _, prof := range p.Device.Profiles {
		uri, err := c.StreamURI(ctx, prof.Token)
		if err != nil {
			return nil, probeError(err)
		}
		withAccount, err := putAccount(uri, acct)
		if err != nil {
			return nil, gridwatch.Errorf(gridwatch.EInvalid, "onvif.url: profile %s: the device gave a stream URI that is not rtsp://", prof.Token).WithDetails(map[string]any{"field": "onvif.url"})
		}
		p.uris[prof.Token] = withAccount
		shown, _ := camera.Redact(uri)
		p.Streams = append(p.Streams, Stream{DeviceProfile: prof, URI: shown})
	}
	p.MainProfile, p.SubProfile = pickProfiles(p.Device.Profiles)
	p.PTZProfile = ptzProfile(p.Device, p.MainProfile)
	if ref, err := s.registeredAt(ctx, rawURL); err == nil {
		p.Registered = ref
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	return p, nil
}

func (s *Service) registeredAt(ctx context.Context, u string) (*camera.Ref, error) {
	var r camera.Ref
	err := s.pool.QueryRow(ctx, `SELECT id, code, name FROM cameras WHERE onvif_url = $1 ORDER BY id LIMIT 1`, u).Scan(&r.ID, &r.Code, &r.Name)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// probeError says what failed reaching a device, as a field error.
func probeError(err error) error {
	if errors.Is(err, onvif.ErrUnauthorized) {
		return gridwatch.Errorf(gridwatch.EInvalid, "onvif.password: the camera refused the user name or password").
			WithDetails(map[string]any{"field": "onvif.password"})
	}
	return gridwatch.Errorf(gridwatch.EInvalid, "onvif.url: the device did not answer as an ONVIF camera (%s)", strings.TrimPrefix(err.Error(), "onvif: ")).
		WithDetails(map[string]any{"field": "onvif.url"})
}

func deviceInfo(d *onvif.Device, now time.Time) camera.DeviceInfo {
	info := camera.DeviceInfo{Manufacturer: d.Manufacturer, Model: d.Model, Firmware: d.Firmware, Serial: d.Serial, Hardware: d.Hardware,
		ClockOffsetMS: d.ClockOffset.Milliseconds(), PTZ: d.PTZ, Profiles: []camera.DeviceProfile{}, CheckedAt: now.UTC().Truncate(time.Second)}
	for _, p := range d.Profiles {
		info.Profiles = append(info.Profiles, camera.DeviceProfile{Token: p.Token, Name: p.Name, Encoding: p.Encoding, Width: p.Width, Height: p.Height, PTZ: p.PTZ})
	}
	return info
}

// pickProfiles chooses the main stream (the first profile, as devices list
// their main stream first) and the sub stream: the smallest profile
// smaller than the main one, if any.
func pickProfiles(ps []camera.DeviceProfile) (main, sub string) {
	if len(ps) == 0 {
		return "", ""
	}
	m := ps[0]
	best := -1
	for i, p := range ps[1:] {
		if p.Width*p.Height < m.Width*m.Height && (best < 0 || p.Width*p.Height < ps[best+1].Width*ps[best+1].Height) {
			best = i
		}
	}
	if best >= 0 {
		sub = ps[best+1].Token
	}
	return m.Token, sub
}

// ptzProfile is the profile PTZ commands name: the main one if it steers
// the head, else the first that does, else the main one.
func ptzProfile(d camera.DeviceInfo, main string) string {
	for _, p := range d.Profiles {
		if p.Token == main && p.PTZ {
			return main
		}
	}
	for _, p := range d.Profiles {
		if p.PTZ {
			return p.Token
		}
	}
	return main
}

// putAccount puts the account into a stream URI that has none: cameras
// give their URIs bare and take the ONVIF account for RTSP too.
func putAccount(uri string, acct camera.ONVIFAccount) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		return "", errors.New("not an rtsp URI")
	}
	if u.User == nil && acct.Username != "" {
		u.User = url.UserPassword(acct.Username, acct.Password)
	}
	return u.String(), nil
}

// Resolved are the stream URLs (with the account) a registration takes
// from the device.
type Resolved struct {
	MainURL, SubURL string
}

// Prepare probes the device a create or a change names and fills o's
// profile and device; it returns the stream URLs its profiles give. For a
// change of camera id, the same URL without a username keeps the stored
// account. An empty URL (no longer managed over ONVIF) needs no probe.
func (s *Service) Prepare(ctx context.Context, id int64, o *camera.ONVIFSpec) (*Resolved, error) {
	if o == nil || o.URL == "" {
		return nil, nil
	}
	if err := camera.CheckONVIFURL(o.URL); err != nil {
		return nil, err
	}
	if id != 0 && o.Username == "" {
		stored, err := s.cams.ONVIFAccess(ctx, id)
		if err != nil {
			return nil, err
		}
		if stored.URL == o.URL {
			o.Username, o.Password = stored.Account.Username, stored.Account.Password
		}
	}
	p, err := s.Probe(ctx, o.URL, camera.ONVIFAccount{Username: o.Username, Password: o.Password})
	if err != nil {
		return nil, err
	}
	main, sub := p.MainProfile, p.SubProfile
	if o.MainProfile != "" {
		main = o.MainProfile
	}
	switch o.SubProfile {
	case "":
		if main == sub {
			sub = ""
		}
	case "none":
		sub = ""
	default:
		sub = o.SubProfile
	}
	for field, tok := range map[string]string{"onvif.main_profile": main, "onvif.sub_profile": sub} {
		if _, ok := p.uris[tok]; tok != "" && !ok {
			return nil, gridwatch.Errorf(gridwatch.EInvalid, "%s: the device has no profile %q (it has %s)", field, tok, tokens(p.Device.Profiles)).
				WithDetails(map[string]any{"field": field})
		}
	}
	o.Profile = ptzProfile(p.Device, main)
	o.Device = &p.Device
	r := &Resolved{MainURL: p.uris[main]}
	if sub != "" {
		r.SubURL = p.uris[sub]
	}
	return r, nil
}

func tokens(ps []camera.DeviceProfile) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = strconv.Quote(p.Token)
	}
	return strings.Join(out, ", ")
}

// ---- discovery ------------------------------------------------------------------------

// Found is a discovered device, and the camera registered at its address
// if there is one.
type Found struct {
	onvif.Found
	Registered *camera.Ref `json:"registered"`
}

// Discover lists the ONVIF devices that answer a probe, those not
// registered first.
func (s *Service) Discover(ctx context.Context) ([]Found, error) {
	found, err := onvif.Discover(ctx, s.opts.Discovery)
	if err != nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "%s", err.Error())
	}
	out := make([]Found, 0, len(found))
	urls := make([]string, len(found))
	for i, f := range found {
		urls[i] = f.URL
		if f.Types == nil {
			found[i].Types = []string{}
		}
	}
	reg := map[string]*camera.Ref{}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (onvif_url) onvif_url, id, code, name FROM cameras WHERE onvif_url = ANY($1) ORDER BY onvif_url, id`, urls)
	if err != nil {
		return nil, fmt.Errorf("onvif discovery: %w", err)
	}
	for rows.Next() {
		var u string
		var r camera.Ref
		if err := rows.Scan(&u, &r.ID, &r.Code, &r.Name); err != nil {
			return nil, err
		}
		reg[u] = &r
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, f := range found {
		if reg[f.URL] == nil {
			out = append(out, Found{Found: f})
		}
	}
	for _, f := range found {
		if r := reg[f.URL]; r != nil {
			out = append(out, Found{Found: f, Registered: r})
		}
	}
	return out, nil
}

// ---- the connected devices ------------------------------------------------------------

// client returns camera id's connected device, and its access.
func (s *Service) client(ctx context.Context, id int64) (*onvif.Client, *camera.ONVIFAccess, error) {
	a, err := s.cams.ONVIFAccess(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if a.URL == "" {
		return nil, nil, gridwatch.Errorf(gridwatch.EConflict, "camera %d is not managed over ONVIF: give it an onvif address first", id)
	}
	key := a.URL + "\x00" + a.Account.Username + "\x00" + a.Account.Password
	s.mu.Lock()
	d := s.clients[id]
	s.mu.Unlock()
	if d != nil && d.key == key {
		return d.client, a, nil
	}
	c := &onvif.Client{URL: a.URL, Username: a.Account.Username, Password: a.Account.Password, HTTP: s.opts.HTTP}
	if err := c.Connect(ctx); err != nil {
		return nil, nil, deviceError(id, err)
	}
	s.mu.Lock()
	s.clients[id] = &device{client: c, key: key}
	s.mu.Unlock()
	// What the device says now is stored (a new firmware, a clock gone off).
	if info, err := c.Describe(ctx); err == nil {
		di := deviceInfo(info, s.opts.Now())
		a.Device = &di
		if a.Profile == "" {
			a.Profile = ptzProfile(di, "")
		}
		if err := s.cams.SetDevice(ctx, id, &di, a.Profile); err != nil {
			s.log.Warn("onvif: storing what the device said", "camera", id, "err", err)
		}
	}
	return c, a, nil
}

// forget drops camera id's connection (after a failure: the next command
// connects again, reading the device's clock anew).
func (s *Service) forget(id int64) {
	s.mu.Lock()
	delete(s.clients, id)
	s.mu.Unlock()
}

// deviceError is a device that failed a command: unavailable, saying why
// (never with its account).
func deviceError(id int64, err error) error {
	if errors.Is(err, onvif.ErrUnauthorized) {
		return gridwatch.Errorf(gridwatch.EUnavailable, "camera %d refused its stored ONVIF account: give the camera its user name and password again", id)
	}
	return gridwatch.Errorf(gridwatch.EUnavailable, "camera %d did not answer over ONVIF (%s)", id, strings.TrimPrefix(err.Error(), "onvif: "))
}

// ---- snapshots -------------------------------------------------------------------------

// SnapshotTTL is how long a device's snapshot is reused.
const SnapshotTTL = 5 * time.Second

type snapshot struct {
	jpeg []byte
	at   time.Time
}

// Snapshot is camera id's still from its device's snapshot URI (signed in
// with its account; reused for SnapshotTTL), for when the stream gives none.
func (s *Service) Snapshot(ctx context.Context, id int64) ([]byte, time.Time, error) {
	s.mu.Lock()
	if sn, ok := s.snaps[id]; ok && time.Since(sn.at) < SnapshotTTL {
		s.mu.Unlock()
		return sn.jpeg, sn.at, nil
	}
	s.mu.Unlock()
	c, acc, err := s.client(ctx, id)
	if err != nil {
		return nil, time.Time{}, err
	}
	profile := acc.Profile
	if profile == "" && acc.Device != nil && len(acc.Device.Profiles) > 0 {
		profile = acc.Device.Profiles[0].Token
	}
	jpg, err := c.Snapshot(ctx, profile)
	if err != nil {
		s.forget(id)
		return nil, time.Time{}, deviceError(id, err)
	}
	now := time.Now()
	s.mu.Lock()
	s.snaps[id] = snapshot{jpeg: jpg, at: now}
	s.mu.Unlock()
	return jpg, now, nil
}

// ---- PTZ ------------------------------------------------------------------------------

// Controller is who steers a camera, until when.
type Controller struct {
	Kind  string    `json:"kind"`
	ID    int64     `json:"id"`
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// You is true when it is the one asking.
	You bool `json:"you"`
}

// Status is a PTZ camera's state: where its head points, its presets and
// who steers it.
type Status struct {
	Camera     int64          `json:"camera_id"`
	PTZ        bool           `json:"ptz"`
	Position   *onvif.Vector  `json:"position"`
	Moving     bool           `json:"moving"`
	Presets    []onvif.Preset `json:"presets"`
	Controller *Controller    `json:"controller"`
	// Error says why the device could not be read (the rest still shows).
	Error string `json:"error,omitempty"`
	// MoveTimeoutMS is how long a move lasts unless repeated; HoldMS how
	// long control stays after a command.
	MoveTimeoutMS int64 `json:"move_timeout_ms"`
	HoldMS        int64 `json:"hold_ms"`
}

// Status reads camera id's head, presets and controller for actor a.
func (s *Service) Status(ctx context.Context, id int64, a audit.Actor) (*Status, error) {
	st := &Status{Camera: id, Presets: []onvif.Preset{}, MoveTimeoutMS: s.opts.MoveTimeout.Milliseconds(), HoldMS: s.opts.Hold.Milliseconds()}
	ctl, err := s.controller(ctx, s.pool, id, a)
	if err != nil {
		return nil, err
	}
	st.Controller = ctl
	if d, ptz, err := s.driver(ctx, id); err != nil {
		return nil, err
	} else if d != nil {
		// Its presets are numbers, its head's position unknown.
		st.PTZ = ptz
		return st, nil
	}
	c, acc, err := s.client(ctx, id)
	if gridwatch.ErrorCode(err) == gridwatch.EUnavailable {
		st.Error = gridwatch.ErrorMessage(err)
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	st.PTZ = acc.Device == nil || acc.Device.PTZ
	if !st.PTZ {
		return st, nil
	}
	pos, moving, err := c.Position(ctx, acc.Profile)
	if err == nil {
		st.Position, st.Moving = &pos, moving
		st.Presets, err = c.Presets(ctx, acc.Profile)
	}
	if err != nil {
		s.forget(id)
		st.Error = gridwatch.ErrorMessage(deviceError(id, err))
		st.Presets = []onvif.Preset{}
	}
	return st, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// controller is who holds camera id now (nil: nobody).
func (s *Service) controller(ctx context.Context, q querier, id int64, a audit.Actor) (*Controller, error) {
	var c Controller
	err := q.QueryRow(ctx, `SELECT actor_kind, actor_id, actor_name, since, until FROM camera_ptz_control WHERE camera_id = $1 AND until > $2`, id, s.opts.Now()).
		Scan(&c.Kind, &c.ID, &c.Name, &c.Since, &c.Until)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ptz controller of camera %d: %w", id, err)
	}
	c.You = c.Kind == a.Kind && c.ID == a.ID
	return &c, nil
}

// Command is one PTZ command.
type Command struct {
	// Op is move (continuous, at pan/tilt/zoom speeds in [-1, 1]), stop,
	// goto (a preset), set_preset (the position, under name), home or
	// release (let go of the camera).
	Op     string  `json:"op"`
	Pan    float64 `json:"pan"`
	Tilt   float64 `json:"tilt"`
	Zoom   float64 `json:"zoom"`
	Preset string  `json:"preset"`
	Name   string  `json:"name"`
}

// commandTimeout bounds one PTZ command's call to the device.
const commandTimeout = 4 * time.Second

// Ops are the commands, in the order the API lists them.
var Ops = []string{"move", "stop", "goto", "set_preset", "home", "release"}

func fieldError(field, format string, args ...any) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "%s: %s", field, fmt.Sprintf(format, args...)).WithDetails(map[string]any{"field": field})
}

// Check says what is wrong with a command.
func (c *Command) Check() error {
	c.Name = strings.TrimSpace(c.Name)
	switch c.Op {
	case "move":
		for _, v := range []struct {
			name string
			v    float64
		}{{"pan", c.Pan}, {"tilt", c.Tilt}, {"zoom", c.Zoom}} {
			if !(v.v >= -1 && v.v <= 1) {
				return fieldError(v.name, "speed %v is outside -1 to 1", v.v)
			}
		}
		if c.Pan == 0 && c.Tilt == 0 && c.Zoom == 0 {
			return fieldError("op", "a move needs a pan, tilt or zoom speed (to stop, send op stop)")
		}
	case "goto":
		if c.Preset == "" || len(c.Preset) > 64 {
			return fieldError("preset", "is required: the token of one of the camera's presets")
		}
	case "set_preset":
		if c.Name == "" || utf8.RuneCountInString(c.Name) > 64 || strings.ContainsAny(c.Name, "\x00\r\n") {
			return fieldError("name", "is required: 1 to 64 characters on one line")
		}
	case "stop", "home", "release":
	default:
		return fieldError("op", "%q is not a PTZ command (one of %s)", c.Op, strings.Join(Ops, ", "))
	}
	return nil
}

// key is what a command is for the audit's repeats: a held button sends
// the same move again, which is not audited twice in a row.
func (c *Command) key() map[string]any {
	m := map[string]any{"op": c.Op}
	switch c.Op {
	case "move":
		m["pan"], m["tilt"], m["zoom"] = c.Pan, c.Tilt, c.Zoom
	case "goto":
		m["preset"] = c.Preset
	case "set_preset":
		m["name"] = c.Name
	}
	return m
}

// Result is what a command did: who steers the camera now, and the token of
// a preset it saved.
type Result struct {
	Controller *Controller `json:"controller"`
	Preset     string      `json:"preset,omitempty"`
}

// Do runs a command on camera id for the actor in ctx: it takes (or keeps)
// control, unless someone else holds it (a conflict naming them), sends the
// command to the device and audits it — every command, the failed ones
// with their error; a move repeating the holder's last one is not audited
// again.
func (s *Service) Do(ctx context.Context, id int64, cmd Command) (*Result, error) {
	if err := cmd.Check(); err != nil {
		return nil, err
	}
	a := audit.ActorFrom(ctx)
	drv, ptz, err := s.driver(ctx, id)
	if err != nil {
		return nil, err
	}
	if cmd.Op == "release" {
		return s.release(ctx, id, a, drv != nil)
	}
	var send func(ctx context.Context, cmd *Command, res *Result) error
	if drv != nil {
		if !ptz {
			return nil, gridwatch.Errorf(gridwatch.EConflict, "camera %d has no PTZ head", id)
		}
		send = func(ctx context.Context, cmd *Command, res *Result) error {
			if err := drv.Send(ctx, id, *cmd); err != nil {
				return err
			}
			if cmd.Op == "set_preset" {
				res.Preset = cmd.Preset
			}
			return nil
		}
		if err := checkNumbered(&cmd); err != nil {
			return nil, err
		}
	}
	if drv == nil {
		c, acc, err := s.client(ctx, id)
		if err != nil {
			return nil, err
		}
		if acc.Device != nil && !acc.Device.PTZ {
			return nil, gridwatch.Errorf(gridwatch.EConflict, "camera %d has no PTZ head", id)
		}
		if err := s.checkPreset(ctx, c, acc, id, &cmd); err != nil {
			return nil, err
		}
		send = func(ctx context.Context, cmd *Command, res *Result) error {
			return s.send(ctx, c, acc.Profile, cmd, res)
		}
	}
	return s.do(ctx, id, a, &cmd, send)
}

// checkNumbered checks a command for a camera whose presets are numbers
// 1 to 255 (GB/T 28181): a preset saved takes the number given as its
// preset (or its name).
func checkNumbered(cmd *Command) error {
	switch cmd.Op {
	case "home":
		return fieldError("op", "this camera has no home command: go to a preset instead")
	case "set_preset":
		if cmd.Preset == "" {
			cmd.Preset = cmd.Name
		}
		fallthrough
	case "goto":
		n, err := strconv.Atoi(cmd.Preset)
		if err != nil || n < 1 || n > 255 {
			return fieldError("preset", "%q is not a preset number (1 to 255)", cmd.Preset)
		}
	}
	return nil
}

// checkPreset refuses to go to a preset the ONVIF camera does not have.
func (s *Service) checkPreset(ctx context.Context, c *onvif.Client, acc *camera.ONVIFAccess, id int64, cmd *Command) error {
	if cmd.Op == "goto" {
		// An unknown preset is the caller's mistake, not the camera's fault.
		ps, err := c.Presets(ctx, acc.Profile)
		if err != nil {
			s.forget(id)
			return deviceError(id, err)
		}
		if !slices.ContainsFunc(ps, func(p onvif.Preset) bool { return p.Token == cmd.Preset }) {
			return fieldError("preset", "camera %d has no preset %q", id, cmd.Preset)
		}
	}
	return nil
}

// do takes (or keeps) control of camera id for a, sends the command and
// audits it.
func (s *Service) do(ctx context.Context, id int64, a audit.Actor, cmd *Command, send func(context.Context, *Command, *Result) error) (*Result, error) {
	// Control is taken (or kept) in one short statement; the device is
	// then told outside any transaction, so a slow dome holds neither a
	// database connection nor the row, and anyone else is told at once
	// who steers.
	var res Result
	now := s.opts.Now()
	var last map[string]any
	var since time.Time
	err := s.pool.QueryRow(ctx, `INSERT INTO camera_ptz_control AS c (camera_id, actor_kind, actor_id, actor_name, since, until)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (camera_id) DO UPDATE SET actor_kind = excluded.actor_kind, actor_id = excluded.actor_id, actor_name = excluded.actor_name,
			since = CASE WHEN c.until > $5 THEN c.since ELSE excluded.since END,
			last_command = CASE WHEN c.until > $5 THEN c.last_command ELSE '{}' END,
			until = excluded.until
		WHERE c.until <= $5 OR (c.actor_kind = excluded.actor_kind AND c.actor_id = excluded.actor_id)
		RETURNING last_command, since`, id, a.Kind, a.ID, a.Name, now, now.Add(s.opts.Hold)).Scan(&last, &since)
	if errors.Is(err, pgx.ErrNoRows) {
		holder, err := s.controller(ctx, s.pool, id, a)
		if err != nil {
			return nil, err
		}
		if holder == nil { // let go between the two statements
			return nil, gridwatch.Errorf(gridwatch.EConflict, "camera %d: control changed hands; try again", id)
		}
		return nil, gridwatch.Errorf(gridwatch.EConflict, "camera %d is being steered by %s until %s", id, holder.Name, holder.Until.Local().Format("15:04:05")).
			WithDetails(map[string]any{"controller": holder})
	}
	if err != nil {
		return nil, fmt.Errorf("ptz control of camera %d: %w", id, err)
	}
	res.Controller = &Controller{Kind: a.Kind, ID: a.ID, Name: a.Name, Since: since, Until: now.Add(s.opts.Hold), You: true}
	dctx, cancel := context.WithTimeout(ctx, commandTimeout)
	devErr := send(dctx, cmd, &res)
	cancel()
	// The audit is written whatever becomes of the request: the device has
	// acted (or failed) by now.
	key := cmd.key()
	if repeat := devErr == nil && cmd.Op == "move" && sameCommand(last, key); !repeat {
		summary := map[string]any{"command": key}
		if devErr != nil {
			summary["error"] = gridwatch.ErrorMessage(deviceError(id, devErr))
		}
		if res.Preset != "" {
			summary["preset"] = res.Preset
		}
		actx := context.WithoutCancel(ctx)
		err := pgx.BeginFunc(actx, s.pool, func(tx pgx.Tx) error {
			if err := audit.Record(actx, tx, "camera.ptz", "camera", strconv.FormatInt(id, 10), summary); err != nil {
				return err
			}
			_, err := tx.Exec(actx, `UPDATE camera_ptz_control SET last_command = $2 WHERE camera_id = $1 AND actor_kind = $3 AND actor_id = $4`, id, key, a.Kind, a.ID)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("ptz audit of camera %d: %w", id, err)
		}
	}
	if devErr != nil {
		s.forget(id)
		return nil, deviceError(id, devErr)
	}
	return &res, nil
}

// send gives the device one command.
func (s *Service) send(ctx context.Context, c *onvif.Client, profile string, cmd *Command, res *Result) error {
	switch cmd.Op {
	case "move":
		return c.Move(ctx, profile, onvif.Vector{Pan: cmd.Pan, Tilt: cmd.Tilt, Zoom: cmd.Zoom}, s.opts.MoveTimeout)
	case "stop":
		return c.Stop(ctx, profile)
	case "goto":
		return c.GotoPreset(ctx, profile, cmd.Preset)
	case "set_preset":
		tok, err := c.SetPreset(ctx, profile, cmd.Name)
		res.Preset = tok
		return err
	case "home":
		return c.Home(ctx, profile)
	}
	return fmt.Errorf("onvif: unknown command %q", cmd.Op)
}

func sameCommand(last, key map[string]any) bool {
	if len(last) != len(key) {
		return false
	}
	for k, v := range key {
		lv, ok := last[k]
		if !ok || fmt.Sprint(lv) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// release lets go of camera id if the actor holds it (audited); letting go
// of a camera one does not hold changes nothing.
func (s *Service) release(ctx context.Context, id int64, a audit.Actor, driven bool) (*Result, error) {
	if !driven {
		if _, err := s.cams.ONVIFAccess(ctx, id); err != nil {
			return nil, err
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM camera_ptz_control WHERE camera_id = $1 AND actor_kind = $2 AND actor_id = $3 AND until > $4`, id, a.Kind, a.ID, s.opts.Now())
		if err != nil {
			return fmt.Errorf("ptz release of camera %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		return audit.Record(ctx, tx, "camera.ptz", "camera", strconv.FormatInt(id, 10), map[string]any{"command": map[string]any{"op": "release"}})
	})
	if err != nil {
		return nil, err
	}
	ctl, err := s.controller(ctx, s.pool, id, a)
	if err != nil {
		return nil, err
	}
	return &Result{Controller: ctl}, nil
}
