package gb28181

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/camera/onvifcam"
)

// PTZDriver steers the PTZ domes among the channels (DeviceControl
// PTZCmd) under the camera registry's PTZ control and audit
// (onvifcam.Driver). A GB/T 28181 move runs until told to stop, so the
// driver stops a move not repeated within MoveTimeout, as an ONVIF move's
// own timeout does: a dome does not turn on when the browser holding the
// button has gone.
type PTZDriver struct {
	Server *Server
	// MoveTimeout defaults to 2 s (the dashboard repeats a held move
	// more often).
	MoveTimeout time.Duration

	mu    sync.Mutex
	stops map[int64]*time.Timer
}

// Drives reports whether camera id is a channel, and whether its catalog
// says it has a head (PTZType 1 dome or 4 remote-controlled; a channel
// that says nothing is given the benefit of the doubt).
func (d *PTZDriver) Drives(ctx context.Context, id int64) (bool, bool, error) {
	var ptz int
	err := d.Server.cfg.Store.pool.QueryRow(ctx, `SELECT ptz_type FROM gb_channels WHERE camera_id = $1`, id).Scan(&ptz)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, ptz == 0 || ptz == manscdp.PTZDome || ptz == manscdp.PTZRemoteFixed, nil
}

// Send gives the channel one command.
func (d *PTZDriver) Send(ctx context.Context, id int64, cmd onvifcam.Command) error {
	dev, ch, err := d.Server.cfg.Store.CameraChannel(ctx, id)
	if err != nil {
		return err
	}
	// A move's stop is armed before it is sent (a slow answer does not
	// let the head stop between repeats), and a failed repeat leaves the
	// stop armed: the dome may have moved.
	d.mu.Lock()
	if t := d.stops[id]; t != nil && cmd.Op != "move" {
		t.Stop()
		delete(d.stops, id)
	}
	if cmd.Op == "move" {
		if d.stops == nil {
			d.stops = map[int64]*time.Timer{}
		}
		timeout := d.MoveTimeout
		if timeout <= 0 {
			timeout = 2 * time.Second
		}
		if t := d.stops[id]; t != nil {
			t.Reset(timeout)
		} else {
			d.stops[id] = time.AfterFunc(timeout, func() {
				d.mu.Lock()
				delete(d.stops, id)
				d.mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				defer cancel()
				if err := d.Server.PTZ(ctx, dev, ch, manscdp.PTZ{Stop: true, Addr: 1}); err != nil {
					d.Server.log.Warn("gb28181: stopping a move not repeated", "channel", ch, "err", err)
				}
			})
		}
	}
	d.mu.Unlock()
	return d.Server.PTZ(ctx, dev, ch, ptzOf(cmd))
}

// ptzOf is a checked command as a PTZCmd: speeds in [-1, 1] become a
// direction and a speed of 0–255 (zoom 0–15).
func ptzOf(cmd onvifcam.Command) manscdp.PTZ {
	var p manscdp.PTZ
	p.Addr = 1
	dir := func(v float64) int8 {
		switch {
		case v > 0:
			return 1
		case v < 0:
			return -1
		}
		return 0
	}
	speed := func(v float64, top float64) uint8 { return uint8(math.Round(math.Min(math.Abs(v), 1) * top)) }
	switch cmd.Op {
	case "move":
		p.Pan, p.Tilt, p.Zoom = dir(cmd.Pan), dir(cmd.Tilt), dir(cmd.Zoom)
		p.PanSpeed, p.TiltSpeed, p.ZoomSpeed = speed(cmd.Pan, 255), speed(cmd.Tilt, 255), speed(cmd.Zoom, 15)
	case "stop":
		p.Stop = true
	case "goto", "set_preset":
		n, _ := strconv.Atoi(cmd.Preset)
		p.Preset = uint8(n)
		p.PresetOp = manscdp.PresetCall
		if cmd.Op == "set_preset" {
			p.PresetOp = manscdp.PresetSet
		}
	}
	return p
}
