package gb28181

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/camera"
	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/geo"
	"gridwatch/internal/events"
)

// Events published on the event stream.
const (
	EventDeviceOnline  = "gb.device.online"
	EventDeviceOffline = "gb.device.offline"
)

// Store keeps the devices and their channels; all SQL of the package is
// here. Channels with a position become cameras through the camera
// registry.
type Store struct {
	pool    *pgxpool.Pool
	cameras *camera.Store
	node    string
	now     func() time.Time
}

// NewStore returns a store for node over pool.
func NewStore(pool *pgxpool.Pool, cameras *camera.Store, node string) *Store {
	return &Store{pool: pool, cameras: cameras, node: node, now: time.Now}
}

// system is who the registry's changes are written as.
func system(ctx context.Context) context.Context {
	return audit.WithActor(ctx, audit.Actor{Kind: "system", Name: "gb28181"})
}

// Device is a device as the API shows it: never its password.
type Device struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Manufacturer  string     `json:"manufacturer"`
	Model         string     `json:"model"`
	Firmware      string     `json:"firmware"`
	HasPassword   bool       `json:"has_password"`
	CRS           string     `json:"crs"`
	Transport     string     `json:"transport"`
	Address       string     `json:"address"`
	Node          *string    `json:"node"`
	Online        bool       `json:"online"`
	OfflineReason string     `json:"offline_reason,omitempty"`
	RegisteredAt  *time.Time `json:"registered_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
	LastKeepalive *time.Time `json:"last_keepalive"`
	CatalogAt     *time.Time `json:"catalog_at"`
	Channels      int        `json:"channels"`
	Cameras       int        `json:"cameras"`
	Unplaced      int        `json:"unplaced"`
	Gone          int        `json:"gone"`
}

// Channel is a video channel of a device.
type Channel struct {
	ID           string   `json:"id"`
	Device       string   `json:"device"`
	Camera       *int64   `json:"camera_id"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	CivilCode    string   `json:"civil_code"`
	Parent       string   `json:"parent"`
	Address      string   `json:"address"`
	Status       string   `json:"status"`
	PTZType      int      `json:"ptz_type"`
	Lon          *float64 `json:"lon"`
	Lat          *float64 `json:"lat"`
	// Unplaced: no position reported and none given: not on the map.
	Unplaced  bool      `json:"unplaced"`
	Gone      bool      `json:"gone"`
	UpdatedAt time.Time `json:"updated_at"`
}

// deviceSelect reads devices with their channel counts (one grouped pass
// over the channels); where goes before the grouping.
func deviceSelect(where string) string {
	return `SELECT d.id, d.name, d.manufacturer, d.model, d.firmware, d.password <> '', d.crs, d.transport, d.address, d.node_id,
	d.online, d.offline_reason, d.registered_at, d.expires_at, d.last_keepalive, d.catalog_at,
	count(c.id) FILTER (WHERE NOT c.gone), count(c.id) FILTER (WHERE c.camera_id IS NOT NULL),
	count(c.id) FILTER (WHERE c.camera_id IS NULL AND NOT c.gone), count(c.id) FILTER (WHERE c.gone)
	FROM gb_devices d LEFT JOIN gb_channels c ON c.device_id = d.id ` + where + ` GROUP BY d.id`
}

func scanDevice(row pgx.Row) (Device, error) {
	var d Device
	err := row.Scan(&d.ID, &d.Name, &d.Manufacturer, &d.Model, &d.Firmware, &d.HasPassword, &d.CRS, &d.Transport, &d.Address, &d.Node,
		&d.Online, &d.OfflineReason, &d.RegisteredAt, &d.ExpiresAt, &d.LastKeepalive, &d.CatalogAt,
		&d.Channels, &d.Cameras, &d.Unplaced, &d.Gone)
	return d, err
}

