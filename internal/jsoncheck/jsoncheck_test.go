package jsoncheck_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"gridwatch"
	"gridwatch/internal/jsoncheck"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, body   string
		reason, path string // "" reason: accepted
	}{
		{"clean object", `{"name":"网格 1","tags":["a","b"],"n":1.5e3,"ok":true,"x":null}`, "", ""},
		{"clean with escapes", `{"a":"\n\t\"\\ \u00e9 \ud83d\ude00"}`, "", ""},
		{"trailing white space", "{\"a\":1}\n\r\t ", "", ""},
		{"empty body", ``, "", ""},
		{"syntax error left to the decoder", `{"a":}`, "", ""},
		{"truncated", `{"a":"x`, "", ""},
		{"escaped NUL in a value", `{"name":"a\u0000b"}`, jsoncheck.ReasonNUL, "name"},
		{"escaped NUL upper hex", `{"note":"\u0000"}`, jsoncheck.ReasonNUL, "note"},
		{"raw NUL byte", "{\"note\":\"a\x00\"}", jsoncheck.ReasonNUL, "note"},
		{"NUL deep in GeoJSON", `{"type":"FeatureCollection","features":[{"properties":{"code":"1"}},{"properties":{"name":"x\u0000"}}]}`, jsoncheck.ReasonNUL, "features[1].properties.name"},
		{"NUL in a key", `{"properties":{"na\u0000me":"x"}}`, jsoncheck.ReasonNUL, `properties.na\u0000me`},
		{"NUL in a top-level string", `"\u0000"`, jsoncheck.ReasonNUL, ""},
		{"NUL in a nested array", `{"a":[[1,"x"],["\u0000"]]}`, jsoncheck.ReasonNUL, "a[1][0]"},
		{"invalid UTF-8 byte", "{\"title\":\"caf\xe9\"}", jsoncheck.ReasonInvalidUTF8, "title"},
		{"truncated UTF-8 sequence", "{\"title\":\"\xe7\xbd\"}", jsoncheck.ReasonInvalidUTF8, "title"},
		{"lone high surrogate", `{"title":"\ud800x"}`, jsoncheck.ReasonInvalidUTF8, "title"},
		{"lone low surrogate", `{"title":"\udc00"}`, jsoncheck.ReasonInvalidUTF8, "title"},
		{"high surrogate then non-surrogate escape", `{"title":"\ud800\u0041"}`, jsoncheck.ReasonInvalidUTF8, "title"},
		{"key after an escaped-quote key", `{"a\"b":1,"c":"\u0000"}`, jsoncheck.ReasonNUL, "c"},
		{"second document", `{"a":1}{"b":2}`, jsoncheck.ReasonTrailingData, ""},
		{"garbage after", `{"a":1} x`, jsoncheck.ReasonTrailingData, ""},
		{"number then number", `1 2`, jsoncheck.ReasonTrailingData, ""},
		{"broken literal then data is the decoder's", `tru x`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := jsoncheck.Check([]byte(tc.body))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tc.body, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%q) = nil, want %s at %q", tc.body, tc.reason, tc.path)
			}
			if code := gridwatch.ErrorCode(err); code != gridwatch.EInvalid {
				t.Errorf("code = %s, want %s", code, gridwatch.EInvalid)
			}
			d := gridwatch.ErrorDetails(err)
			if d["reason"] != tc.reason {
				t.Errorf("reason = %v, want %s (%v)", d["reason"], tc.reason, err)
			}
			if tc.reason != jsoncheck.ReasonTrailingData && d["field"] != tc.path {
				t.Errorf("field = %q, want %q (%v)", d["field"], tc.path, err)
			}
			if tc.reason == jsoncheck.ReasonTrailingData && !strings.Contains(gridwatch.ErrorMessage(err), "trailing data after the JSON document") {
				t.Errorf("message = %q, want it to say trailing data after the JSON document", gridwatch.ErrorMessage(err))
			}
			if msg := gridwatch.ErrorMessage(err); !utf8.ValidString(msg) || strings.ContainsRune(msg, 0) {
				t.Errorf("message %q is not clean text itself", msg)
			}
		})
	}
}

// TestDeepNestingUsesNoRecursion: a hundred thousand levels are scanned without
// growing the call stack and a NUL at the bottom is still found.
func TestDeepNestingUsesNoRecursion(t *testing.T) {
	const depth = 100000
	body := strings.Repeat("[", depth) + `"\u0000"` + strings.Repeat("]", depth)
	err := jsoncheck.Check([]byte(body))
	if gridwatch.ErrorDetails(err)["reason"] != jsoncheck.ReasonNUL {
		t.Fatalf("got %v, want a NUL found", err)
	}
}

// FuzzCheck: Check never panics, and a valid document it accepts decodes
// to strings without a NUL and without a replacement character that the
// input did not spell out.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":"\u0000"}`, "{\"a\":\"\xff\"}", `[1,{"x":["\ud800"]}]`, `{"a":1}{}`, `"\ud83d\ude00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := jsoncheck.Check(data)
		if err != nil || !json.Valid(data) {
			return
		}
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		spelled := bytes.Contains(data, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`))
		var walk func(any)
		walk = func(v any) {
			check := func(s string) {
				if strings.ContainsRune(s, 0) {
					t.Fatalf("Check(%q) = nil, but it decodes to a NUL", data)
				}
				if strings.ContainsRune(s, utf8.RuneError) && !spelled {
					t.Fatalf("Check(%q) = nil, but decoding replaced bad text", data)
				}
			}
			switch x := v.(type) {
			case string:
				check(x)
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for k, e := range x {
					check(k)
					walk(e)
				}
			}
		}
		walk(v)
	})
}
