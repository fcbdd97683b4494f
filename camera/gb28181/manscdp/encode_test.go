package manscdp

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// normal is m as a re-decode gives it: charset aside, Num the item count.
func normal(m *Message) Message {
	c := *m
	c.Charset = ""
	c.Alarmstatus = c.Alarmstatus.counted()
	c.DeviceList = c.DeviceList.counted()
	c.RecordList = c.RecordList.counted()
	c.PresetList = c.PresetList.counted()
	return c
}

var charsets = []string{"GB2312", "GBK", "GB18030", "UTF-8"}

// Every fixture survives Encode and Decode in every charset, Chinese and
// all.
func TestRoundTrip(t *testing.T) {
	for name, body := range fixtures(t) {
		m := decode(t, body)
		for _, cs := range charsets {
			t.Run(name+"/"+cs, func(t *testing.T) {
				out, err := Encode(m, cs)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(out, []byte(`<?xml version="1.0" encoding="`+cs+`"?>`+"\r\n")) {
					t.Errorf("declaration %q", out[:min(len(out), 50)])
				}
				got := decode(t, out)
				if got.Charset != cs {
					t.Errorf("read back as %s", got.Charset)
				}
				if a, b := normal(got), normal(m); !reflect.DeepEqual(a, b) {
					t.Errorf("round trip changed the message:\n got %+v\nwant %+v\n%s", a, b, out)
				}
			})
		}
	}
}

// Built messages, as the SIP layer and the simulated device make them,
// round-trip too.
func TestRoundTripBuilt(t *testing.T) {
	q := Query(CmdCatalog, "34020000001180000001", 7)
	items := []Item{
		{DeviceID: "34020000001310000001", Name: "大门 \"东\" <1> & 2", Manufacturer: "gbsim", Parental: "0", RegisterWay: "1", Secrecy: "0", Status: "ON",
			Longitude: "117.1", Latitude: "31.8", Info: &ItemInfo{PTZType: "1"}},
		{DeviceID: "34020000001310000002", Name: "門口📷", Parental: "0", RegisterWay: "1", Secrecy: "0", Status: "OFF"},
	}
	ctl := PTZControl("34020000001310000001", 9, PTZ{Tilt: 1, TiltSpeed: 0x40, Addr: 1})
	ctl.Info = &Info{ControlPriority: "5"}
	status := Response(CmdDeviceStatus, "34020000001180000001", 10)
	status.Result, status.Online, status.Status = "OK", "ONLINE", "OK"
	status.Alarmstatus = &AlarmStatusList{Items: []AlarmStatus{{DeviceID: "34020000001340000001", DutyStatus: "ONDUTY"}}}
	cfg := Control(CmdDeviceConfig, "34020000001180000001", 11)
	cfg.BasicParam = &BasicParam{Name: "一号", Expiration: 3600, HeartBeatInterval: 60, HeartBeatCount: 3}
	zoom := Control(CmdDeviceControl, "34020000001310000001", 12)
	zoom.DragZoomIn = &DragZoom{Length: 1080, Width: 1920, MidPointX: 0, MidPointY: 540, LengthX: 200, LengthY: 100}
	zoom.HomePosition = &HomePosition{Enabled: "0"}
	presets := Response(CmdPresetQuery, "34020000001310000001", 13)
	presets.PresetList = &PresetList{Items: []Preset{{PresetID: "1", PresetName: "门口"}, {PresetID: "2"}}}
	msgs := append(q.CatalogReplies(items, 1), q, Keepalive("34020000001180000001", 8), ctl, status, cfg, zoom, presets)
	for i, m := range msgs {
		for _, cs := range charsets {
			out, err := Encode(m, cs)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := normal(decode(t, out)), normal(m); !reflect.DeepEqual(a, b) {
				t.Errorf("message %d in %s:\n got %+v\nwant %+v\n%s", i, cs, a, b, out)
			}
		}
	}
}

func TestEncodeLayout(t *testing.T) {
	out, err := Encode(Keepalive("34020000001320000001", 1), "UTF-8")
	if err != nil {
		t.Fatal(err)
	}
	want := "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>1</SN>\r\n" +
		"<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
	if string(out) != want {
		t.Errorf("keepalive\n%s\nwant\n%s", out, want)
	}

	// A catalog answer with nothing still says SumNum 0, with an empty
	// list; a query has neither; SN 0 is written.
	q := Query(CmdCatalog, "34020000001180000001", 0)
	replies := q.CatalogReplies(nil, 10)
	if len(replies) != 1 {
		t.Fatalf("%d replies to an empty catalog", len(replies))
	}
	out, _ = Encode(replies[0], "GB2312")
	for _, s := range []string{"<SN>0</SN>", "<SumNum>0</SumNum>", `<DeviceList Num="0">`} {
		if !strings.Contains(string(out), s) {
			t.Errorf("empty catalog lacks %s:\n%s", s, out)
		}
	}
	out, _ = Encode(q, "GB2312")
	if strings.Contains(string(out), "SumNum") || strings.Contains(string(out), "DeviceList") {
		t.Errorf("query has a SumNum or DeviceList:\n%s", out)
	}
	info := q.Reply()
	info.CmdType = CmdDeviceInfo
	if out, _ = Encode(info, "UTF-8"); !strings.Contains(string(out), "<Channel>0</Channel>") {
		t.Errorf("DeviceInfo without Channel:\n%s", out)
	}

	// Num is the number of items, whatever it was set to.
	m := Response(CmdCatalog, "1", 1)
	m.SumNum = 9
	m.DeviceList = &ItemList{Num: 5, Items: []Item{{DeviceID: "2"}, {DeviceID: "3"}}}
	if out, _ = Encode(m, "UTF-8"); !strings.Contains(string(out), `<DeviceList Num="2">`) || m.DeviceList.Num != 5 {
		t.Errorf("Num:\n%s", out)
	}
}

