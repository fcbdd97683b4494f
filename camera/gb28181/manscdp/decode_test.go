package manscdp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func decode(t *testing.T, body []byte) *Message {
	t.Helper()
	m, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The same catalog in GB2312 (built, and raw in a file), UTF-8, and UTF-8
// declared GB2312 reads the same.
func TestDecodeCatalog(t *testing.T) {
	fx := fixtures(t)
	for name, charset := range map[string]string{"catalog": "GB2312", "catalog-file": "GB2312", "catalog-utf8": "UTF-8", "catalog-lying": "UTF-8"} {
		t.Run(name, func(t *testing.T) {
			body := fx[name]
			if name == "catalog" && utf8.Valid(body) {
				t.Fatal("the GB2312 fixture is valid UTF-8")
			}
			m := decode(t, body)
			if m.Root() != RootResponse || m.CmdType != CmdCatalog || m.SN != 248 || m.DeviceID != "34020000001180000001" {
				t.Fatalf("header %s %s %d %s", m.Root(), m.CmdType, m.SN, m.DeviceID)
			}
			if m.Charset != charset {
				t.Errorf("charset %s, want %s", m.Charset, charset)
			}
			if m.DeviceList == nil || len(m.DeviceList.Items) < 2 {
				t.Fatalf("device list %+v", m.DeviceList)
			}
			if name == "catalog-file" {
				// The file has a third item, an alarm input.
				if m.SumNum != 3 || m.DeviceList.Num != 3 || len(m.DeviceList.Items) != 3 {
					t.Fatalf("SumNum %d Num %d items %d, want 3", m.SumNum, m.DeviceList.Num, len(m.DeviceList.Items))
				}
				if it := m.DeviceList.Items[2]; it.Name != "红外报警" || it.IsVideoChannel() {
					t.Errorf("third item %q, video channel %v", it.Name, it.IsVideoChannel())
				}
			} else if m.SumNum != 2 || m.DeviceList.Num != 2 || len(m.DeviceList.Items) != 2 {
				t.Fatalf("SumNum %d Num %d items %d, want 2", m.SumNum, m.DeviceList.Num, len(m.DeviceList.Items))
			}
			a, b := m.DeviceList.Items[0], m.DeviceList.Items[1]
			if a.Name != "东门入口球机" || a.Manufacturer != "海康威视" || a.Address != "合肥市蜀山区长江西路" || b.Name != "停车场（北）" {
				t.Errorf("names %q %q %q %q", a.Name, a.Manufacturer, a.Address, b.Name)
			}
			if a.Parental != "0" || a.RegisterWay != "1" || a.Secrecy != "0" || a.ParentID != "34020000001180000001" {
				t.Errorf("item fields %+v", a)
			}
			if a.Info == nil || a.Info.PTZType != "1" || a.PTZKind() != PTZDome {
				t.Errorf("PTZType %+v", a.Info)
			}
			if lon, lat, ok := a.Position(); !ok || lon != 117.227239 || lat != 31.820587 {
				t.Errorf("position %v %v %v", lon, lat, ok)
			}
			if _, _, ok := b.Position(); ok {
				t.Error("0,0 is a position")
			}
			if !a.IsVideoChannel() || !b.IsVideoChannel() || !a.Online() || b.Online() {
				t.Errorf("video %v %v online %v %v", a.IsVideoChannel(), b.IsVideoChannel(), a.Online(), b.Online())
			}
		})
	}
}

func TestDecodeLoose(t *testing.T) {
	m := decode(t, []byte(catalogLooseBody))
	if m.SN != 17 || m.DeviceID != "34020000001180000001" || m.SumNum != 1 || m.Charset != "UTF-8" {
		t.Fatalf("SN %d DeviceID %q SumNum %d charset %s", m.SN, m.DeviceID, m.SumNum, m.Charset)
	}
	if m.DeviceList == nil || m.DeviceList.Num != 1 || len(m.DeviceList.Items) != 1 {
		t.Fatalf("device list %+v", m.DeviceList)
	}
	it := m.DeviceList.Items[0]
	if it.DeviceID != "34020000001310000005" || it.Name != "R&D 实验室 & 走廊 摄像" {
		t.Errorf("item %q %q", it.DeviceID, it.Name)
	}
	if it.PTZKind() != PTZFixed || it.Port != "none" || !it.Online() {
		t.Errorf("PTZ %d port %q online %v", it.PTZKind(), it.Port, it.Online())
	}
	if lon, lat, ok := it.Position(); !ok || lon != 121.4737 || lat != 31.2304 {
		t.Errorf("position %v %v %v", lon, lat, ok)
	}
	// A root and command in other cases read as the standard's.
	m = decode(t, []byte(`<notify><cmdtype>keepalive</cmdtype><sn>1</sn><deviceid>34020000001180000001</deviceid><status>OK</status></notify>`))
	if !m.Is(RootNotify, CmdKeepalive) || m.Status != "OK" {
		t.Errorf("%s %s %q", m.Root(), m.CmdType, m.Status)
	}
	// A bad number inside a list item reads as 0; the rest stays.
	m = decode(t, []byte(`<Response><CmdType>RecordInfo</CmdType><SN>1</SN><DeviceID>1</DeviceID><SumNum>1</SumNum>`+
		`<RecordList Num="1"><Item><DeviceID>2</DeviceID><FileSize>12 MB</FileSize><Type>time</Type></Item></RecordList></Response>`))
	if r := m.RecordList.Items[0]; r.FileSize != 0 || r.Type != "time" {
		t.Errorf("record %+v", r)
	}
	// CDATA is text; a '&' in it stays one.
	m = decode(t, []byte(`<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>1</DeviceID><AlarmDescription><![CDATA[a & <b>]]></AlarmDescription></Notify>`))
	if m.AlarmDescription != "a & <b>" {
		t.Errorf("CDATA %q", m.AlarmDescription)
	}
}

func TestDecodeMessages(t *testing.T) {
	fx := fixtures(t)
	loc := time.FixedZone("CST", 8*3600)
	checks := map[string]func(t *testing.T, m *Message){
		"keepalive": func(t *testing.T, m *Message) {
			if !m.Is(RootNotify, CmdKeepalive) || m.Status != "OK" || m.Info == nil || len(m.Info.DeviceID) != 2 || m.Info.DeviceID[1] != "34020000001310000003" {
				t.Errorf("%+v %+v", m, m.Info)
			}
		},
		"device-info": func(t *testing.T, m *Message) {
			if !m.Is(RootResponse, CmdDeviceInfo) || m.DeviceName != "一号楼录像机" || m.Result != "OK" || m.Manufacturer != "Hikvision" ||
				m.Model != "DS-7808N-K1" || m.Firmware != "V4.30.005 build 200101" || m.Channel != 8 {
				t.Errorf("%+v", m)
			}
		},
		"gb18030": func(t *testing.T, m *Message) {
			if m.DeviceName != "一号楼录像机📷" || m.Charset != "GB18030" {
				t.Errorf("%q %s", m.DeviceName, m.Charset)
			}
		},
		"device-status": func(t *testing.T, m *Message) {
			if !m.Is(RootResponse, CmdDeviceStatus) || m.Online != "ONLINE" || m.Status != "OK" || m.Encode != "ON" || m.Record != "OFF" || m.DeviceTime != "2026-12-05T10:11:12" {
				t.Errorf("%+v", m)
			}
			if a := m.Alarmstatus; a == nil || a.Num != 2 || len(a.Items) != 2 || a.Items[1].DutyStatus != "ALARM" || a.Items[1].DeviceID != "34020000001340000002" {
				t.Errorf("Alarmstatus %+v", a)
			}
		},
		"record-query": func(t *testing.T, m *Message) {
			if !m.Is(RootQuery, CmdRecordInfo) || m.StartTime != "2026-12-05T00:00:00" || m.EndTime != "2026-12-05T23:59:59" || m.Type != "all" || m.Secrecy != "0" {
				t.Errorf("%+v", m)
			}
		},
		"record": func(t *testing.T, m *Message) {
			if !m.Is(RootResponse, CmdRecordInfo) || m.Name != "东门入口球机" || m.SumNum != 2 || m.RecordList == nil || len(m.RecordList.Items) != 2 {
				t.Fatalf("%+v", m)
			}
			a, b := m.RecordList.Items[0], m.RecordList.Items[1]
			if a.FileSize != 524288000 || a.Address != "合肥" || a.FilePath != "/record/ch1/0000.ps" || a.Type != "time" || b.Type != "alarm" || b.RecorderID != "34020000001180000001" {
				t.Errorf("%+v %+v", a, b)
			}
			from, err := ParseTime(a.StartTime, loc)
			if err != nil || !from.Equal(time.Date(2026, 12, 5, 0, 0, 0, 0, loc)) {
				t.Errorf("start %v %v", from, err)
			}
		},
		"alarm": func(t *testing.T, m *Message) {
			if !m.Is(RootNotify, CmdAlarm) || m.AlarmPriority != "1" || m.AlarmMethod != "5" || m.AlarmTime != "2026-12-05T10:11:12" || m.AlarmDescription != "区域入侵" {
				t.Errorf("%+v", m)
			}
			if m.Info == nil || m.Info.AlarmType != "6" || m.Info.AlarmTypeParam == nil || m.Info.AlarmTypeParam.EventType != "1" {
				t.Errorf("Info %+v", m.Info)
			}
			if lon, lat, ok := m.Position(); !ok || lon != 117.227239 || lat != 31.820587 {
				t.Errorf("position %v %v %v", lon, lat, ok)
			}
		},
		"catalog-notify": func(t *testing.T, m *Message) {
			if !m.Is(RootNotify, CmdCatalog) || m.SumNum != 2 || m.DeviceList == nil || len(m.DeviceList.Items) != 2 {
				t.Fatalf("%+v", m)
			}
			a, b := m.DeviceList.Items[0], m.DeviceList.Items[1]
			if a.Event != "OFF" || b.Event != "ADD" || b.Name != "新增通道" || !b.Online() {
				t.Errorf("%+v %+v", a, b)
			}
		},
		"control": func(t *testing.T, m *Message) {
			if !m.Is(RootControl, CmdDeviceControl) || m.Info == nil || m.Info.ControlPriority != "5" {
				t.Fatalf("%+v", m)
			}
			p, err := ParsePTZCmd(m.PTZCmd)
			if err != nil || p != (PTZ{Pan: 1, PanSpeed: 0x80, Addr: 1}) {
				t.Errorf("%+v %v", p, err)
			}
		},
		"mobile-position": func(t *testing.T, m *Message) {
			if !m.Is(RootNotify, CmdMobilePosition) || m.Time != "2026-12-05T10:11:12" || m.Speed != "36.5" || m.Direction != "90" || m.Altitude != "52" {
				t.Errorf("%+v", m)
			}
			if lon, lat, ok := m.Position(); !ok || lon != 116.397128 || lat != 39.916527 {
				t.Errorf("position %v %v %v", lon, lat, ok)
			}
		},
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) { check(t, decode(t, fx[name])) })
	}
}

