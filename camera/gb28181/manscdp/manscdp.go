// Package manscdp decodes and encodes MANSCDP messages, the XML bodies of
// the SIP MESSAGE, NOTIFY and SUBSCRIBE requests of GB/T 28181-2016
// (Content-Type Application/MANSCDP+xml, Annex A), for both sides: the
// platform and a device.
//
// A message's root is Query, Control, Response or Notify; every message
// has CmdType, SN and DeviceID, and the fields of its command. One
// Message type holds them all: the fields a command does not use are
// empty and are left out on encode.
//
// Devices are loose with the standard, so decoding is lenient where that
// costs nothing: element names match whatever their case (DeviceId,
// AlarmStatus), values are trimmed, unknown elements are skipped, a bare
// '&' is taken literally, a number that is not one inside a list item
// reads as 0, and the charset is taken from the bytes when the
// declaration lies. It is strict where a wrong guess would mislead: the
// root, CmdType, SN and DeviceID must be there, the message's own numbers
// (SN, SumNum, Channel, ...) must be numbers, and DTDs are refused.
package manscdp

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// The roots of a message.
const (
	RootQuery    = "Query"
	RootControl  = "Control"
	RootResponse = "Response"
	RootNotify   = "Notify"
)

// The command types of Annex A (CmdType).
const (
	CmdCatalog        = "Catalog"
	CmdKeepalive      = "Keepalive"
	CmdDeviceInfo     = "DeviceInfo"
	CmdDeviceStatus   = "DeviceStatus"
	CmdRecordInfo     = "RecordInfo"
	CmdAlarm          = "Alarm"
	CmdDeviceControl  = "DeviceControl"
	CmdDeviceConfig   = "DeviceConfig"
	CmdConfigDownload = "ConfigDownload"
	CmdPresetQuery    = "PresetQuery"
	CmdMobilePosition = "MobilePosition"
	CmdMediaStatus    = "MediaStatus"
	CmdBroadcast      = "Broadcast"
)

// cmdTypes are the known command types, by lower-case name, so that a
// device's "keepalive" reads as Keepalive.
var cmdTypes = func() map[string]string {
	m := map[string]string{}
	for _, c := range []string{CmdCatalog, CmdKeepalive, CmdDeviceInfo, CmdDeviceStatus, CmdRecordInfo,
		CmdAlarm, CmdDeviceControl, CmdDeviceConfig, CmdConfigDownload, CmdPresetQuery,
		CmdMobilePosition, CmdMediaStatus, CmdBroadcast} {
		m[strings.ToLower(c)] = c
	}
	return m
}()

