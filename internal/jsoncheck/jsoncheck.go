// Package jsoncheck is the text check every JSON body goes through before
// it is decoded: no string (value or key) may hold a NUL, every string must
// be valid UTF-8 (raw bytes and \u escapes alike), and nothing may follow the
// document. encoding/json accepts all three — it decodes "\u0000", replaces
// bad bytes and lone surrogates with U+FFFD and, with a Decoder, stops after
// the first value — so without this a NUL reached PostgreSQL (which refuses
// it with an internal error), bad text was stored altered, and a second
// document was silently dropped.
//
// Syntax errors are not reported here: Check stops where the syntax breaks
// and returns nil, so the caller's decoder reports them with its own
// position. The scanner keeps its nesting on a slice, never on the call
// stack, so any depth costs memory in proportion to the input only.
package jsoncheck

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"gridwatch"
)

// Reasons a body is refused, in the details of Check's error.
const (
	ReasonNUL          = "nul_character"
	ReasonInvalidUTF8  = "invalid_utf8"
	ReasonTrailingData = "trailing_data"
)

type frame struct {
	array bool
	index int
	key   []byte // the raw key (between the quotes) of the current member
}

type scanner struct {
	data  []byte
	pos   int
	stack []frame
}

// Check scans one JSON document (data) and returns an invalid error naming
// the first string holding a NUL or invalid UTF-8 by its JSON path (such as
// features[3].properties.name or note; details field, reason and offset), or
// trailing data after the document. It returns nil for a clean document and
// for one with a syntax error.
func Check(data []byte) error {
	s := &scanner{data: data}
	return s.run()
}

func (s *scanner) run() error {
	for {
		// A value is expected at s.pos.
		s.skipSpace()
		if s.pos >= len(s.data) {
			return nil // empty or truncated: the decoder says so
		}
		switch c := s.data[s.pos]; {
		case c == '{':
			s.pos++
			s.stack = append(s.stack, frame{})
			s.skipSpace()
			if s.pos < len(s.data) && s.data[s.pos] == '}' {
				s.pos++
				s.stack = s.stack[:len(s.stack)-1]
				break
			}
			if ok, err := s.member(); !ok || err != nil {
				return err
			}
			continue
		case c == '[':
			s.pos++
			s.stack = append(s.stack, frame{array: true})
			s.skipSpace()
			if s.pos < len(s.data) && s.data[s.pos] == ']' {
				s.pos++
				s.stack = s.stack[:len(s.stack)-1]
				break
			}
			continue
		case c == '"':
			end, reason, at := s.str()
			if end < 0 {
				return nil
			}
			if reason != "" {
				return s.problem(reason, at, s.path())
			}
			s.pos = end
		default:
			// A number or a literal; the decoder validates its spelling.
			start := s.pos
			for s.pos < len(s.data) && isLiteralByte(s.data[s.pos]) {
				s.pos++
			}
			if s.pos == start {
				return nil
			}
		}
		// A value ended: close what it ends, then expect the next one.
		for {
			if len(s.stack) == 0 {
				return s.end()
			}
			s.skipSpace()
			if s.pos >= len(s.data) {
				return nil
			}
			top := &s.stack[len(s.stack)-1]
			c := s.data[s.pos]
			s.pos++
			switch {
			case c == ',' && top.array:
				top.index++
			case c == ',':
				if ok, err := s.member(); !ok || err != nil {
					return err
				}
			case c == ']' && top.array, c == '}' && !top.array:
				s.stack = s.stack[:len(s.stack)-1]
				continue
			default:
				return nil
			}
			break
		}
	}
}

// member reads an object member's key and colon; ok false is a syntax
// error (left to the decoder).
func (s *scanner) member() (bool, error) {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return false, nil
	}
	start := s.pos
	end, reason, at := s.str()
	if end < 0 {
		return false, nil
	}
	top := &s.stack[len(s.stack)-1]
	top.key = s.data[start+1 : end-1]
	if reason != "" {
		return false, s.problem(reason, at, s.path())
	}
	s.pos = end
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return false, nil
	}
	s.pos++
	return true, nil
}

