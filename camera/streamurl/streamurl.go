// Package streamurl takes the credentials out of a camera's stream URL and
// puts them back. Cameras carry their secrets in many places: the userinfo
// (rtsp://user:pass@host), query parameters under many names and cases
// (?Password=, ?passwd=, ?auth=, ?token=, …) and key=value pairs embedded in
// the path, as some NVRs want (rtsp://host/user=admin&password=x&channel=1
// or, Xiongmai's, /user=admin_password=x_channel=1_stream=0.sdp). Split cuts
// every such piece out; what is left is the URL shown to users, and the
// pieces (the Secret) are stored apart and never leave the server. Join puts
// them back, byte for byte, for the RTSP client alone.
package streamurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Cut is one piece of a URL that carries a credential: Text stood at byte
// offset At of the public URL (the URL without its cuts).
type Cut struct {
	At   int    `json:"at"`
	Text string `json:"text"`
}

// Secret is every piece Split took out of a URL, in order. Its String shows
// none of it, so a Secret printed by mistake leaks nothing.
type Secret []Cut

// String says how many parts there are, never what they are.
func (s Secret) String() string { return fmt.Sprintf("[%d credential parts]", len(s)) }

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// Empty reports whether s holds nothing.
func (s Secret) Empty() bool { return len(s) == 0 }

// Texts returns the pieces' texts and, for pieces of the form key=value or
// user:password@, the values alone (percent-decoded too): what must not
// appear in anything shown, such as a library's error message.
func (s Secret) Texts() []string {
	var out []string
	add := func(v string) {
		v = strings.Trim(v, "&;_@?/")
		if len(v) >= 3 {
			out = append(out, v)
			if d, err := url.PathUnescape(v); err == nil && d != v {
				out = append(out, d)
			}
		}
	}
	for _, c := range s {
		add(c.Text)
		t := strings.Trim(c.Text, "&;_@?/")
		if !strings.Contains(t, "=") {
			if i := strings.IndexByte(t, ':'); i >= 0 {
				add(t[i+1:])
				add(t[:i])
			}
			continue
		}
		// Each value of the pairs a cut holds, up to its separator (and,
		// Xiongmai style, up to its first '_' too).
		for i := 0; i < len(t); i++ {
			if t[i] != '=' {
				continue
			}
			v := t[i+1:]
			if j := strings.IndexAny(v, "&;"); j >= 0 {
				v = v[:j]
			}
			add(v)
			if j := strings.IndexByte(v, '_'); j >= 0 {
				add(v[:j])
			}
		}
	}
	return out
}

// span is a cut as a byte range of the original URL.
type span struct{ start, end int }

// Split returns raw without its credentials, and the credentials.
// Join(Split(raw)) == raw for any string.
func Split(raw string) (public string, secret Secret) {
	var spans []span
	rest := 0
	if i := strings.Index(raw, "://"); i >= 0 && validScheme(raw[:i]) {
		auth := i + 3
		end := len(raw)
		if j := strings.IndexAny(raw[auth:], "/?#"); j >= 0 {
			end = auth + j
		}
		// The userinfo runs to the last '@' of the authority.
		if at := strings.LastIndexByte(raw[auth:end], '@'); at >= 0 {
			spans = append(spans, span{auth, auth + at + 1})
		}
		rest = end
	}
	pathEnd, queryEnd := len(raw), len(raw)
	if j := strings.IndexByte(raw[rest:], '#'); j >= 0 {
		pathEnd, queryEnd = rest+j, rest+j
	}
	hasQuery := false
	if j := strings.IndexByte(raw[rest:pathEnd], '?'); j >= 0 {
		pathEnd, hasQuery = rest+j, true
	}
	// Path segments, each a region of pairs.
	for a := rest; a < pathEnd; {
		if raw[a] == '/' {
			a++
			continue
		}
		b := a + strings.IndexByte(raw[a:pathEnd]+"/", '/')
		spans = append(spans, pairs(raw, a, b, true)...)
		a = b
	}
	if hasQuery {
		spans = append(spans, pairs(raw, pathEnd+1, queryEnd, false)...)
	}
	if queryEnd < len(raw) {
		spans = append(spans, pairs(raw, queryEnd+1, len(raw), false)...)
	}
	// Merge touching spans (a pair and its separator, whole regions).
	var merged []span
	for _, sp := range spans {
		if n := len(merged); n > 0 && merged[n-1].end >= sp.start {
			merged[n-1].end = max(merged[n-1].end, sp.end)
			continue
		}
		merged = append(merged, sp)
	}
	var b strings.Builder
	prev, removed := 0, 0
	for _, sp := range merged {
		b.WriteString(raw[prev:sp.start])
		secret = append(secret, Cut{At: sp.start - removed, Text: raw[sp.start:sp.end]})
		removed += sp.end - sp.start
		prev = sp.end
	}
	b.WriteString(raw[prev:])
	return b.String(), secret
}