// Message is any MANSCDP message. Fields are in the order the standard
// writes them; those a command does not use are empty and not encoded.
// Codes the standard writes as digits but uses as enumerations (alarm
// priority, method and type, Secrecy, ...) are kept as strings, exactly as
// sent; counts are ints.
type Message struct {
	XMLName  xml.Name // Local is the root: Query, Control, Response or Notify
	CmdType  string
	SN       int
	DeviceID string

	// DeviceInfo response; Name is also the RecordInfo response's device name.
	DeviceName   string `xml:",omitempty"`
	Name         string `xml:",omitempty"`
	Result       string `xml:",omitempty"` // OK or ERROR
	Manufacturer string `xml:",omitempty"`
	Model        string `xml:",omitempty"`
	Firmware     string `xml:",omitempty"`
	Channel      int    `xml:",omitempty"` // encoded even when 0 in a DeviceInfo response

	// DeviceStatus response; Status is also Keepalive's (OK).
	Online      string           `xml:",omitempty"` // ONLINE or OFFLINE
	Status      string           `xml:",omitempty"` // OK or ERROR
	Reason      string           `xml:",omitempty"`
	Encode      string           `xml:",omitempty"` // ON or OFF
	Record      string           `xml:",omitempty"` // ON or OFF
	DeviceTime  string           `xml:",omitempty"`
	Alarmstatus *AlarmStatusList `xml:",omitempty"` // so spelt in the standard

	// RecordInfo query (StartTime and EndTime also bound a Catalog query).
	StartTime       string `xml:",omitempty"` // local time, TimeLayout
	EndTime         string `xml:",omitempty"`
	FilePath        string `xml:",omitempty"`
	Address         string `xml:",omitempty"`
	Secrecy         string `xml:",omitempty"`
	Type            string `xml:",omitempty"` // time, alarm, manual or all
	RecorderID      string `xml:",omitempty"`
	IndistinctQuery string `xml:",omitempty"`

	// Catalog, RecordInfo and PresetQuery responses, Catalog notifications.
	// SumNum is the total over all the messages of a paged answer; it is
	// encoded even when 0 in a Catalog or RecordInfo response or notify.
	SumNum     int         `xml:",omitempty"`
	DeviceList *ItemList   `xml:",omitempty"`
	RecordList *RecordList `xml:",omitempty"`
	PresetList *PresetList `xml:",omitempty"`

	// DeviceControl.
	PTZCmd       string        `xml:",omitempty"` // see PTZ
	TeleBoot     string        `xml:",omitempty"` // Boot
	RecordCmd    string        `xml:",omitempty"` // Record or StopRecord
	GuardCmd     string        `xml:",omitempty"` // SetGuard or ResetGuard
	AlarmCmd     string        `xml:",omitempty"` // ResetAlarm
	IFameCmd     string        `xml:",omitempty"` // Send; so spelt in the standard
	DragZoomIn   *DragZoom     `xml:",omitempty"`
	DragZoomOut  *DragZoom     `xml:",omitempty"`
	HomePosition *HomePosition `xml:",omitempty"`

	// DeviceConfig control and ConfigDownload query and response.
	BasicParam *BasicParam `xml:",omitempty"`
	ConfigType string      `xml:",omitempty"` // BasicParam, VideoParamOpt, ...

	// Alarm query (Start/End*) and notification. AlarmType at this level
	// is the query's; a notification's is Info.AlarmType, though some
	// devices put it here.
	StartAlarmPriority string `xml:",omitempty"`
	EndAlarmPriority   string `xml:",omitempty"`
	AlarmPriority      string `xml:",omitempty"` // 1 (highest) to 4
	AlarmMethod        string `xml:",omitempty"` // 1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 fault, 7 other
	AlarmType          string `xml:",omitempty"`
	StartAlarmTime     string `xml:",omitempty"`
	EndAlarmTime       string `xml:",omitempty"`
	AlarmTime          string `xml:",omitempty"`
	AlarmDescription   string `xml:",omitempty"`

	// MobilePosition notification (Time ... Altitude) and query
	// (Interval, seconds); Longitude and Latitude are also an alarm's.
	Time      string `xml:",omitempty"`
	Longitude string `xml:",omitempty"`
	Latitude  string `xml:",omitempty"`
	Speed     string `xml:",omitempty"`
	Direction string `xml:",omitempty"`
	Altitude  string `xml:",omitempty"`
	Interval  int    `xml:",omitempty"`

	// Broadcast notification; MediaStatus notification (121: end of file).
	SourceID   string `xml:",omitempty"`
	TargetID   string `xml:",omitempty"`
	NotifyType string `xml:",omitempty"`

	Info *Info `xml:",omitempty"`

	// Charset is what Decode read the body as: UTF-8, or GB2312, GBK or
	// GB18030 as declared (GB18030 when undeclared); an all-ASCII body
	// declared GB keeps its declaration. Encode uses it when given no
	// charset, so that a reply goes in the device's own charset.
	Charset string `xml:"-"`
}

