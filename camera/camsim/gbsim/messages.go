package gbsim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/geo"
)

// encode encodes m in the configured charset.
func (d *Device) encode(m *manscdp.Message) ([]byte, error) {
	b, err := manscdp.Encode(m, d.cfg.Charset)
	if err != nil {
		return nil, fmt.Errorf("gbsim: encode %s: %w", m.CmdType, err)
	}
	return b, nil
}

// handleMANSCDP reads a MESSAGE body and returns the status to answer and
// what to do after answering (nil: nothing).
func (d *Device) handleMANSCDP(body []byte) (int, func()) {
	m, err := manscdp.Decode(body)
	if err != nil {
		d.log.Info("gbsim: bad MANSCDP", "err", err)
		return sip.StatusBadRequest, nil
	}
	ch, isChannel := d.channel(m.DeviceID)
	isDevice := m.DeviceID == d.cfg.DeviceID
	if !isDevice && !isChannel {
		return sip.StatusNotFound, nil
	}
	switch m.Root() {
	case manscdp.RootQuery:
		switch m.CmdType {
		case manscdp.CmdCatalog:
			return sip.StatusOK, func() {
				items := d.catalogItems()
				d.replyPages(m, len(items), func(r *manscdp.Message, lo, hi int) {
					r.DeviceList = &manscdp.ItemList{Items: items[lo:hi]}
				})
			}
		case manscdp.CmdDeviceInfo:
			return sip.StatusOK, func() { d.reply(d.deviceInfo(m)) }
		case manscdp.CmdDeviceStatus:
			return sip.StatusOK, func() { d.reply(d.deviceStatus(m)) }
		case manscdp.CmdRecordInfo:
			name := d.cfg.Name
			if isChannel {
				name = channelName(ch)
			}
			return sip.StatusOK, func() {
				recs := d.records(m)
				d.replyPages(m, len(recs), func(r *manscdp.Message, lo, hi int) {
					r.Name = name
					r.RecordList = &manscdp.RecordList{Items: recs[lo:hi]}
				})
			}
		}
	case manscdp.RootControl:
		if m.CmdType != manscdp.CmdDeviceControl {
			break
		}
		if m.PTZCmd != "" {
			p, err := manscdp.ParsePTZCmd(m.PTZCmd)
			if err != nil {
				d.log.Info("gbsim: bad PTZCmd", "cmd", m.PTZCmd, "err", err)
				return sip.StatusBadRequest, nil
			}
			d.mu.Lock()
			r := d.ptz[m.DeviceID]
			d.ptz[m.DeviceID] = ptzRecord{last: p, count: r.count + 1}
			d.mu.Unlock()
			return sip.StatusOK, nil // PTZ has no Response
		}
		// TeleBoot, RecordCmd, GuardCmd, AlarmCmd, IFameCmd: done.
		return sip.StatusOK, func() { d.reply(m.ReplyResult(true)) }
	}
	return sip.StatusOK, nil
}

// reply sends a Response MESSAGE.
func (d *Device) reply(r *manscdp.Message) {
	body, err := d.encode(r)
	if err == nil {
		err = d.sendOK(d.ctx, body)
	}
	if err != nil && d.ctx.Err() == nil {
		d.log.Info("gbsim: response", "cmd", r.CmdType, "err", err)
	}
}

// replyPages answers query q with n items in Responses of
// CatalogPerMessage items, each with SumNum n (no items: one Response with
// an empty list); fill puts items lo to hi in a Response. Over UDP a
// Response too large for sipgo to send (1300 bytes with its headers) goes
// in smaller pages.
func (d *Device) replyPages(q *manscdp.Message, n int, fill func(r *manscdp.Message, lo, hi int)) {
	var bodies [][]byte
	for lo := 0; ; {
		hi := min(lo+d.cfg.CatalogPerMessage, n)
		for {
			r := q.Reply()
			r.SumNum = n
			fill(r, lo, hi)
			body, err := d.encode(r)
			if err != nil {
				d.log.Error("gbsim: response", "err", err)
				return
			}
			if hi-lo <= 1 || d.fits(body) {
				bodies = append(bodies, body)
				break
			}
			hi = lo + (hi-lo)/2
		}
		if lo = hi; lo >= n {
			break
		}
	}
	for _, body := range bodies {
		if err := d.sendOK(d.ctx, body); err != nil {
			if d.ctx.Err() == nil {
				d.log.Info("gbsim: response", "cmd", q.CmdType, "err", err)
			}
			return
		}
	}
}

// fits reports whether a MESSAGE with body can go over the device's
// transport: sipgo refuses a UDP message of more than UDPMTUSize-200
// bytes.
func (d *Device) fits(body []byte) bool {
	if d.cfg.Transport != "UDP" {
		return true
	}
	return len(body)+d.msgOverhead <= sip.UDPMTUSize-200
}

func channelName(ch Channel) string {
	if ch.Name != "" {
		return ch.Name
	}
	return "Camera " + ch.ID[len(ch.ID)-3:]
}

// position is where the device says ch is: WGS-84, or GCJ-02 with
// Config.GCJ02.
func (d *Device) position(ch Channel) (lon, lat string) {
	x, y := ch.Lon, ch.Lat
	if d.cfg.GCJ02 {
		x, y = geo.WGS84ToGCJ02(x, y)
	}
	return strconv.FormatFloat(x, 'f', 6, 64), strconv.FormatFloat(y, 'f', 6, 64)
}

