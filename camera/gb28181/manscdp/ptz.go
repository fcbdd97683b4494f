package manscdp

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// A PTZCmd (Annex A.3) is 8 bytes written as 16 hex digits:
//
//	1  A5
//	2  high nibble version (0), low nibble check: (A + 5 + version) mod 16
//	3  address, low 8 bits
//	4  instruction
//	5  data 1
//	6  data 2
//	7  high nibble data 3, low nibble address high 4 bits
//	8  checksum: bytes 1-7 summed mod 256
//
// Instructions: 00-3F pan, tilt and zoom (bit 0 right, 1 left, 2 down,
// 3 up, 4 zoom in (tele), 5 zoom out (wide); 00 stop; data 1 pan speed,
// data 2 tilt speed, data 3 zoom speed); 40-4F focus and iris (bit 0
// focus far, 1 near, 2 iris open, 3 close; data 1 focus speed, data 2
// iris speed); 81, 82, 83 set, call, delete preset (data 2 the preset,
// 1-255); 84-88 cruise, 89-8A scan, 8C-8D auxiliary switch on and off.

// The preset operations of PTZ.PresetOp.
const (
	PresetNone   = 0
	PresetSet    = 1
	PresetCall   = 2
	PresetDelete = 3
)

// PTZ is a decoded PTZCmd. Cmd writes the first of these that is set:
// Code (with Data1-3), PresetOp (with Preset), Focus or Iris (with their
// speeds), else Pan, Tilt and Zoom with their speeds, or a stop when Stop
// is set or none moves.
type PTZ struct {
	Pan       int8  // +1 right, -1 left
	Tilt      int8  // +1 up, -1 down
	Zoom      int8  // +1 in (tele), -1 out (wide)
	PanSpeed  uint8 // 0-255
	TiltSpeed uint8 // 0-255
	ZoomSpeed uint8 // 0-15
	Stop      bool

	Focus      int8 // +1 far, -1 near
	Iris       int8 // +1 open, -1 close
	FocusSpeed uint8
	IrisSpeed  uint8

	Preset   uint8 // 1-255
	PresetOp int   // PresetNone, PresetSet, PresetCall or PresetDelete

	// Code is another instruction the standard defines (cruise 84-88,
	// scan 89-8A, auxiliary switch 8C-8D), sent with its data bytes as is.
	Code                uint8
	Data1, Data2, Data3 uint8 // Data3 is 4 bits

	Addr uint16 // 12 bits; platforms send 1, devices mostly ignore it
}

// Cmd is p as a PTZCmd: 16 upper-case hex digits.
func (p PTZ) Cmd() string {
	b := [8]byte{0: 0xA5, 1: 0x0F, 2: byte(p.Addr)}
	switch {
	case p.Code != 0:
		b[3], b[4], b[5], b[6] = p.Code, p.Data1, p.Data2, p.Data3<<4
	case p.PresetOp >= PresetSet && p.PresetOp <= PresetDelete:
		b[3], b[5] = 0x80+byte(p.PresetOp), p.Preset
	case p.Focus != 0 || p.Iris != 0:
		b[3] = 0x40 | dir(p.Focus, 0x01, 0x02) | dir(p.Iris, 0x04, 0x08)
		b[4], b[5] = p.FocusSpeed, p.IrisSpeed
	default:
		if !p.Stop {
			b[3] = dir(p.Pan, 0x01, 0x02) | dir(p.Tilt, 0x08, 0x04) | dir(p.Zoom, 0x10, 0x20)
		}
		b[4], b[5], b[6] = p.PanSpeed, p.TiltSpeed, p.ZoomSpeed<<4
	}
	b[6] |= byte(p.Addr>>8) & 0x0F
	b[7] = sum7(b)
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// dir is the instruction bit for a direction: plus for > 0, minus for < 0.
func dir(d int8, plus, minus byte) byte {
	switch {
	case d > 0:
		return plus
	case d < 0:
		return minus
	}
	return 0
}

func sum7(b [8]byte) byte {
	var s byte
	for _, c := range b[:7] {
		s += c
	}
	return s
}

// ParsePTZCmd reads a PTZCmd. It checks the length, the A5 lead, the
// check nibble and the checksum, and refuses an instruction the standard
// does not define or one moving two opposite ways at once. 40 (focus and
// iris with no bit set) reads as a stop. A preset number in data 1 with
// data 2 zero, as some platforms send it, is taken.
func ParsePTZCmd(s string) (PTZ, error) {
	s = strings.TrimSpace(s)
	if len(s) != 16 {
		return PTZ{}, fmt.Errorf("manscdp: PTZCmd %q has %d characters, want 16 hex digits", s, len(s))
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return PTZ{}, fmt.Errorf("manscdp: PTZCmd %q is not hexadecimal", s)
	}
	var b [8]byte
	copy(b[:], raw)
	if b[0] != 0xA5 {
		return PTZ{}, fmt.Errorf("manscdp: PTZCmd %q begins with %02X, want A5", s, b[0])
	}
	if check := (b[0]>>4 + b[0]&0x0F + b[1]>>4) & 0x0F; b[1]&0x0F != check {
		return PTZ{}, fmt.Errorf("manscdp: PTZCmd %q has check nibble %X, want %X", s, b[1]&0x0F, check)
	}
	if sum := sum7(b); b[7] != sum {
		return PTZ{}, fmt.Errorf("manscdp: PTZCmd %q has checksum %02X, want %02X", s, b[7], sum)
	}
	p := PTZ{Addr: uint16(b[2]) | uint16(b[6]&0x0F)<<8}
	c := b[3]
	opposite := func(mask byte, what string) error {
		if c&mask == mask {
			return fmt.Errorf("manscdp: PTZCmd %q instruction %02X %s", s, c, what)
		}
		return nil
	}
	switch {
	case c <= 0x40: // 40: focus and iris, nothing set: a stop
		for _, e := range []error{opposite(0x03, "moves both right and left"),
			opposite(0x0C, "moves both up and down"), opposite(0x30, "zooms both in and out")} {
			if e != nil {
				return PTZ{}, e
			}
		}
		p.Pan = pick(c, 0x01, 0x02)
		p.Tilt = pick(c, 0x08, 0x04)
		p.Zoom = pick(c, 0x10, 0x20)
		p.Stop = c&0x3F == 0
		p.PanSpeed, p.TiltSpeed, p.ZoomSpeed = b[4], b[5], b[6]>>4
	case c < 0x50:
		if err := opposite(0x03, "focuses both far and near"); err != nil {
			return PTZ{}, err
		}
		if err := opposite(0x0C, "both opens and closes the iris"); err != nil {
			return PTZ{}, err
		}
		p.Focus = pick(c, 0x01, 0x02)
		p.Iris = pick(c, 0x04, 0x08)
		p.FocusSpeed, p.IrisSpeed = b[4], b[5]
	case c >= 0x81 && c <= 0x83:
		p.PresetOp = int(c - 0x80)
		p.Preset = b[5]
		if p.Preset == 0 {
			p.Preset = b[4]
		}
	case c >= 0x84 && c <= 0x8A, c == 0x8C, c == 0x8D:
		p.Code, p.Data1, p.Data2, p.Data3 = c, b[4], b[5], b[6]>>4
	default:
		return PTZ{}, fmt.Errorf("manscdp: PTZCmd %q has unknown instruction %02X", s, c)
	}
	return p, nil
}

// pick is the direction an instruction's bits give: +1, -1 or 0.
func pick(c, plus, minus byte) int8 {
	switch {
	case c&plus != 0:
		return 1
	case c&minus != 0:
		return -1
	}
	return 0
}