// Info is a message's Info element; what it holds depends on the command.
type Info struct {
	AlarmMethod     string          `xml:",omitempty"` // DeviceControl ResetAlarm
	AlarmType       string          `xml:",omitempty"` // Alarm notification, ResetAlarm
	AlarmTypeParam  *AlarmTypeParam `xml:",omitempty"`
	ControlPriority string          `xml:",omitempty"` // DeviceControl PTZ
	DeviceID        []string        `xml:",omitempty"` // Keepalive: faulty channels
}

// AlarmTypeParam qualifies an alarm type: EventType 1 entering, 2 leaving
// (intrusion alarms).
type AlarmTypeParam struct {
	EventType string `xml:",omitempty"`
}

// List is a list element such as <DeviceList Num="2"><Item>…</Item>…;
// Num is the number of items in this message (Encode writes len(Items)).
type List[T any] struct {
	Num   int `xml:",attr"`
	Items []T `xml:"Item"`
}

// The lists of the standard.
type (
	ItemList        = List[Item]        // Catalog DeviceList
	RecordList      = List[RecordItem]  // RecordInfo RecordList
	AlarmStatusList = List[AlarmStatus] // DeviceStatus Alarmstatus
	PresetList      = List[Preset]      // PresetQuery PresetList
)

// counted is a copy of l whose Num is its number of items.
func (l *List[T]) counted() *List[T] {
	if l == nil {
		return nil
	}
	c := *l
	c.Num = len(c.Items)
	return &c
}

// Item is a catalog item (Annex A, the catalog's itemType): a device,
// a channel, a civil-code node, a business group or a virtual
// organisation. Values are kept as sent, trimmed. Event is set in catalog
// notifications (ON, OFF, VLOST, DEFECT, ADD, DEL, UPDATE).
type Item struct {
	DeviceID     string
	Event        string `xml:",omitempty"`
	Name         string `xml:",omitempty"`
	Manufacturer string `xml:",omitempty"`
	Model        string `xml:",omitempty"`
	Owner        string `xml:",omitempty"`
	CivilCode    string `xml:",omitempty"`
	Block        string `xml:",omitempty"`
	Address      string `xml:",omitempty"`
	Parental     string `xml:",omitempty"` // 1: has children
	ParentID     string `xml:",omitempty"` // may be several IDs separated by '/'
	SafetyWay    string `xml:",omitempty"`
	RegisterWay  string `xml:",omitempty"`
	CertNum      string `xml:",omitempty"`
	Certifiable  string `xml:",omitempty"`
	ErrCode      string `xml:",omitempty"`
	EndTime      string `xml:",omitempty"`
	Secrecy      string `xml:",omitempty"`
	IPAddress    string `xml:",omitempty"`
	Port         string `xml:",omitempty"`
	Password     string `xml:",omitempty"`
	Status       string `xml:",omitempty"` // ON or OFF (older devices: OK, ONLINE, OFFLINE)
	Longitude    string `xml:",omitempty"`
	Latitude     string `xml:",omitempty"`
	// PTZType and BusinessGroupID belong in Info in 2016; some devices
	// put them here.
	PTZType         string    `xml:",omitempty"`
	BusinessGroupID string    `xml:",omitempty"`
	Info            *ItemInfo `xml:",omitempty"`
}

// ItemInfo is a catalog item's Info: a camera's extended attributes.
type ItemInfo struct {
	PTZType             string `xml:",omitempty"` // see PTZKind
	PositionType        string `xml:",omitempty"`
	RoomType            string `xml:",omitempty"`
	UseType             string `xml:",omitempty"`
	SupplyLightType     string `xml:",omitempty"`
	DirectionType       string `xml:",omitempty"`
	Resolution          string `xml:",omitempty"`
	BusinessGroupID     string `xml:",omitempty"`
	DownloadSpeed       string `xml:",omitempty"`
	SVCSpaceSupportMode string `xml:",omitempty"`
	SVCTimeSupportMode  string `xml:",omitempty"`
}