// Devices lists every device, online ones first.
func (s *Store) Devices(ctx context.Context) ([]Device, error) {
	rows, err := s.pool.Query(ctx, deviceSelect("")+` ORDER BY d.online DESC, d.id`)
	if err != nil {
		return nil, fmt.Errorf("gb28181: devices: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
}

// Device returns one device.
func (s *Store) Device(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, deviceSelect("WHERE d.id = $1"), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, gridwatch.Errorf(gridwatch.ENotFound, "no GB/T 28181 device %s", id)
	}
	if err != nil {
		return d, fmt.Errorf("gb28181: device %s: %w", id, err)
	}
	return d, nil
}

// Channels lists a device's channels.
func (s *Store) Channels(ctx context.Context, device string) ([]Channel, error) {
	if _, err := s.Device(ctx, device); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, device_id, camera_id, name, manufacturer, model, civil_code, parent_id, address, status, ptz_type,
		lon, lat, gone, updated_at FROM gb_channels WHERE device_id = $1 ORDER BY id`, device)
	if err != nil {
		return nil, fmt.Errorf("gb28181: channels: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Channel, error) {
		var c Channel
		err := r.Scan(&c.ID, &c.Device, &c.Camera, &c.Name, &c.Manufacturer, &c.Model, &c.CivilCode, &c.Parent, &c.Address, &c.Status,
			&c.PTZType, &c.Lon, &c.Lat, &c.Gone, &c.UpdatedAt)
		c.Unplaced = c.Camera == nil
		return c, err
	})
}

// DeviceSpec is what an administrator sets of a device: its own password
// (nil: unchanged; "": the platform's) and the datum of its positions.
type DeviceSpec struct {
	Password *string `json:"password"`
	CRS      *string `json:"crs"`
}

// Configure sets a device's password or datum; a device not yet known is
// added, so it can be given its password before it first registers.
func (s *Store) Configure(ctx context.Context, id string, sp DeviceSpec) (Device, error) {
	if !manscdp.ValidID(id) {
		return Device{}, gridwatch.Errorf(gridwatch.EInvalid, "id: %q is not a 20-digit GB/T 28181 ID", id).WithDetails(map[string]any{"field": "id"})
	}
	if sp.Password != nil && len(*sp.Password) > 128 {
		return Device{}, gridwatch.Errorf(gridwatch.EInvalid, "password: up to 128 characters").WithDetails(map[string]any{"field": "password"})
	}
	if sp.CRS != nil {
		c, err := geo.ParseCRS(*sp.CRS)
		if err != nil {
			return Device{}, err
		}
		*sp.CRS = string(c)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO gb_devices (id, password, crs) VALUES ($1, coalesce($2, ''), coalesce($3, 'wgs84'))
			ON CONFLICT (id) DO UPDATE SET password = coalesce($2, gb_devices.password), crs = coalesce($3, gb_devices.crs), updated_at = now()`,
			id, sp.Password, sp.CRS); err != nil {
			return fmt.Errorf("gb28181: configure %s: %w", id, err)
		}
		sum := map[string]any{"password_changed": sp.Password != nil}
		if sp.CRS != nil {
			sum["crs"] = *sp.CRS
		}
		return audit.Record(ctx, tx, "gb28181.device.configure", "gb_device", id, sum)
	})
	if err != nil {
		return Device{}, err
	}
	return s.Device(ctx, id)
}

// password is a device's own password, "" when it has none.
func (s *Store) password(ctx context.Context, id string) (string, error) {
	var p string
	err := s.pool.QueryRow(ctx, `SELECT password FROM gb_devices WHERE id = $1`, id).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return p, err
}

// registered records a registration; fresh is true when the device was
// not online with this node before (its catalog is then read again).
func (s *Store) registered(ctx context.Context, d *device, now time.Time) (fresh bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var was bool
		err := tx.QueryRow(ctx, `INSERT INTO gb_devices (id, transport, address, node_id, online, offline_reason, registered_at, expires_at, last_keepalive)
			VALUES ($1, $2, $3, $4, true, '', $5, $6, $5)
			ON CONFLICT (id) DO UPDATE SET transport = $2, address = $3, node_id = $4, online = true, offline_reason = '',
				registered_at = $5, expires_at = $6, last_keepalive = $5, updated_at = $5
			RETURNING coalesce((SELECT online AND node_id IS NOT DISTINCT FROM $4 FROM gb_devices WHERE id = $1), false)`,
			d.id, d.transport, d.source, s.node, now, d.expires).Scan(&was)
		if err != nil {
			return err
		}
		fresh = !was
		if fresh {
			return events.Publish(ctx, tx, EventDeviceOnline, nil, map[string]any{"id": d.id, "node": s.node, "address": d.source, "transport": d.transport})
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("gb28181: register %s: %w", d.id, err)
	}
	return fresh, nil
}