// Charset detection beyond the declaration.
func TestDecodeCharset(t *testing.T) {
	const body = `<?xml version="1.0" encoding="%s"?><Response><CmdType>DeviceInfo</CmdType><SN>1</SN><DeviceID>1</DeviceID><DeviceName>%s</DeviceName></Response>`
	mk := func(charset, name string) string {
		return strings.Replace(strings.Replace(body, "%s", charset, 1), "%s", name, 1)
	}
	// 模 in GB2312 is C4 A3, which is also valid UTF-8 (U+0123): declared
	// GB, the short name is taken as GB.
	short := gbBytes(t, mk("gb2312", "模"))
	if !utf8.Valid(short) {
		t.Fatal("fixture is not valid UTF-8")
	}
	if m := decode(t, short); m.DeviceName != "模" || m.Charset != "GB2312" {
		t.Errorf("short GB name read as %q (%s)", m.DeviceName, m.Charset)
	}
	// Undeclared GB bytes read as GB18030.
	m := decode(t, gbBytes(t, strings.Replace(mk("", "东门"), ` encoding=""`, "", 1)))
	if m.DeviceName != "东门" || m.Charset != "GB18030" {
		t.Errorf("undeclared GB read as %q (%s)", m.DeviceName, m.Charset)
	}
	// GBK declared: a character GB2312 lacks.
	if m := decode(t, gbBytes(t, mk("GBK", "門"))); m.DeviceName != "門" || m.Charset != "GBK" {
		t.Errorf("GBK read as %q (%s)", m.DeviceName, m.Charset)
	}
	// Declared UTF-8, sent GB: the bytes win.
	if m := decode(t, gbBytes(t, mk("UTF-8", "东门"))); m.DeviceName != "东门" || m.Charset != "GB18030" {
		t.Errorf("GB declared UTF-8 read as %q (%s)", m.DeviceName, m.Charset)
	}
	// ASCII declared GB2312 keeps the declaration.
	if m := decode(t, []byte(mk("GB2312", "NVR"))); m.Charset != "GB2312" {
		t.Errorf("ASCII charset %s", m.Charset)
	}
}

