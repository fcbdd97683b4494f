package manscdp

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func TestPTZCmd(t *testing.T) {
	for _, c := range []struct {
		name string
		p    PTZ
		cmd  string
	}{
		// A5+0F+01 = B5.
		{"stop", PTZ{Stop: true, Addr: 1}, "A50F0100000000B5"},
		{"no motion is a stop", PTZ{Addr: 1}, "A50F0100000000B5"},
		// B5+01+80 = 136.
		{"right 0x80", PTZ{Pan: 1, PanSpeed: 0x80, Addr: 1}, "A50F010180000036"},
		// B5+0A+40+20 = 11F.
		{"up left", PTZ{Pan: -1, Tilt: 1, PanSpeed: 0x40, TiltSpeed: 0x20, Addr: 1}, "A50F010A4020001F"},
		// B5+24+10+10+30 = 129 (down 04, zoom out 20, zoom speed 3).
		{"down zoom out", PTZ{Tilt: -1, Zoom: -1, PanSpeed: 0x10, TiltSpeed: 0x10, ZoomSpeed: 3, Addr: 1}, "A50F012410103029"},
		// B5+10+10 = D5.
		{"zoom in", PTZ{Zoom: 1, ZoomSpeed: 1, Addr: 1}, "A50F0110000010D5"},
		// B5+82+03 = 13A; the preset is data 2.
		{"call preset 3", PTZ{PresetOp: PresetCall, Preset: 3, Addr: 1}, "A50F01820003003A"},
		// B5+81+FF = 235.
		{"set preset 255", PTZ{PresetOp: PresetSet, Preset: 255, Addr: 1}, "A50F018100FF0035"},
		// B5+83+01 = 139.
		{"delete preset 1", PTZ{PresetOp: PresetDelete, Preset: 1, Addr: 1}, "A50F018300010039"},
		// B5+41+10 = 106.
		{"focus far", PTZ{Focus: 1, FocusSpeed: 0x10, Addr: 1}, "A50F014110000006"},
		// B5+48+30 = 12D.
		{"iris close", PTZ{Iris: -1, IrisSpeed: 0x30, Addr: 1}, "A50F01480030002D"},
		// B5+88+01 = 13E.
		{"start cruise 1", PTZ{Code: 0x88, Data1: 1, Addr: 1}, "A50F01880100003E"},
		// A5+0F+23+01 = D8: address 0x123.
		{"address 0x123", PTZ{Stop: true, Addr: 0x123}, "A50F2300000001D8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.Cmd(); got != c.cmd {
				t.Fatalf("Cmd %s, want %s", got, c.cmd)
			}
			if sum := checksum(t, c.cmd); sum != c.cmd[14:] {
				t.Fatalf("fixture checksum %s, computed %s", c.cmd[14:], sum)
			}
			p, err := ParsePTZCmd(strings.ToLower(c.cmd) + " ")
			if err != nil {
				t.Fatal(err)
			}
			want := c.p
			if want == (PTZ{Addr: 1}) {
				want.Stop = true
			}
			if p != want {
				t.Errorf("parsed %+v, want %+v", p, want)
			}
		})
	}
}

// checksum sums the first 7 bytes of a hex command independently.
func checksum(t *testing.T, cmd string) string {
	b, err := hex.DecodeString(cmd[:14])
	if err != nil {
		t.Fatal(err)
	}
	s := 0
	for _, c := range b {
		s += int(c)
	}
	return fmt.Sprintf("%02X", s%256)
}

func TestParsePTZCmd(t *testing.T) {
	// A preset in data 1, as some platforms send it.
	p, err := ParsePTZCmd("A50F0182030000" + "3A")
	if err != nil || p.PresetOp != PresetCall || p.Preset != 3 {
		t.Errorf("preset in data 1: %+v %v", p, err)
	}
	// 40 is a stop.
	if p, err := ParsePTZCmd("A50F0140000000F5"); err != nil || !p.Stop {
		t.Errorf("40: %+v %v", p, err)
	}
	for _, c := range []struct{ cmd, want string }{
		{"A50F0100000000B6", "checksum B6, want B5"},
		{"A50F01000000B5", "has 14 characters, want 16 hex digits"},
		{"A50F0100000000B5A5", "has 18 characters"},
		{"", "has 0 characters"},
		{"A50F01000000G0B5", "not hexadecimal"},
		{"A60F0100000000B6", "begins with A6, want A5"},
		{"A50E0100000000B4", "check nibble E, want F"},
		{"A50F0103000000B8", "moves both right and left"},
		{"A50F010C000000C1", "moves both up and down"},
		{"A50F0130000000E5", "zooms both in and out"},
		{"A50F0143000000F8", "focuses both far and near"},
		{"A50F014C00000001", "both opens and closes the iris"},
		{"A50F019000000045", "unknown instruction 90"},
	} {
		if _, err := ParsePTZCmd(c.cmd); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "manscdp: PTZCmd") {
			t.Errorf("%s: error %v, want %q", c.cmd, err, c.want)
		}
	}
}