// offline marks a device offline, with why.
func (s *Store) offline(ctx context.Context, id, reason string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Only this node's registration: a device that moved to another
		// node is that node's.
		tag, err := tx.Exec(ctx, `UPDATE gb_devices SET online = false, offline_reason = $2, updated_at = now() WHERE id = $1 AND online AND node_id = $3`, id, reason, s.node)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return events.Publish(ctx, tx, EventDeviceOffline, nil, map[string]any{"id": id, "reason": reason})
	})
}

// nodeRestarted marks offline the devices this node had online: after a
// restart (or on stopping) it holds no registration. One statement,
// however many devices.
func (s *Store) nodeRestarted(ctx context.Context) error {
	const reason = "the node it registered with restarted"
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE gb_devices SET online = false, offline_reason = $2, updated_at = now()
			WHERE node_id = $1 AND online RETURNING id`, s.node, reason)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := events.Publish(ctx, tx, EventDeviceOffline, nil, map[string]any{"id": id, "reason": reason}); err != nil {
				return err
			}
		}
		return nil
	})
}

// keepalives writes the last keepalive of several devices at once.
func (s *Store) keepalives(ctx context.Context, ids []string, times []time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE gb_devices d SET last_keepalive = k.at FROM unnest($1::text[], $2::timestamptz[]) AS k(id, at)
		WHERE d.id = k.id AND d.node_id = $3`, ids, times, s.node)
	return err
}

func (s *Store) setInfo(ctx context.Context, id, name, maker, model, firmware string) error {
	_, err := s.pool.Exec(ctx, `UPDATE gb_devices SET name = $2, manufacturer = $3, model = $4, firmware = $5, updated_at = now() WHERE id = $1`,
		id, clip(name, 200), clip(maker, 200), clip(model, 200), clip(firmware, 200))
	return err
}

func clip(s string, n int) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

// errTaken: a catalog lists another device's channel.
var errTaken = errors.New("gb28181: a channel of another device is ignored")

// CatalogResult says what a catalog changed.
type CatalogResult struct {
	// Refused counts the channels listed that belong to another device
	// (a device does not take over another one's channels).
	Refused  int `json:"refused,omitempty"`
	Channels int `json:"channels"`
	Added    int `json:"added"`
	Updated  int `json:"updated"`
	Unplaced int `json:"unplaced"`
	Gone     int `json:"gone"`
}

// URL is the stream URL of a device's channel, as the camera registry
// keeps it.
func URL(device, channel string) string { return "gb28181://" + device + "/" + channel }

// ParseURL reads a URL made by URL.
func ParseURL(u string) (device, channel string, ok bool) {
	rest, ok := strings.CutPrefix(u, "gb28181://")
	if !ok {
		return "", "", false
	}
	device, channel, ok = strings.Cut(rest, "/")
	if !ok || !manscdp.ValidID(device) || !manscdp.ValidID(channel) {
		return "", "", false
	}
	return device, channel, true
}

// syncCatalog brings a device's channels in line with a catalog; full
// says it is the whole catalog, so channels it does not list are gone.
func (s *Store) syncCatalog(ctx context.Context, device string, items []manscdp.Item, full bool) (CatalogResult, error) {
	var res CatalogResult
	seen := make([]string, 0, len(items))
	crs, err := s.deviceCRS(ctx, device)
	if err != nil {
		return res, err
	}
	for _, it := range items {
		if !it.IsVideoChannel() {
			continue
		}
		seen = append(seen, it.DeviceID)
		res.Channels++
		added, updated, placed, err := s.upsertChannel(ctx, device, it, crs)
		if errors.Is(err, errTaken) {
			res.Refused++
			res.Channels--
			seen = seen[:len(seen)-1]
			continue
		}
		if err != nil {
			return res, err
		}
		switch {
		case added:
			res.Added++
		case updated:
			res.Updated++
		}
		if !placed {
			res.Unplaced++
		}
	}
	if full {
		tag, err := s.pool.Exec(ctx, `UPDATE gb_channels SET gone = true, updated_at = now() WHERE device_id = $1 AND NOT gone AND NOT (id = ANY($2))`, device, seen)
		if err != nil {
			return res, fmt.Errorf("gb28181: catalog of %s: %w", device, err)
		}
		res.Gone = int(tag.RowsAffected())
		if _, err := s.pool.Exec(ctx, `UPDATE gb_devices SET catalog_at = now() WHERE id = $1`, device); err != nil {
			return res, fmt.Errorf("gb28181: catalog of %s: %w", device, err)
		}
	}
	return res, nil
}