// The camera types of ItemInfo.PTZType.
const (
	PTZDome        = 1 // 球机
	PTZHemisphere  = 2 // 半球
	PTZFixed       = 3 // 固定枪机
	PTZRemoteFixed = 4 // 遥控枪机
)

// RecordItem is a recording in a RecordInfo response.
type RecordItem struct {
	DeviceID   string
	Name       string `xml:",omitempty"`
	FilePath   string `xml:",omitempty"`
	Address    string `xml:",omitempty"`
	StartTime  string `xml:",omitempty"`
	EndTime    string `xml:",omitempty"`
	Secrecy    string `xml:",omitempty"`
	Type       string `xml:",omitempty"` // time, alarm or manual
	RecorderID string `xml:",omitempty"`
	FileSize   int64  `xml:",omitempty"` // bytes
}

// AlarmStatus is a DeviceStatus response's alarm input state.
type AlarmStatus struct {
	DeviceID   string
	DutyStatus string `xml:",omitempty"` // ONDUTY, OFFDUTY or ALARM
}

// Preset is a PresetQuery response's preset.
type Preset struct {
	PresetID   string
	PresetName string `xml:",omitempty"`
}

// DragZoom is a DeviceControl's DragZoomIn or DragZoomOut: the window
// (pixels) to zoom to or from.
type DragZoom struct {
	Length, Width        int // of the picture shown
	MidPointX, MidPointY int
	LengthX, LengthY     int // of the window
}

// HomePosition is a DeviceControl's home position (看守位) setting.
type HomePosition struct {
	Enabled     string // 1 on, 0 off
	ResetTime   string `xml:",omitempty"` // seconds
	PresetIndex string `xml:",omitempty"`
}

// BasicParam is a DeviceConfig's or ConfigDownload response's basic
// parameters.
type BasicParam struct {
	Name              string `xml:",omitempty"`
	Expiration        int    `xml:",omitempty"` // registration, seconds
	HeartBeatInterval int    `xml:",omitempty"` // seconds
	HeartBeatCount    int    `xml:",omitempty"`
}

// New is a message with the given root, command, device and SN.
func New(root, cmd, deviceID string, sn int) *Message {
	return &Message{XMLName: xml.Name{Local: root}, CmdType: cmd, SN: sn, DeviceID: deviceID}
}

// Query is a Query for cmd to deviceID.
func Query(cmd, deviceID string, sn int) *Message { return New(RootQuery, cmd, deviceID, sn) }

// Control is a Control (DeviceControl, DeviceConfig) to deviceID.
func Control(cmd, deviceID string, sn int) *Message { return New(RootControl, cmd, deviceID, sn) }

// Notify is a Notify from deviceID.
func Notify(cmd, deviceID string, sn int) *Message { return New(RootNotify, cmd, deviceID, sn) }

// Response is a Response from deviceID.
func Response(cmd, deviceID string, sn int) *Message { return New(RootResponse, cmd, deviceID, sn) }

// Keepalive is a device's keepalive notification (Status OK).
func Keepalive(deviceID string, sn int) *Message {
	m := Notify(CmdKeepalive, deviceID, sn)
	m.Status = "OK"
	return m
}

// PTZControl is a DeviceControl to channel carrying p.
func PTZControl(channel string, sn int, p PTZ) *Message {
	m := Control(CmdDeviceControl, channel, sn)
	m.PTZCmd = p.Cmd()
	return m
}

// Root is the message's root element name.
func (m *Message) Root() string { return m.XMLName.Local }

// Is reports whether m has the given root and command.
func (m *Message) Is(root, cmd string) bool { return m.XMLName.Local == root && m.CmdType == cmd }

// Reply is the Response to m: same CmdType, SN and DeviceID, and the
// same charset.
func (m *Message) Reply() *Message {
	r := Response(m.CmdType, m.DeviceID, m.SN)
	r.Charset = m.Charset
	return r
}

