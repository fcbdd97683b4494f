package manscdp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// eol ends each line of an encoded message, as devices write them.
const eol = "\r\n"

// Encode writes m with an XML declaration for charset: GB2312 (the
// standard's), GBK, GB18030 or UTF-8, in any case; "" is m.Charset, or
// GB2312 when that is empty too. Text is converted to the charset; a
// character the charset lacks (an emoji, or a GBK-only character in
// GB2312) is written as a character reference, so nothing is lost.
//
// Empty fields are left out, except CmdType, SN and DeviceID, SumNum in
// a Catalog or RecordInfo response or notification, and Channel in a
// DeviceInfo response. A list's Num is written as its number of items.
func Encode(m *Message, charset string) ([]byte, error) {
	if m == nil {
		return nil, errors.New("manscdp: nil message")
	}
	label := firstOf(charset, m.Charset, "GB2312")
	cs, ok := canonicalCharset(label)
	if !ok {
		return nil, fmt.Errorf("manscdp: charset %q is not GB2312, GBK, GB18030 or UTF-8", label)
	}
	root, ok := canonicalRoot(m.XMLName.Local)
	if !ok {
		return nil, fmt.Errorf("manscdp: root element <%s> is not Query, Control, Response or Notify", clip(m.XMLName.Local))
	}
	if strings.TrimSpace(m.CmdType) == "" {
		return nil, fmt.Errorf("manscdp: <%s> has no CmdType", root)
	}
	c := *m
	c.Alarmstatus = c.Alarmstatus.counted()
	c.DeviceList = c.DeviceList.counted()
	c.RecordList = c.RecordList.counted()
	c.PresetList = c.PresetList.counted()
	paged := (c.CmdType == CmdCatalog || c.CmdType == CmdRecordInfo) && (root == RootResponse || root == RootNotify)
	keep := func(name string) bool {
		switch name {
		case "SumNum":
			return paged
		case "Channel":
			return c.CmdType == CmdDeviceInfo && root == RootResponse
		}
		return false
	}

	var w writer
	w.WriteString(`<?xml version="1.0" encoding="` + cs + `"?>` + eol)
	w.WriteString("<" + root + ">" + eol)
	w.children(reflect.ValueOf(&c).Elem(), keep)
	w.WriteString("</" + root + ">" + eol)
	if cs == "UTF-8" {
		return w.Bytes(), nil
	}
	return toGB(w.Bytes(), cs), nil
}

// firstOf is the first non-empty string.
func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

type writer struct{ bytes.Buffer }

func never(string) bool { return false }

// children writes the fields of struct v; keep says which zero values
// of omitempty fields are written all the same.
func (w *writer) children(v reflect.Value, keep func(string) bool) {
	for _, f := range infoOf(v.Type()).elems {
		fv := v.Field(f.index)
		switch f.kind {
		case kString:
			if fv.String() != "" || !f.omitEmpty || keep(f.name) {
				w.leaf(f.name, fv.String())
			}
		case kInt:
			if fv.Int() != 0 || !f.omitEmpty || keep(f.name) {
				w.leaf(f.name, strconv.FormatInt(fv.Int(), 10))
			}
		case kStrings:
			for i := range fv.Len() {
				w.leaf(f.name, fv.Index(i).String())
			}
		case kStruct:
			if !fv.IsNil() {
				w.element(f.name, fv.Elem())
			}
		case kStructs:
			for i := range fv.Len() {
				w.element(f.name, fv.Index(i))
			}
		}
	}
}

// element writes struct v as the element name, with its attributes.
func (w *writer) element(name string, v reflect.Value) {
	si := infoOf(v.Type())
	w.WriteString("<" + name)
	for _, a := range si.attrs {
		fv := v.Field(a.index)
		s := ""
		if a.kind == kInt {
			s = strconv.FormatInt(fv.Int(), 10)
		} else if s = fv.String(); s == "" && a.omitEmpty {
			continue
		}
		w.WriteString(" " + a.name + `="`)
		xml.EscapeText(w, []byte(s))
		w.WriteString(`"`)
	}
	w.WriteString(">" + eol)
	w.children(v, never)
	w.WriteString("</" + name + ">" + eol)
}

// leaf writes <name>s</name>, s escaped (and invalid characters replaced).
func (w *writer) leaf(name, s string) {
	w.WriteString("<" + name + ">")
	xml.EscapeText(w, []byte(s))
	w.WriteString("</" + name + ">" + eol)
}

// toGB converts UTF-8 b (markup all ASCII) to GB2312, GBK or GB18030;
// characters the charset lacks become character references.
func toGB(b []byte, cs string) []byte {
	enc := simplifiedchinese.GBK.NewEncoder()
	if cs == "GB18030" {
		enc = simplifiedchinese.GB18030.NewEncoder()
	}
	out := make([]byte, 0, len(b))
	var src [utf8.UTFMax]byte
	var dst [8]byte
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			out = append(out, b[i])
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		n, _, err := enc.Transform(dst[:], src[:utf8.EncodeRune(src[:], r)], true)
		if err == nil && n > 0 && (cs != "GB2312" || isGB2312(dst[:n])) {
			out = append(out, dst[:n]...)
		} else {
			out = fmt.Appendf(out, "&#x%X;", r)
		}
	}
	return out
}

// isGB2312 reports whether a GBK character is in GB2312: two bytes in
// rows A1-A9 (symbols) or B0-F7 (hanzi), columns A1-FE.
func isGB2312(c []byte) bool {
	return len(c) == 2 && (c[0] >= 0xA1 && c[0] <= 0xA9 || c[0] >= 0xB0 && c[0] <= 0xF7) && c[1] >= 0xA1 && c[1] <= 0xFE
}
