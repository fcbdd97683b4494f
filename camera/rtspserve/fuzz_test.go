package rtspserve

import (
	"strconv"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// FuzzParsePath checks that every accepted path is the one canonical path
// of its camera and stream, and that nothing panics.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/cameras/1", "/cameras/42/sub", "/cameras/0", "/cameras/01", "/cameras/-1",
		"/cameras/1/sub/sub", "/cameras//sub", "/cameras/9223372036854775808", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		id, name, ok := parsePath(path)
		if !ok {
			return
		}
		if id <= 0 {
			t.Fatalf("parsePath(%q) accepted id %d", path, id)
		}
		canon := "/cameras/" + strconv.FormatInt(id, 10)
		switch name {
		case StreamMain:
		case StreamSub:
			canon += "/sub"
		default:
			t.Fatalf("parsePath(%q) gave stream %q", path, name)
		}
		if canon != path {
			t.Fatalf("parsePath(%q) accepted a non-canonical path for %s", path, canon)
		}
	})
}

// FuzzRequestToken feeds arbitrary queries and Authorization headers to
// the token extraction.
func FuzzRequestToken(f *testing.F) {
	f.Add("token=abc", "Basic dTpw")
	f.Add("a=%zz&token=x", "Basic !!!")
	f.Add("", "Digest username=\"u\"")
	f.Fuzz(func(t *testing.T, query, auth string) {
		req := &base.Request{Header: base.Header{"Authorization": base.HeaderValue{auth}}}
		_ = requestToken(req, query)
		_ = redact(query)
	})
}