// ReplyResult is the Response to m with Result OK or ERROR, as a device
// answers a control or a platform an alarm notification.
func (m *Message) ReplyResult(ok bool) *Message {
	r := m.Reply()
	r.Result = "ERROR"
	if ok {
		r.Result = "OK"
	}
	return r
}

// CatalogReplies are the Responses to a Catalog query m: items, per to a
// message (a device sends a long catalog in several messages, each small
// enough for a UDP datagram), each with SumNum the total. No items is
// one reply with SumNum 0 and an empty DeviceList. per < 1 means all in
// one.
func (m *Message) CatalogReplies(items []Item, per int) []*Message {
	return pages(m, items, per, func(r *Message, page []Item) {
		r.DeviceList = &ItemList{Num: len(page), Items: page}
	})
}

// RecordReplies are the Responses to a RecordInfo query m, paged as by
// CatalogReplies; name is the device's name.
func (m *Message) RecordReplies(name string, items []RecordItem, per int) []*Message {
	return pages(m, items, per, func(r *Message, page []RecordItem) {
		r.Name = name
		r.RecordList = &RecordList{Num: len(page), Items: page}
	})
}

func pages[T any](m *Message, items []T, per int, set func(*Message, []T)) []*Message {
	if per < 1 {
		per = max(len(items), 1)
	}
	var out []*Message
	for i := 0; i == 0 || i < len(items); i += per {
		page := items[i:min(i+per, len(items))]
		r := m.Reply()
		r.SumNum = len(items)
		set(r, page)
		out = append(out, r)
	}
	return out
}

// Position is the message's Longitude and Latitude (an alarm's, a mobile
// position's), as by Item.Position.
func (m *Message) Position() (lon, lat float64, ok bool) {
	return position(m.Longitude, m.Latitude)
}

// Position is the item's Longitude and Latitude in degrees. ok is false
// when either is absent, empty or not a decimal number, when they are out
// of range, or when both are 0 (what devices send for "not set").
func (it Item) Position() (lon, lat float64, ok bool) {
	return position(it.Longitude, it.Latitude)
}

// Online reports whether the item's Status says online: ON, or OK or
// ONLINE as older devices send, in any case.
func (it Item) Online() bool {
	s := strings.TrimSpace(it.Status)
	return strings.EqualFold(s, "ON") || strings.EqualFold(s, "OK") || strings.EqualFold(s, "ONLINE")
}

// IsVideoChannel reports whether the item is a video channel: its ID is
// a valid 20-digit code whose type (digits 11-13, Annex D) is 131
// (camera) or 132 (network camera). DVRs (111), NVRs (118), encoders
// (113), business groups (215), virtual organisations (216), civil-code
// nodes (IDs shorter than 20 digits) and alarm inputs (134) are not.
func (it Item) IsVideoChannel() bool {
	t := IDType(it.DeviceID)
	return t == TypeCamera || t == TypeIPC
}

// PTZKind is the camera type (PTZDome ... PTZRemoteFixed) from
// Info.PTZType, or PTZType directly in the item; 0 when unknown.
func (it Item) PTZKind() int {
	s := it.PTZType
	if it.Info != nil && strings.TrimSpace(it.Info.PTZType) != "" {
		s = it.Info.PTZType
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// position parses a longitude and latitude pair; see Item.Position.
func position(lonS, latS string) (lon, lat float64, ok bool) {
	lon, ok1 := degrees(lonS)
	lat, ok2 := degrees(latS)
	if !ok1 || !ok2 || lon < -180 || lon > 180 || lat < -90 || lat > 90 || (lon == 0 && lat == 0) {
		return 0, 0, false
	}
	return lon, lat, true
}

// degrees parses a plain decimal number (no hex, NaN or Inf, which
// strconv.ParseFloat would take).
func degrees(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '.', c == '-', c == '+', c == 'e', c == 'E':
		default:
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}
