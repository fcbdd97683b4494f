package manscdp

import (
	"reflect"
	"regexp"
	"testing"
)

// Decode never panics, and what it decodes encodes in every charset and
// decodes again; in UTF-8, to the same message.
func FuzzDecode(f *testing.F) {
	for _, body := range fixtures(f) {
		f.Add(body)
	}
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><Query/>`))
	f.Add([]byte(`<Query><CmdType>a&b</CmdType><SN>1</SN><DeviceID>&#x1F4F7;</DeviceID><![CDATA[&]]></Query>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			return
		}
		for _, cs := range charsets {
			out, err := Encode(m, cs)
			if err != nil {
				t.Fatalf("%s: %v", cs, err)
			}
			got, err := Decode(out)
			if err != nil {
				t.Fatalf("%s: re-decode: %v\n%q", cs, err, out)
			}
			if cs != "UTF-8" {
				continue
			}
			if a, b := normal(got), normal(m); !reflect.DeepEqual(a, b) {
				t.Fatalf("round trip changed the message:\n got %+v\nwant %+v\n%q", a, b, out)
			}
		}
	})
}

var ptzCmd = regexp.MustCompile(`^A50F[0-9A-F]{12}$`)

// ParsePTZCmd never panics, and what it parses writes a command that
// parses to the same.
func FuzzParsePTZCmd(f *testing.F) {
	for _, s := range []string{"A50F0100000000B5", "A50F010180000036", "A50F01820003003A", "A50F014110000006", "A50F01880100003E", "a50f2300000001d8", "A50F0100000000B6", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePTZCmd(s)
		if err != nil {
			return
		}
		cmd := p.Cmd()
		if !ptzCmd.MatchString(cmd) {
			t.Fatalf("Cmd %q", cmd)
		}
		q, err := ParsePTZCmd(cmd)
		if err != nil || q != p {
			t.Fatalf("%q → %+v → %s → %+v %v", s, p, cmd, q, err)
		}
	})
}
