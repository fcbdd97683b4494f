package manscdp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// MaxBody is the largest body Decode reads.
const MaxBody = 1 << 20

const (
	// maxDepth bounds element nesting; a message needs 5 (Response,
	// DeviceList, Item, Info, PTZType).
	maxDepth = 32
	// maxItems bounds the list items of a message (about 4 MiB of Items):
	// 1 MiB of <Item/> would otherwise be 150,000 of them.
	maxItems = 10000
)

// ErrTooLarge is returned (wrapped) for a body over MaxBody.
var ErrTooLarge = errors.New("manscdp: body too large")

// Decode parses a body. The charset is that of the XML declaration
// (GB2312, GBK, GB18030 or UTF-8, in any case; GB text is read as
// GB18030, their superset) unless the bytes say otherwise: valid UTF-8 is
// read as UTF-8 whatever is declared (devices declare GB2312 and send
// UTF-8), except when declared GB and every non-ASCII character would be
// below U+0800 (Latin, Greek, Cyrillic: short GB2312 Chinese text that
// happens to be valid UTF-8), and anything else is read as GB18030.
//
// DTDs and entity declarations are refused (encoding/xml never expands
// them, but there is no reason to accept one); a '&' that does not begin
// a predefined or character reference is taken literally. Values are
// trimmed. Errors name what is wrong; see the package comment for what
// is strict.
func Decode(body []byte) (*Message, error) {
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(body), MaxBody)
	}
	text, charset, err := toUTF8(body)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(text)) == 0 {
		return nil, errors.New("manscdp: empty body")
	}
	d := &decoder{x: xml.NewDecoder(bytes.NewReader(escapeAmpersands(text)))}
	// The text is UTF-8 now, whatever the declaration says.
	d.x.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	start, err := d.root()
	if err != nil {
		return nil, err
	}
	root, ok := canonicalRoot(start.Name.Local)
	if !ok {
		return nil, fmt.Errorf("manscdp: root element <%s> is not Query, Control, Response or Notify", clip(start.Name.Local))
	}
	m := &Message{XMLName: xml.Name{Local: root}, Charset: charset}
	v := reflect.ValueOf(m).Elem()
	top := map[string]string{}
	if err := d.fill(v, infoOf(v.Type()), "", false, top); err != nil {
		return nil, err
	}
	// What follows the root (devices pad with NULs or newlines) is ignored.
	if m.CmdType == "" {
		return nil, fmt.Errorf("manscdp: <%s> has no CmdType", root)
	}
	if c, ok := cmdTypes[strings.ToLower(m.CmdType)]; ok {
		m.CmdType = c
	}
	if top["sn"] == "" {
		return nil, fmt.Errorf("manscdp: <%s> has no SN", root)
	}
	if m.DeviceID == "" {
		return nil, fmt.Errorf("manscdp: <%s> has no DeviceID", root)
	}
	return m, nil
}

// canonicalRoot is the root's standard spelling, whatever its case.
func canonicalRoot(name string) (string, bool) {
	for _, r := range []string{RootQuery, RootControl, RootResponse, RootNotify} {
		if strings.EqualFold(name, r) {
			return r, true
		}
	}
	return "", false
}

type decoder struct {
	x     *xml.Decoder
	depth int // open elements
	items int // list items read
}

// token is the next token. io.EOF comes back as is only outside the root;
// XML errors come back named; a DTD is refused.
func (d *decoder) token() (xml.Token, error) {
	tok, err := d.x.Token()
	if err != nil {
		if err == io.EOF && d.depth == 0 {
			return nil, io.EOF
		}
		var se *xml.SyntaxError
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &se) && se.Msg == "unexpected EOF" {
			return nil, errors.New("manscdp: truncated XML: the body ends inside an element")
		}
		return nil, fmt.Errorf("manscdp: malformed XML: %v", err)
	}
	switch t := tok.(type) {
	case xml.StartElement:
		d.depth++
		if d.depth > maxDepth {
			return nil, fmt.Errorf("manscdp: elements nested more than %d deep", maxDepth)
		}
	case xml.EndElement:
		d.depth--
	case xml.Directive:
		return nil, fmt.Errorf("manscdp: DTD or entity declaration <!%s> not allowed", clip(string(t)))
	}
	return tok, nil
}