func TestDecodeErrors(t *testing.T) {
	const head = `<Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>34020000001180000001</DeviceID>`
	bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
		`<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">` +
		`<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>` +
		`<Query><CmdType>&lol9;</CmdType><SN>1</SN><DeviceID>1</DeviceID></Query>`
	many := `<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>1</DeviceID><DeviceList>` +
		strings.Repeat("<Item/>", maxItems+1) + `</DeviceList></Response>`
	cases := []struct {
		name, body, want string
	}{
		{"oversize", "<Query>" + strings.Repeat(" ", MaxBody) + "</Query>", "body too large"},
		{"entity bomb", bomb, "DTD or entity declaration <!DOCTYPE lolz"},
		{"entity", `<!ENTITY x "y"><Query/>`, "DTD or entity declaration"},
		{"bad root", `<Foo><CmdType>Catalog</CmdType></Foo>`, "root element <Foo> is not Query, Control, Response or Notify"},
		{"SN not a number", `<Query><CmdType>Catalog</CmdType><SN>x</SN><DeviceID>1</DeviceID></Query>`, `SN "x" is not a number`},
		{"SN out of range", `<Query><CmdType>Catalog</CmdType><SN>99999999999999999999</SN><DeviceID>1</DeviceID></Query>`, `SN "99999999999999999999" is out of range`},
		{"no SN", `<Query><CmdType>Catalog</CmdType><DeviceID>1</DeviceID></Query>`, "<Query> has no SN"},
		{"empty SN", `<Query><CmdType>Catalog</CmdType><SN> </SN><DeviceID>1</DeviceID></Query>`, "<Query> has no SN"},
		{"no CmdType", `<Query><SN>1</SN><DeviceID>1</DeviceID></Query>`, "<Query> has no CmdType"},
		{"no DeviceID", `<Notify><CmdType>Keepalive</CmdType><SN>1</SN></Notify>`, "<Notify> has no DeviceID"},
		{"SumNum", `<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>1</DeviceID><SumNum>two</SumNum></Response>`, `SumNum "two" is not a number`},
		{"Num", `<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>1</DeviceID><DeviceList Num="x"/></Response>`, `DeviceList Num "x" is not a number`},
		{"nested number", head + `<Info><ControlPriority>high</ControlPriority></Info></Query>`, ""},
		{"truncated", catalogBody[:len(catalogBody)/2], "truncated XML"},
		{"truncated tag", head + "<SumN", "truncated XML"},
		{"empty", "", "empty body"},
		{"blank", " \r\n\t", "empty body"},
		{"no root", `<?xml version="1.0"?><!-- nothing -->`, "no root element"},
		{"mismatched", `<Query><CmdType>Catalog</SN></Query>`, "malformed XML"},
		{"deep", head + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + "</Query>", "nested more than 32 deep"},
		{"many items", many, "more than 10000 list items"},
		{"utf-16", "\xFF\xFE<\x00Q\x00", "UTF-16"},
		{"version", `<?xml version="2.0"?><Query/>`, "malformed XML"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode([]byte(c.body))
			if c.want == "" {
				// ControlPriority is a string: no error.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, decoded %+v", m)
			}
			if !strings.HasPrefix(err.Error(), "manscdp: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to say %q", err, c.want)
			}
		})
	}
	if _, err := Decode(bytes.Repeat([]byte{' '}, MaxBody+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
}

// A catalog of about 1 MiB: how long it takes and how much it allocates.
func BenchmarkDecodeCatalog(b *testing.B) {
	var items []Item
	for i := range 2000 {
		items = append(items, Item{DeviceID: "34020000001310000001", Name: "东门入口球机 " + strings.Repeat("x", i%20), Manufacturer: "海康威视",
			Parental: "0", RegisterWay: "1", Secrecy: "0", Status: "ON", Longitude: "117.227239", Latitude: "31.820587", Info: &ItemInfo{PTZType: "1"}})
	}
	r := Response(CmdCatalog, "34020000001180000001", 1)
	r.SumNum, r.DeviceList = len(items), &ItemList{Items: items}
	body, err := Encode(r, "GB2312")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