// Characters a charset lacks become character references.
func TestEncodeCharsets(t *testing.T) {
	m := Response(CmdDeviceInfo, "34020000001180000001", 1)
	m.DeviceName = "东門📷"
	for _, c := range []struct {
		charset string
		refs    []string // character references expected
	}{
		{"GB2312", []string{"&#x9580;", "&#x1F4F7;"}},
		{"gbk", []string{"&#x1F4F7;"}},
		{"gb18030", nil},
	} {
		out, err := Encode(m, c.charset)
		if err != nil {
			t.Fatal(err)
		}
		if utf8.Valid(out) {
			t.Errorf("%s: output is UTF-8", c.charset)
		}
		if !bytes.Contains(out, gbBytes(t, "东")) {
			t.Errorf("%s: no GB 东", c.charset)
		}
		if n := strings.Count(string(out), "&#x"); n != len(c.refs) {
			t.Errorf("%s: %d references, want %v:\n%q", c.charset, n, c.refs, out)
		}
		for _, r := range c.refs {
			if !strings.Contains(string(out), r) {
				t.Errorf("%s: no %s", c.charset, r)
			}
		}
		if got := decode(t, out); got.DeviceName != m.DeviceName {
			t.Errorf("%s: read back %q", c.charset, got.DeviceName)
		}
	}
	// No charset: the message's own, else GB2312.
	m.Charset = "UTF-8"
	if out, _ := Encode(m.Reply(), ""); !bytes.Contains(out, []byte(`encoding="UTF-8"`)) {
		t.Errorf("reply not in the message's charset:\n%s", out)
	}
	m.Charset = ""
	if out, _ := Encode(m, ""); !bytes.Contains(out, []byte(`encoding="GB2312"`)) {
		t.Errorf("default not GB2312:\n%s", out)
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := Query(CmdCatalog, "1", 1)
	for _, c := range []struct {
		m       *Message
		charset string
		want    string
	}{
		{nil, "UTF-8", "nil message"},
		{ok, "latin1", `charset "latin1" is not GB2312, GBK, GB18030 or UTF-8`},
		{&Message{CmdType: "Catalog"}, "UTF-8", "root element <> is not"},
		{New("Foo", "Catalog", "1", 1), "UTF-8", "root element <Foo> is not"},
		{New("Query", " ", "1", 1), "UTF-8", "<Query> has no CmdType"},
	} {
		if _, err := Encode(c.m, c.charset); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestReplies(t *testing.T) {
	q := Query(CmdCatalog, "34020000001180000001", 42)
	q.Charset = "GBK"
	var items []Item
	for i := range 5 {
		items = append(items, Item{DeviceID: "3402000000131000000" + string(rune('1'+i))})
	}
	rs := q.CatalogReplies(items, 2)
	if len(rs) != 3 {
		t.Fatalf("%d replies, want 3", len(rs))
	}
	var got []Item
	for i, r := range rs {
		if !r.Is(RootResponse, CmdCatalog) || r.SN != 42 || r.DeviceID != q.DeviceID || r.SumNum != 5 || r.Charset != "GBK" {
			t.Errorf("reply %d: %+v", i, r)
		}
		if r.DeviceList.Num != len(r.DeviceList.Items) || len(r.DeviceList.Items) != []int{2, 2, 1}[i] {
			t.Errorf("reply %d has %d items (Num %d)", i, len(r.DeviceList.Items), r.DeviceList.Num)
		}
		got = append(got, r.DeviceList.Items...)
	}
	if !reflect.DeepEqual(got, items) {
		t.Errorf("items %v", got)
	}
	if rs := q.CatalogReplies(items, 0); len(rs) != 1 || len(rs[0].DeviceList.Items) != 5 {
		t.Errorf("per 0: %d replies", len(rs))
	}
	rq := Query(CmdRecordInfo, "34020000001310000001", 3)
	rs = rq.RecordReplies("东门", nil, 10)
	if len(rs) != 1 || rs[0].SumNum != 0 || rs[0].Name != "东门" || rs[0].RecordList == nil {
		t.Errorf("empty record reply %+v", rs)
	}
	ctl := Control(CmdDeviceControl, "34020000001310000001", 4)
	if r := ctl.ReplyResult(true); !r.Is(RootResponse, CmdDeviceControl) || r.Result != "OK" || r.SN != 4 {
		t.Errorf("%+v", r)
	}
	if r := ctl.ReplyResult(false); r.Result != "ERROR" {
		t.Errorf("%+v", r)
	}
}