// applyEvents applies the items of a catalog notification: each carries
// an Event (ADD, UPDATE, DEL, ON, OFF, VLOST, DEFECT).
func (s *Store) applyEvents(ctx context.Context, device string, items []manscdp.Item) (CatalogResult, error) {
	var res CatalogResult
	crs, err := s.deviceCRS(ctx, device)
	if err != nil {
		return res, err
	}
	for _, it := range items {
		if !manscdp.ValidID(it.DeviceID) {
			continue
		}
		switch strings.ToUpper(strings.TrimSpace(it.Event)) {
		case "DEL":
			tag, err := s.pool.Exec(ctx, `UPDATE gb_channels SET gone = true, updated_at = now() WHERE id = $1 AND device_id = $2 AND NOT gone`, it.DeviceID, device)
			if err != nil {
				return res, fmt.Errorf("gb28181: catalog change of %s: %w", device, err)
			}
			res.Gone += int(tag.RowsAffected())
		case "ON", "OFF", "VLOST", "DEFECT":
			st := strings.ToUpper(strings.TrimSpace(it.Event))
			if _, err := s.pool.Exec(ctx, `UPDATE gb_channels SET status = $3, updated_at = now() WHERE id = $1 AND device_id = $2`, it.DeviceID, device, st); err != nil {
				return res, fmt.Errorf("gb28181: catalog change of %s: %w", device, err)
			}
			res.Updated++
		default: // ADD, UPDATE, or none
			if !it.IsVideoChannel() {
				continue
			}
			res.Channels++
			added, updated, placed, err := s.upsertChannel(ctx, device, it, crs)
			if errors.Is(err, errTaken) {
				res.Refused++
				continue
			}
			if err != nil {
				return res, err
			}
			if added {
				res.Added++
			} else if updated {
				res.Updated++
			}
			if !placed {
				res.Unplaced++
			}
		}
	}
	return res, nil
}

func (s *Store) deviceCRS(ctx context.Context, device string) (geo.CRS, error) {
	var c string
	if err := s.pool.QueryRow(ctx, `SELECT crs FROM gb_devices WHERE id = $1`, device).Scan(&c); err != nil {
		return "", fmt.Errorf("gb28181: device %s: %w", device, err)
	}
	return geo.CRS(c), nil
}

