package auth

import (
	"strings"
	"testing"

	"gridwatch/geo"
)

func TestPasswordHash(t *testing.T) {
	p := HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}
	h := HashPassword("correct horse battery", p)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	if !VerifyPassword("correct horse battery", h) {
		t.Error("the right password does not verify")
	}
	if VerifyPassword("correct horse batterY", h) {
		t.Error("a wrong password verifies")
	}
	if HashPassword("correct horse battery", p) == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2i$v=19$m=1024,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", strings.Replace(h, "t=1", "t=0", 1)} {
		if VerifyPassword("x", bad) {
			t.Errorf("%q verifies", bad)
		}
	}
}

func TestParseBearer(t *testing.T) {
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer gw_abcdefghijklmnopqrstuvwxyz", "gw_abcdefghijklmnopqrstuvwxyz", true},
		{"bearer   gw_abcdefghijklmnopqrstuvwxyz  ", "gw_abcdefghijklmnopqrstuvwxyz", true},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearer short", "", false},
		{"Bearer", "", false},
		{"Bearer gw_abc\x00defghijklmnopqrstuvwxyz", "", false},
		{"Bearer " + strings.Repeat("a", 300), "", false},
	}
	for _, tt := range tests {
		got, err := ParseBearer(tt.header)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBearer(%q) = %q, %v; want %q ok=%v", tt.header, got, err, tt.want, tt.ok)
		}
	}
}

func TestSecretsAndCookies(t *testing.T) {
	s := newSecret()
	if _, err := ParseSessionCookie(s); err != nil {
		t.Errorf("a fresh secret %q does not parse: %v", s, err)
	}
	if newSecret() == s {
		t.Error("two secrets are equal")
	}
	for _, bad := range []string{"", "x", s + "A", strings.Replace(s, s[:1], "!", 1)} {
		if _, err := ParseSessionCookie(bad); err == nil {
			t.Errorf("cookie %q accepted", bad)
		}
	}
}

func TestInScope(t *testing.T) {
	chain := []geo.Ref{{ID: 4, Code: "g"}, {ID: 3, Code: "c"}, {ID: 2, Code: "s"}, {ID: 1, Code: "d"}}
	tests := []struct {
		name  string
		grids []geo.Ref
		want  int
	}{
		{"unscoped", nil, 4},
		{"scoped to the community", []geo.Ref{{ID: 3}}, 2},
		{"scoped to the grid", []geo.Ref{{ID: 4}}, 1},
		{"scoped elsewhere", []geo.Ref{{ID: 99}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Principal{Role: RoleGridLeader, Grids: tt.grids}
			if got := p.InScope(chain); len(got) != tt.want {
				t.Errorf("InScope = %v, want %d grids", got, tt.want)
			}
		})
	}
	var anon *Principal
	if anon.Can(GridsRead) || !anon.Can(Public) || anon.Can(Authenticated) {
		t.Error("a nil principal may only do public things")
	}
}

// FuzzParseCredentials: the parsers never panic and only accept what they say.
func FuzzParseCredentials(f *testing.F) {
	f.Add("Bearer gw_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	f.Add("bearer x")
	f.Add(newSecret())
	f.Add("$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA")
	f.Fuzz(func(t *testing.T, s string) {
		if tok, err := ParseBearer(s); err == nil {
			if len(tok) < 16 || len(tok) > 256 || strings.ContainsAny(tok, " \t\r\n\x00") {
				t.Fatalf("ParseBearer(%q) accepted %q", s, tok)
			}
		}
		if v, err := ParseSessionCookie(s); err == nil && len(v) != 43 {
			t.Fatalf("ParseSessionCookie(%q) accepted %q", s, v)
		}
		VerifyPassword("password", s) // must not panic or hang on any stored string
	})
}
