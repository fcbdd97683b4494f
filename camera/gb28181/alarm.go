package gb28181

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"gridwatch/incident"
)

// Alarms turns the alarms devices raise into incidents: one per alarm, of
// Category, at the channel's place (its camera's, or the position the
// alarm carried), reported by the camera; the new incident's footage
// links (the cameras that saw the spot, the channel's among them) follow
// as for any incident. A device repeating an alarm makes no second case.
type Alarms struct {
	Store     *Store
	Incidents *incident.Service
	// Category is the incidents' category code (default 0601, other).
	Category string
	Logger   *slog.Logger
	// OnFiled, when set, is told of each alarm handled: the incident it
	// became (0: none) or why not.
	OnFiled func(a Alarm, incident int64, err error)
}

// alarmMethods names GB/T 28181 alarm methods (A.2.4.5).
var alarmMethods = map[int]string{1: "telephone alarm", 2: "device alarm", 3: "SMS alarm", 4: "GPS alarm", 5: "video alarm", 6: "device fault", 7: "other alarm"}

// videoAlarms names the alarm types of method 5 (video alarms).
var videoAlarms = map[int]string{1: "manual", 2: "motion", 3: "loitering", 4: "crowding", 5: "fast movement", 6: "intrusion", 7: "object left", 8: "object removed",
	9: "tripwire", 10: "area entry", 11: "area exit", 12: "tamper"}

// Title is how an alarm is named in its incident.
func (a Alarm) Title() string {
	m := alarmMethods[a.Method]
	if m == "" {
		m = "alarm"
	}
	if a.Method == 5 {
		if t := videoAlarms[a.Type]; t != "" {
			return fmt.Sprintf("Camera %s: %s (%s)", a.Channel, m, t)
		}
	}
	return fmt.Sprintf("Camera %s: %s", a.Channel, m)
}

// Handle files an alarm. It is Config.OnAlarm.
func (al *Alarms) Handle(ctx context.Context, a Alarm) {
	log := al.Logger
	if log == nil {
		log = slog.Default()
	}
	inc, err := al.handle(ctx, a)
	if err != nil && ctx.Err() == nil {
		log.Warn("gb28181: alarm", "device", a.Device, "channel", a.Channel, "err", err)
	}
	if al.OnFiled != nil {
		al.OnFiled(a, inc, err)
	}
}

func (al *Alarms) handle(ctx context.Context, a Alarm) (int64, error) {
	id, fresh, err := al.Store.recordAlarm(ctx, a)
	if err != nil || !fresh {
		return 0, err
	}
	lon, lat, _, ok, err := al.Store.channelPosition(ctx, a.Device, a.Channel)
	if err != nil {
		return 0, err
	}
	if !ok {
		if !a.HasPos {
			return 0, fmt.Errorf("alarm of channel %s: not a placed channel of device %s, and the alarm carried no position: no incident", a.Channel, a.Device)
		}
		// In the device's datum, as its catalog's positions are.
		crs, err := al.Store.deviceCRS(ctx, a.Device)
		if err != nil {
			return 0, err
		}
		lon, lat = crs.ToWGS84(a.Lon, a.Lat)
	}
	cat := al.Category
	if cat == "" {
		cat = "0601"
	}
	desc := a.Description
	if desc == "" {
		desc = a.Title()
	}
	// A device's clock may be off: an alarm dated where no report may be
	// (ahead of the service's clock, or years back) is dated when it came;
	// the device's own time stays in the alarm's row.
	reported := a.Time
	if incident.CheckReportedAt(reported, al.Incidents.Now()) != nil {
		reported = time.Time{}
	}
	n := incident.NewIncident{Source: "camera", ExternalID: "gb28181:" + strconv.FormatInt(id, 10), Category: cat, Title: a.Title(),
		Description: desc, Lon: lon, Lat: lat, ReportedAt: reported, Priority: priority(a.Priority)}
	inc, _, err := al.Incidents.Create(system(ctx), n, incident.Reporter{Name: "gb28181"}, incident.Viewer{})
	if err != nil {
		return 0, fmt.Errorf("alarm of channel %s: %w", a.Channel, err)
	}
	return inc.ID, al.Store.alarmIncident(ctx, id, inc.ID)
}

// priority maps an alarm priority (1 highest … 4) to an incident's.
func priority(p int) string {
	switch p {
	case 1:
		return "urgent"
	case 2:
		return "high"
	case 3:
		return "normal"
	case 4:
		return "low"
	}
	return "normal"
}