// upsertChannel keeps one catalog item and its camera: a channel with a
// position and no camera gets one; a camera follows its channel's name,
// and its position when the device reports a new one (a camera moved by
// hand stays where it was put until then).
func (s *Store) upsertChannel(ctx context.Context, device string, it manscdp.Item, crs geo.CRS) (added, updated, placed bool, err error) {
	var lon, lat *float64
	if x, y, ok := it.Position(); ok {
		x, y = crs.ToWGS84(x, y)
		lon, lat = &x, &y
	}
	name := clip(it.Name, 200)
	ptz := it.PTZKind()
	var camID *int64
	var oldLon, oldLat *float64
	var oldName string
	var existed bool
	var oldDevice string
	err = s.pool.QueryRow(ctx, `WITH old AS (SELECT camera_id, lon, lat, name, device_id FROM gb_channels WHERE id = $1)
		INSERT INTO gb_channels (id, device_id, name, manufacturer, model, civil_code, parent_id, address, status, ptz_type, lon, lat, gone, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, false, now())
		ON CONFLICT (id) DO UPDATE SET device_id = $2, name = $3, manufacturer = $4, model = $5, civil_code = $6, parent_id = $7, address = $8,
			status = $9, ptz_type = $10, lon = coalesce($11, gb_channels.lon), lat = coalesce($12, gb_channels.lat), gone = false, updated_at = now()
			WHERE gb_channels.device_id = $2 OR gb_channels.gone
		RETURNING (SELECT camera_id FROM old), (SELECT lon FROM old), (SELECT lat FROM old), coalesce((SELECT name FROM old), ''), EXISTS (SELECT 1 FROM old),
			coalesce((SELECT device_id FROM old), $2)`,
		it.DeviceID, device, name, clip(it.Manufacturer, 200), clip(it.Model, 200), clip(it.CivilCode, 20), clip(it.ParentID, 40),
		clip(it.Address, 200), clip(strings.ToUpper(it.Status), 20), ptz, lon, lat).Scan(&camID, &oldLon, &oldLat, &oldName, &existed, &oldDevice)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another device's channel (not gone from it): a device does not
		// take over what another one lists.
		return false, false, false, fmt.Errorf("%w: device %s lists channel %s, which device %s has", errTaken, device, it.DeviceID, s.channelDevice(ctx, it.DeviceID))
	}
	if err != nil {
		return false, false, false, fmt.Errorf("gb28181: channel %s: %w", it.DeviceID, err)
	}
	added = !existed
	updated = existed && (oldName != name || !samePos(oldLon, oldLat, lon, lat))
	if lon == nil && oldLon != nil {
		lon, lat = oldLon, oldLat
	}
	if camID != nil && oldDevice != device {
		// A channel gone from one device and listed by another (moved to
		// another NVR): its camera is pulled from the new one.
		u := URL(device, it.DeviceID)
		if _, err := s.cameras.Update(system(ctx), *camID, camera.Patch{MainURL: &u}, geo.CRSWGS84); err != nil && gridwatch.ErrorCode(err) != gridwatch.ENotFound {
			return added, true, true, fmt.Errorf("gb28181: camera of channel %s: %w", it.DeviceID, err)
		}
		updated = true
	}
	if camID != nil {
		if !updated {
			return added, updated, true, nil
		}
		var p camera.Patch
		if oldName != name && name != "" {
			p.Name = &name
		}
		if lon != nil && !samePos(oldLon, oldLat, lon, lat) {
			p.Location = &camera.Point{Type: "Point", Coordinates: [2]float64{*lon, *lat}}
		}
		if p.Name == nil && p.Location == nil {
			return added, updated, true, nil
		}
		if _, err := s.cameras.Update(system(ctx), *camID, p, geo.CRSWGS84); err != nil && gridwatch.ErrorCode(err) != gridwatch.ENotFound {
			return added, updated, true, fmt.Errorf("gb28181: camera of channel %s: %w", it.DeviceID, err)
		}
		return added, updated, true, nil
	}
	if lon == nil {
		return added, updated, false, nil
	}
	id, err := s.placeChannel(ctx, device, it.DeviceID, name, *lon, *lat)
	if err != nil {
		return added, updated, false, err
	}
	_ = id
	return added, updated, true, nil
}

// channelDevice is the device a channel belongs to ("?" when unknown).
func (s *Store) channelDevice(ctx context.Context, channel string) string {
	var d string
	if err := s.pool.QueryRow(ctx, `SELECT device_id FROM gb_channels WHERE id = $1`, channel).Scan(&d); err != nil {
		return "?"
	}
	return d
}

func samePos(aLon, aLat, bLon, bLat *float64) bool {
	if aLon == nil || bLon == nil {
		return aLon == nil && bLon == nil
	}
	return *aLon == *bLon && *aLat == *bLat
}

// placeChannel makes the camera of a channel at lon, lat (WGS-84): a
// camera with the channel's code already registered is taken over.
func (s *Store) placeChannel(ctx context.Context, device, channel, name string, lon, lat float64) (int64, error) {
	return s.placeChannelAs(system(ctx), device, channel, name, lon, lat)
}