// catalogItem is ch as a catalog item. It leaves out what the platform
// does not need (Owner, Address, Parental, SafetyWay, RegisterWay,
// Secrecy), so that two items fit in a UDP MESSAGE.
func (d *Device) catalogItem(ch Channel) manscdp.Item {
	ptz := manscdp.PTZFixed
	if ch.PTZ {
		ptz = manscdp.PTZDome
	}
	it := manscdp.Item{
		DeviceID:     ch.ID,
		Name:         channelName(ch),
		Manufacturer: d.cfg.Manufacturer,
		Model:        d.cfg.Model,
		CivilCode:    ch.ID[:6],
		ParentID:     d.cfg.DeviceID,
		Status:       "ON",
		Info:         &manscdp.ItemInfo{PTZType: strconv.Itoa(ptz)},
	}
	if !ch.NoPosition {
		it.Longitude, it.Latitude = d.position(ch)
	}
	return it
}

// catalogItems is the catalog: every channel.
func (d *Device) catalogItems() []manscdp.Item {
	d.mu.Lock()
	chans := append([]Channel(nil), d.channels...)
	d.mu.Unlock()
	items := make([]manscdp.Item, 0, len(chans))
	for _, ch := range chans {
		items = append(items, d.catalogItem(ch))
	}
	return items
}

func (d *Device) deviceInfo(q *manscdp.Message) *manscdp.Message {
	r := q.Reply()
	r.DeviceName = d.cfg.Name
	r.Manufacturer = d.cfg.Manufacturer
	r.Model = d.cfg.Model
	r.Firmware = d.cfg.Firmware
	d.mu.Lock()
	r.Channel = len(d.channels)
	d.mu.Unlock()
	r.Result = "OK"
	return r
}

func (d *Device) deviceStatus(q *manscdp.Message) *manscdp.Message {
	r := q.Reply()
	r.Result = "OK"
	r.Online = "ONLINE"
	r.Status = "OK"
	r.Encode = "ON"
	r.Record = "OFF"
	r.DeviceTime = manscdp.FormatTime(time.Now(), nil)
	return r
}

// records are the recordings a RecordInfo query asks for: of its channel
// (every channel's when it names the device), overlapping its StartTime
// to EndTime, of its Type unless that is all or empty.
func (d *Device) records(q *manscdp.Message) []manscdp.RecordItem {
	from, err1 := manscdp.ParseTime(q.StartTime, nil)
	to, err2 := manscdp.ParseTime(q.EndTime, nil)
	if err1 != nil || err2 != nil {
		d.log.Info("gbsim: RecordInfo without a valid time span", "start", q.StartTime, "end", q.EndTime)
		return nil
	}
	typ := strings.ToLower(strings.TrimSpace(q.Type))
	var out []manscdp.RecordItem
	for _, r := range d.cfg.Records {
		if q.DeviceID != d.cfg.DeviceID && r.Channel != q.DeviceID {
			continue
		}
		if !r.Start.Before(to) || !r.End.After(from) {
			continue
		}
		if typ != "" && typ != "all" && !strings.EqualFold(r.Type, typ) {
			continue
		}
		name := r.Channel
		if ch, ok := d.channel(r.Channel); ok {
			name = channelName(ch)
		}
		start, end := manscdp.FormatTime(r.Start, nil), manscdp.FormatTime(r.End, nil)
		out = append(out, manscdp.RecordItem{
			DeviceID:  r.Channel,
			Name:      name,
			FilePath:  fmt.Sprintf("/record/%s/%d.ps", r.Channel, r.Start.Unix()),
			StartTime: start,
			EndTime:   end,
			Secrecy:   "0",
			Type:      r.Type,
			FileSize:  int64(r.End.Sub(r.Start)/time.Second) * 64 << 10, // ~0.5 Mbit/s
		})
	}
	return out
}

func (d *Device) keepaliveBody() []byte {
	b, err := d.encode(manscdp.Keepalive(d.cfg.DeviceID, d.nextSN()))
	if err != nil {
		panic(err) // a constant message
	}
	return b
}

func (d *Device) alarmBody(ch Channel, alarmType, method int, at time.Time, desc string) ([]byte, error) {
	m := manscdp.Notify(manscdp.CmdAlarm, ch.ID, d.nextSN())
	m.AlarmPriority = "1"
	m.AlarmMethod = strconv.Itoa(method)
	m.AlarmTime = manscdp.FormatTime(at, nil)
	m.AlarmDescription = desc
	if !ch.NoPosition {
		m.Longitude, m.Latitude = d.position(ch)
	}
	m.Info = &manscdp.Info{AlarmType: strconv.Itoa(alarmType)}
	return d.encode(m)
}

// catalogNotifyBody is a catalog notification of one change: ADD and
// UPDATE carry the whole item, DEL only its ID.
func (d *Device) catalogNotifyBody(ch Channel, event string) ([]byte, error) {
	m := manscdp.Notify(manscdp.CmdCatalog, d.cfg.DeviceID, d.nextSN())
	it := manscdp.Item{DeviceID: ch.ID}
	if event != "DEL" {
		it = d.catalogItem(ch)
	}
	it.Event = event
	m.SumNum = 1
	m.DeviceList = &manscdp.ItemList{Num: 1, Items: []manscdp.Item{it}}
	return d.encode(m)
}

// mediaStatus tells the platform a playback of channel reached its end
// (NotifyType 121). The MESSAGE is the device's (From its ID, to the
// platform) but carries the Call-ID of the playback's INVITE, as devices
// send it: that is how a platform knows which playback ended.
func (d *Device) mediaStatus(ctx context.Context, channel, callID string) error {
	m := manscdp.Notify(manscdp.CmdMediaStatus, channel, d.nextSN())
	m.NotifyType = "121"
	body, err := d.encode(m)
	if err != nil {
		return err
	}
	req := d.newMessage(body)
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := d.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("gbsim: MediaStatus: %w", err)
	}
	if res.StatusCode != sip.StatusOK {
		return fmt.Errorf("gbsim: MediaStatus: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}