// root reads up to the root element's start.
func (d *decoder) root() (xml.StartElement, error) {
	for {
		tok, err := d.token()
		if err == io.EOF {
			return xml.StartElement{}, errors.New("manscdp: no root element")
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
		}
	}
}

// fill reads the children of the element whose start was just read into
// the struct v, up to its end. path names the element in errors; lenient
// makes a bad number 0 rather than an error (in list items). top, when
// not nil, records the text of v's scalar elements by lower-case name.
func (d *decoder) fill(v reflect.Value, si *structInfo, path string, lenient bool, top map[string]string) error {
	for {
		tok, err := d.token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			f := si.elem(t.Name.Local)
			if f == nil {
				if err := d.skip(); err != nil {
					return err
				}
				continue
			}
			if err := d.field(v.Field(f.index), f, t, join(path, f.name), lenient, top); err != nil {
				return err
			}
		}
	}
}

// field reads one element into the field fv.
func (d *decoder) field(fv reflect.Value, f *field, start xml.StartElement, path string, lenient bool, top map[string]string) error {
	switch f.kind {
	case kString, kInt, kStrings:
		s, err := d.text()
		if err != nil {
			return err
		}
		if top != nil {
			top[strings.ToLower(f.name)] = s
		}
		switch f.kind {
		case kString:
			fv.SetString(s)
		case kInt:
			return setInt(fv, s, path, lenient)
		case kStrings:
			if err := d.count(); err != nil {
				return err
			}
			fv.Set(reflect.Append(fv, reflect.ValueOf(s)))
		}
	case kStruct:
		// A second element of the same name adds to the first.
		if fv.IsNil() {
			fv.Set(reflect.New(f.elem))
		}
		return d.element(fv.Elem(), start, path, lenient)
	case kStructs:
		if err := d.count(); err != nil {
			return err
		}
		e := reflect.New(f.elem).Elem()
		if err := d.element(e, start, path, true); err != nil {
			return err
		}
		fv.Set(reflect.Append(fv, e))
	}
	return nil
}

// element reads the attributes and children of the element started by
// start into the struct v.
func (d *decoder) element(v reflect.Value, start xml.StartElement, path string, lenient bool) error {
	si := infoOf(v.Type())
	for _, a := range start.Attr {
		f := si.attrsBy[strings.ToLower(a.Name.Local)]
		if f == nil {
			continue
		}
		s := strings.TrimSpace(a.Value)
		if f.kind == kString {
			v.Field(f.index).SetString(s)
		} else if err := setInt(v.Field(f.index), s, path+" "+f.name, lenient); err != nil {
			return err
		}
	}
	return d.fill(v, si, path, lenient, nil)
}

// text is an element's trimmed text, up to its end; child elements are
// skipped.
func (d *decoder) text() (string, error) {
	var b []byte
	for {
		tok, err := d.token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			b = append(b, t...)
		case xml.StartElement:
			if err := d.skip(); err != nil {
				return "", err
			}
		case xml.EndElement:
			return string(bytes.TrimSpace(b)), nil
		}
	}
}

// skip reads up to the end of the element just started.
func (d *decoder) skip() error {
	for n := 1; n > 0; {
		tok, err := d.token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			n++
		case xml.EndElement:
			n--
		}
	}
	return nil
}

func (d *decoder) count() error {
	d.items++
	if d.items > maxItems {
		return fmt.Errorf("manscdp: more than %d list items", maxItems)
	}
	return nil
}