// placeChannelAs is placeChannel audited as the actor in ctx.
func (s *Store) placeChannelAs(ctx context.Context, device, channel, name string, lon, lat float64) (int64, error) {
	if name == "" {
		name = channel
	}
	sp := camera.Spec{Code: channel, Name: name, Location: &camera.Point{Type: "Point", Coordinates: [2]float64{lon, lat}}, MainURL: URL(device, channel)}
	if err := sp.Check(geo.CRSWGS84); err != nil {
		return 0, fmt.Errorf("gb28181: camera of channel %s: %w", channel, err)
	}
	var id int64
	c, err := s.cameras.Create(ctx, sp)
	switch {
	case err == nil:
		id = c.ID
	case gridwatch.ErrorCode(err) == gridwatch.EConflict:
		if id, err = s.cameras.IDByCode(ctx, channel); err != nil {
			return 0, err
		}
		u := URL(device, channel)
		if _, err := s.cameras.Update(ctx, id, camera.Patch{MainURL: &u}, geo.CRSWGS84); err != nil {
			return 0, fmt.Errorf("gb28181: camera of channel %s: %w", channel, err)
		}
	default:
		return 0, fmt.Errorf("gb28181: camera of channel %s: %w", channel, err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE gb_channels SET camera_id = $2 WHERE id = $1`, channel, id); err != nil {
		return 0, fmt.Errorf("gb28181: channel %s: %w", channel, err)
	}
	return id, nil
}

// Place puts an unplaced channel on the map at a position given in crs:
// it becomes a camera.
func (s *Store) Place(ctx context.Context, channel string, lon, lat float64, crs geo.CRS) (int64, error) {
	var device, name string
	var cam *int64
	err := s.pool.QueryRow(ctx, `SELECT device_id, name, camera_id FROM gb_channels WHERE id = $1`, channel).Scan(&device, &name, &cam)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, gridwatch.Errorf(gridwatch.ENotFound, "no GB/T 28181 channel %s", channel)
	}
	if err != nil {
		return 0, fmt.Errorf("gb28181: channel %s: %w", channel, err)
	}
	if cam != nil {
		return 0, gridwatch.Errorf(gridwatch.EConflict, "channel %s is camera %d already: move the camera instead", channel, *cam)
	}
	if err := geo.CheckLonLat(lon, lat); err != nil {
		return 0, err
	}
	lon, lat = crs.ToWGS84(lon, lat)
	if _, err := s.pool.Exec(ctx, `UPDATE gb_channels SET lon = $2, lat = $3 WHERE id = $1`, channel, lon, lat); err != nil {
		return 0, fmt.Errorf("gb28181: channel %s: %w", channel, err)
	}
	return s.placeChannelAs(ctx, device, channel, name, lon, lat)
}

// CameraChannel is the device and channel of a camera that is a GB/T
// 28181 channel.
func (s *Store) CameraChannel(ctx context.Context, cameraID int64) (device, channel string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT device_id, id FROM gb_channels WHERE camera_id = $1`, cameraID).Scan(&device, &channel)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", gridwatch.Errorf(gridwatch.ENotFound, "camera %d is not a GB/T 28181 channel", cameraID)
	}
	return device, channel, err
}

// ChannelCamera is the camera of a channel, 0 when it has none.
func (s *Store) ChannelCamera(ctx context.Context, channel string) (int64, error) {
	var id *int64
	err := s.pool.QueryRow(ctx, `SELECT camera_id FROM gb_channels WHERE id = $1`, channel).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) || id == nil {
		return 0, nil
	}
	return *id, err
}

// DeviceNode is the node a device is registered with, "" when none.
func (s *Store) DeviceNode(ctx context.Context, id string) (string, error) {
	var node *string
	err := s.pool.QueryRow(ctx, `SELECT node_id FROM gb_devices WHERE id = $1 AND online`, id).Scan(&node)
	if errors.Is(err, pgx.ErrNoRows) || node == nil {
		return "", nil
	}
	return *node, err
}

// recordAlarm keeps an alarm; it returns false when the same alarm was
// kept already (a device repeats an alarm it saw no answer to).
func (s *Store) recordAlarm(ctx context.Context, a Alarm) (int64, bool, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO gb_alarms (device_id, channel_id, alarm_time, priority, method, alarm_type, description)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id`,
		a.Device, a.Channel, a.Time, a.Priority, a.Method, a.Type, clip(a.Description, 500)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("gb28181: alarm: %w", err)
	}
	return id, true, nil
}

func (s *Store) alarmIncident(ctx context.Context, alarm, incident int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE gb_alarms SET incident_id = $2 WHERE id = $1`, alarm, incident)
	return err
}

// channelPosition is where a channel is: its camera's place, or what it
// reported.
func (s *Store) channelPosition(ctx context.Context, device, channel string) (lon, lat float64, cam int64, ok bool, err error) {
	var x, y *float64
	var c *int64
	err = s.pool.QueryRow(ctx, `SELECT coalesce(ST_X(cm.location), ch.lon), coalesce(ST_Y(cm.location), ch.lat), ch.camera_id
		FROM gb_channels ch LEFT JOIN cameras cm ON cm.id = ch.camera_id WHERE ch.id = $1 AND ch.device_id = $2`, channel, device).Scan(&x, &y, &c)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, 0, false, nil
	}
	if err != nil || x == nil {
		return 0, 0, 0, false, err
	}
	if c != nil {
		cam = *c
	}
	return *x, *y, cam, true, nil
}