// pairs finds the key=value pairs with a secret key in raw[a:b] (a path
// segment when inPath, else a query or fragment) and returns the spans to
// cut: each pair with one separator, and the region's leading '/', '?' or
// '#' too when nothing of it is left.
func pairs(raw string, a, b int, inPath bool) []span {
	var out []span
	for i := a; i < b; i++ {
		if raw[i] != '=' {
			continue
		}
		j := i
		for j > a && isKeyChar(raw[j-1]) {
			j--
		}
		// The key starts at the run's start or after one of its '_' (in
		// user=admin_password=x the run before the second '=' is
		// admin_password).
		st := -1
		for k := j; k < i; k++ {
			if (k == j || raw[k-1] == '_') && secretKey(raw[k:i]) {
				st = k
				break
			}
		}
		if st < 0 {
			continue
		}
		ve := valueEnd(raw, i+1, b, inPath)
		sp := span{st, ve}
		covered := len(out) > 0 && out[len(out)-1].end >= st
		switch {
		case st > a && isSep(raw[st-1], inPath) && !covered:
			sp.start = st - 1
		case ve < b:
			sp.end = ve + 1
		}
		out = append(out, sp)
		i = ve
	}
	// A region left empty loses its delimiter as well.
	if len(out) > 0 && a > 0 && covers(out, a, b) {
		out[0].start = a - 1
	}
	return out
}

// covers reports whether spans (in order) cover raw[a:b] without a gap.
func covers(spans []span, a, b int) bool {
	at := a
	for _, sp := range spans {
		if sp.start > at {
			return false
		}
		at = max(at, sp.end)
	}
	return at >= b
}

// valueEnd is where a value starting at i ends: at '&' (and in a path at
// ';' or where the next "_key=" begins, Xiongmai style), or at b.
func valueEnd(raw string, i, b int, inPath bool) int {
	for k := i; k < b; k++ {
		switch c := raw[k]; {
		case c == '&':
			return k
		case inPath && c == ';':
			return k
		case inPath && c == '_':
			m := k + 1
			for m < b && isKeyChar(raw[m]) && raw[m] != '_' {
				m++
			}
			if m > k+1 && m < b && raw[m] == '=' {
				return k
			}
		}
	}
	return b
}

func isSep(c byte, inPath bool) bool { return c == '&' || (inPath && (c == ';' || c == '_')) }

func isKeyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == '%' || c == '~' || c == '+'
}

func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// secretKey reports whether a parameter named key carries a credential:
// compared without case, percent-encoding and the separators '_', '-',
// '.', so Password, PASS_WORD and pass%77ord are all one. User names are
// taken too: half of a credential, and often enough to guess the rest.
func secretKey(key string) bool {
	if d, err := url.QueryUnescape(key); err == nil {
		key = d
	}
	k := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ', '~', '+':
			return -1
		}
		return r
	}, strings.ToLower(key))
	switch k {
	case "user", "username", "usr", "uname", "login", "loginname", "account", "pw", "pin", "key", "sig", "sid",
		"session", "sessionid", "jwt", "otp", "hash", "code", "ticket", "nonce", "privatekey", "cert":
		return true
	}
	for _, part := range []string{"pass", "pwd", "secret", "token", "auth", "cred", "signature", "apikey", "accesskey"} {
		if strings.Contains(k, part) {
			return true
		}
	}
	return strings.HasSuffix(k, "key")
}

// ErrBadSecret is Join's answer to a secret that does not fit the URL.
var ErrBadSecret = errors.New("stream URL: the stored credentials do not fit the URL")

// Join puts secret back into public: the URL Split was given.
func Join(public string, secret Secret) (string, error) {
	var b strings.Builder
	prev := 0
	for _, c := range secret {
		if c.At < prev || c.At > len(public) {
			return "", ErrBadSecret
		}
		b.WriteString(public[prev:c.At])
		b.WriteString(c.Text)
		prev = c.At
	}
	b.WriteString(public[prev:])
	return b.String(), nil
}