// end checks that only white space follows the document.
func (s *scanner) end() error {
	docEnd := s.pos
	s.skipSpace()
	if s.pos >= len(s.data) {
		return nil
	}
	// The scanner does not check numbers and literals; a document that is
	// itself broken is the decoder's to report.
	if !json.Valid(s.data[:docEnd]) {
		return nil
	}
	line, col := LineColumn(s.data, s.pos)
	return gridwatch.Errorf(gridwatch.EInvalid, "trailing data after the JSON document at line %d, column %d: send one JSON document", line, col).
		WithDetails(map[string]any{"reason": ReasonTrailingData, "offset": s.pos, "line": line, "column": col})
}

// str scans the string starting at s.pos (a quote). It returns the offset
// after the closing quote (-1 on a syntax error) and, for a string holding
// a NUL or invalid UTF-8, the reason and the offset of the fault.
func (s *scanner) str() (end int, reason string, at int) {
	d := s.data
	i := s.pos + 1
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			return i + 1, reason, at
		case c == '\\':
			if i+1 >= len(d) {
				return -1, "", 0
			}
			if d[i+1] != 'u' {
				i += 2
				continue
			}
			r, ok := hex4(d, i+2)
			if !ok {
				return -1, "", 0
			}
			next := i + 6
			switch {
			case r == 0:
				reason, at = firstReason(reason, at, ReasonNUL, i)
			case r >= 0xD800 && r < 0xDC00:
				// A high surrogate must be followed by an escaped low one.
				if lo, ok := hexAfterEscape(d, next); ok && lo >= 0xDC00 && lo < 0xE000 {
					next += 6
				} else {
					reason, at = firstReason(reason, at, ReasonInvalidUTF8, i)
				}
			case r >= 0xDC00 && r < 0xE000:
				reason, at = firstReason(reason, at, ReasonInvalidUTF8, i)
			}
			i = next
		case c == 0:
			reason, at = firstReason(reason, at, ReasonNUL, i)
			i++
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				reason, at = firstReason(reason, at, ReasonInvalidUTF8, i)
			}
			i += size
		}
	}
	return -1, "", 0
}

func firstReason(reason string, at int, r string, i int) (string, int) {
	if reason != "" {
		return reason, at
	}
	return r, i
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func hexAfterEscape(d []byte, i int) (rune, bool) {
	if i+1 >= len(d) || d[i] != '\\' || d[i+1] != 'u' {
		return 0, false
	}
	return hex4(d, i+2)
}

func isLiteralByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// path names the current position: keys joined by dots, array indexes in
// brackets (features[3].properties.name); "" is the document itself.
func (s *scanner) path() string {
	var b strings.Builder
	for _, f := range s.stack {
		if f.array {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(printableKey(f.key))
	}
	return b.String()
}

// printableKey decodes a raw key for an error message: escapes resolved,
// a NUL shown as \u0000 and bad bytes as U+FFFD, so the message itself is
// clean text.
func printableKey(raw []byte) string {
	var k string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &k); err != nil {
		k = string(raw)
	}
	k = strings.ReplaceAll(k, "\x00", `\u0000`)
	return strings.ToValidUTF8(k, "\uFFFD")
}

func (s *scanner) problem(reason string, at int, field string) error {
	line, col := LineColumn(s.data, at)
	where := "field " + field
	if field == "" {
		where = "the JSON document"
	}
	var msg string
	switch reason {
	case ReasonNUL:
		msg = where + ": text holds a NUL character (\\u0000), which cannot be stored; remove it"
	default:
		msg = where + ": text is not valid UTF-8 (or holds a lone UTF-16 surrogate escape); send UTF-8"
	}
	return gridwatch.Errorf(gridwatch.EInvalid, "%s (line %d, column %d)", msg, line, col).
		WithDetails(map[string]any{"field": field, "reason": reason, "offset": at, "line": line, "column": col})
}

// LineColumn turns a byte offset of data into a 1-based line and column.
func LineColumn(data []byte, offset int) (line, col int) {
	if offset > len(data) {
		offset = len(data)
	}
	before := data[:offset]
	return bytes.Count(before, []byte("\n")) + 1, offset - bytes.LastIndexByte(before, '\n')
}