func setInt(v reflect.Value, s, path string, lenient bool) error {
	if s == "" {
		v.SetInt(0)
		return nil
	}
	n, err := strconv.ParseInt(s, 10, v.Type().Bits())
	switch {
	case err == nil:
		v.SetInt(n)
	case lenient:
		v.SetInt(0)
	case errors.Is(err, strconv.ErrRange):
		return fmt.Errorf("manscdp: %s %q is out of range", path, clip(s))
	default:
		return fmt.Errorf("manscdp: %s %q is not a number", path, clip(s))
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "/" + name
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// toUTF8 is the body as UTF-8 and the charset it was read as; see Decode.
func toUTF8(body []byte) ([]byte, string, error) {
	b := body
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		b = b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return nil, "", errors.New("manscdp: UTF-16 body (byte order mark) not supported")
	}
	declared := declaredCharset(b)
	gb := declared == "GB2312" || declared == "GBK" || declared == "GB18030"
	if utf8.Valid(b) && !(gb && gbLookalike(b)) {
		if gb && ascii(b) {
			return b, declared, nil // both: keep the device's word
		}
		return b, "UTF-8", nil
	}
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
	if err != nil {
		return nil, "", fmt.Errorf("manscdp: body is neither UTF-8 nor GB18030: %v", err)
	}
	if !gb {
		declared = "GB18030"
	}
	return out, declared, nil
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// gbLookalike reports whether valid UTF-8 b, declared GB, is more likely
// GB text: it has non-ASCII characters, all below U+0800 (Chinese in
// UTF-8 is 3 bytes a character), and reads as GB18030 without errors.
func gbLookalike(b []byte) bool {
	non := false
	for _, r := range string(b) {
		if r >= 0x800 {
			return false
		}
		if r >= 0x80 {
			non = true
		}
	}
	if !non {
		return false
	}
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
	return err == nil && !bytes.ContainsRune(out, utf8.RuneError)
}

// declaredCharset is the canonical name of the charset the XML
// declaration at the start of b names, or "" (none or unknown).
func declaredCharset(b []byte) string {
	b = bytes.TrimLeft(b, " \t\r\n")
	if !bytes.HasPrefix(b, []byte("<?xml")) {
		return ""
	}
	end := bytes.Index(b, []byte("?>"))
	if end < 0 {
		return ""
	}
	decl := string(b[:end])
	// ASCII lower case, byte by byte, keeps the offsets (strings.ToLower
	// would not, on invalid UTF-8).
	lower := []byte(decl)
	for j, c := range lower {
		if c >= 'A' && c <= 'Z' {
			lower[j] = c + 'a' - 'A'
		}
	}
	i := bytes.Index(lower, []byte("encoding"))
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(decl[i+len("encoding"):], " \t\r\n")
	rest, ok := strings.CutPrefix(rest, "=")
	rest = strings.TrimLeft(rest, " \t\r\n")
	if !ok || rest == "" || (rest[0] != '"' && rest[0] != '\'') {
		return ""
	}
	label, _, ok := strings.Cut(rest[1:], rest[:1])
	if !ok {
		return ""
	}
	c, _ := canonicalCharset(label)
	return c
}

// canonicalCharset is the name Encode writes for a charset label.
func canonicalCharset(label string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8":
		return "UTF-8", true
	case "gb2312", "gb_2312", "gb_2312-80", "euc-cn", "x-euc-cn", "csgb2312":
		return "GB2312", true
	case "gbk", "cp936", "ms936", "windows-936", "x-gbk":
		return "GBK", true
	case "gb18030":
		return "GB18030", true
	}
	return "", false
}

// escapeAmpersands replaces each '&' that does not begin a predefined
// entity or character reference by "&amp;", outside CDATA sections:
// devices put names such as "R&D" in unescaped.
func escapeAmpersands(b []byte) []byte {
	if bytes.IndexByte(b, '&') < 0 {
		return b
	}
	cdataOpen, cdataClose := []byte("<![CDATA["), []byte("]]>")
	out := make([]byte, 0, len(b)+64)
	for i := 0; i < len(b); {
		switch {
		case b[i] == '<' && bytes.HasPrefix(b[i:], cdataOpen):
			n := bytes.Index(b[i:], cdataClose)
			if n < 0 {
				n = len(b) - i
			} else {
				n += len(cdataClose)
			}
			out = append(out, b[i:i+n]...)
			i += n
		case b[i] == '&' && !isReference(b[i+1:]):
			out = append(out, "&amp;"...)
			i++
		default:
			out = append(out, b[i])
			i++
		}
	}
	return out
}

// isReference reports whether b (what follows a '&') begins a predefined
// entity or character reference.
func isReference(b []byte) bool {
	end := bytes.IndexByte(b[:min(len(b), 12)], ';')
	if end <= 0 {
		return false
	}
	name := string(b[:end])
	switch name {
	case "amp", "lt", "gt", "quot", "apos":
		return true
	}
	digits, ok := strings.CutPrefix(name, "#")
	if !ok {
		return false
	}
	digits, hexa := strings.CutPrefix(digits, "x")
	if digits == "" {
		return false
	}
	for _, c := range digits {
		switch {
		case c >= '0' && c <= '9':
		case hexa && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
		default:
			return false
		}
	}
	return true
}
