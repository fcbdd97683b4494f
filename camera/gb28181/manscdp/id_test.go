package manscdp

import (
	"testing"
	"time"
)

func TestIDs(t *testing.T) {
	for _, c := range []struct {
		id           string
		valid        bool
		typ          int
		civil, centr string
		video        bool
	}{
		{"34020000001310000001", true, TypeCamera, "340200", "34020000", true},
		{"34020000001320000001", true, TypeIPC, "340200", "34020000", true},
		{"34020000001110000001", true, TypeDVR, "340200", "34020000", false},
		{"34020000001180000001", true, TypeNVR, "340200", "34020000", false},
		{"34020000002000000001", true, TypeSIPServer, "340200", "34020000", false},
		{"34020000002150000001", true, TypeBusinessGroup, "340200", "34020000", false},
		{"34020000002160000001", true, TypeVirtualOrg, "340200", "34020000", false},
		{"34020000001340000001", true, TypeAlarmInput, "340200", "34020000", false},
		{"340200", false, 0, "", "", false}, // a civil-code node
		{"3402000000131000000A", false, 0, "", "", false},
		{"340200000013100000011", false, 0, "", "", false},
		{"", false, 0, "", "", false},
	} {
		if ValidID(c.id) != c.valid || IDType(c.id) != c.typ || CivilCode(c.id) != c.civil || CentreCode(c.id) != c.centr {
			t.Errorf("%q: valid %v type %d civil %q centre %q", c.id, ValidID(c.id), IDType(c.id), CivilCode(c.id), CentreCode(c.id))
		}
		if got := (Item{DeviceID: c.id}).IsVideoChannel(); got != c.video {
			t.Errorf("%q: video channel %v", c.id, got)
		}
	}
	if got := IndustryCode("34020000051310000001"); got != "05" {
		t.Errorf("industry %q", got)
	}
}

func TestPosition(t *testing.T) {
	for _, c := range []struct {
		lon, lat string
		ok       bool
	}{
		{"117.227239", "31.820587", true},
		{" -73.9857 ", "40.7484", true},
		{"0", "51.4779", true}, // Greenwich
		{"180", "-90", true},
		{"0", "0", false},
		{"0.000", "0.0", false},
		{"", "31.8", false},
		{"117.2", "", false},
		{"180.0001", "31", false},
		{"117", "90.5", false},
		{"117.2E", "31.8N", false},
		{"NaN", "31", false},
		{"Inf", "31", false},
		{"0x1p3", "31", false},
		{"1e2", "31", true},
		{"东经117", "31", false},
	} {
		lon, lat, ok := Item{Longitude: c.lon, Latitude: c.lat}.Position()
		if ok != c.ok || !ok && (lon != 0 || lat != 0) {
			t.Errorf("%q %q: %v %v %v", c.lon, c.lat, lon, lat, ok)
		}
	}
}

func TestItemHelpers(t *testing.T) {
	for s, want := range map[string]bool{"ON": true, "on": true, "OK": true, "Online": true, " ON ": true, "OFF": false, "OFFLINE": false, "": false, "VLOST": false} {
		if (Item{Status: s}).Online() != want {
			t.Errorf("Status %q online %v", s, !want)
		}
	}
	for _, c := range []struct {
		it   Item
		want int
	}{
		{Item{Info: &ItemInfo{PTZType: "1"}}, PTZDome},
		{Item{PTZType: "3"}, PTZFixed},
		{Item{PTZType: "3", Info: &ItemInfo{PTZType: "4"}}, PTZRemoteFixed},
		{Item{PTZType: "2", Info: &ItemInfo{}}, PTZHemisphere},
		{Item{PTZType: "x"}, 0},
		{Item{}, 0},
	} {
		if got := c.it.PTZKind(); got != c.want {
			t.Errorf("%+v: PTZKind %d, want %d", c.it, got, c.want)
		}
	}
}

func TestTime(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	want := time.Date(2026, 12, 5, 10, 11, 12, 0, cst)
	for _, s := range []string{"2026-12-05T10:11:12", " 2026-12-05T10:11:12 ", "2026-12-05 10:11:12", "2026-12-05T02:11:12Z", "2026-12-05T10:11:12+08:00"} {
		got, err := ParseTime(s, cst)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	if got, err := ParseTime("2026-12-05T10:11:12.250", cst); err != nil || !got.Equal(want.Add(250*time.Millisecond)) {
		t.Errorf("fraction: %v %v", got, err)
	}
	for _, s := range []string{"", "2026-12-05", "10:11:12", "2026-13-05T10:11:12", "yesterday"} {
		if _, err := ParseTime(s, cst); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	if got := FormatTime(want.Add(300*time.Millisecond).UTC(), cst); got != "2026-12-05T10:11:12" {
		t.Errorf("FormatTime %q", got)
	}
	if got := FormatTime(want, time.UTC); got != "2026-12-05T02:11:12" {
		t.Errorf("FormatTime UTC %q", got)
	}
}
