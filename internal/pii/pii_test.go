package pii

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustRing(t *testing.T) *Keyring {
	t.Helper()
	k, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustRing(t)
	a, err := k.Seal(FieldID, []byte("11010519491231002X"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Seal(FieldID, []byte("11010519491231002X"))
	if bytes.Equal(a, b) {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	if bytes.Contains(a, []byte("1949")) || bytes.Contains(a, []byte("110105")) {
		t.Errorf("sealed value shows the plaintext: %x", a)
	}
	if id, err := KeyID(a); err != nil || id != 1 {
		t.Errorf("KeyID = %d, %v; want 1", id, err)
	}
	got, err := k.Open(FieldID, a)
	if err != nil || string(got) != "11010519491231002X" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// The field is the AAD: an ID sealed value pasted into the phone
	// column does not open there.
	if _, err := k.Open(FieldPhone, a); err == nil {
		t.Error("a value sealed as id_number opened as phone")
	}
	a[len(a)-1] ^= 1
	if _, err := k.Open(FieldID, a); err == nil {
		t.Error("an altered value opened")
	}
	if _, err := k.Open(FieldID, []byte{9, 9}); err == nil {
		t.Error("garbage opened")
	}
	other := mustRing(t)
	if _, err := other.Open(FieldID, b); err == nil {
		t.Error("another ring's key 1 opened the value")
	}
}

func TestRotationRing(t *testing.T) {
	k1 := mustRing(t)
	old, _ := k1.Seal(FieldPhone, []byte("13812345678"))
	k2, err := Generate(k1)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Current() != 2 || len(k2.IDs()) != 2 || k1.Current() != 1 {
		t.Fatalf("after Generate: current %d ids %v (k1 current %d)", k2.Current(), k2.IDs(), k1.Current())
	}
	if got, err := k2.Open(FieldPhone, old); err != nil || string(got) != "13812345678" {
		t.Fatalf("the new ring does not open the old key's value: %q %v", got, err)
	}
	fresh, _ := k2.Seal(FieldPhone, []byte("13812345678"))
	if id, _ := KeyID(fresh); id != 2 {
		t.Errorf("new ring seals under key %d, want 2", id)
	}
	// Find holds every key's hash, the current one's first; the old
	// ring's hash is among them.
	f := k2.Find(FieldPhone, "13812345678")
	if len(f) != 2 || !bytes.Equal(f[0], k2.Hash(FieldPhone, "13812345678")) || !bytes.Equal(f[1], k1.Hash(FieldPhone, "13812345678")) {
		t.Errorf("Find does not hold the current then the old hash")
	}
	if bytes.Equal(k1.Hash(FieldPhone, "1"), k1.Hash(FieldID, "1")) {
		t.Error("the hash does not depend on the field")
	}
	if _, err := k2.Without(2); err == nil {
		t.Error("the current key was removed")
	}
	k3, err := k2.Without(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k3.Open(FieldPhone, old); !errors.Is(err, ErrNoKey) {
		t.Errorf("after removing key 1 its value: %v, want ErrNoKey", err)
	}
	if got, err := k3.Open(FieldPhone, fresh); err != nil || string(got) != "13812345678" {
		t.Errorf("key 2's value after removing key 1: %q %v", got, err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "pii.keys")
	k, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	sealed, _ := k.Seal(FieldBirth, []byte("1948-03-04"))
	again, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open(FieldBirth, sealed); err != nil || string(got) != "1948-03-04" {
		t.Fatalf("reloaded ring: %q %v", got, err)
	}
	k2, _ := Generate(again)
	if err := WriteFile(path, k2); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("rewritten key file mode %v", st.Mode().Perm())
	}
	k3, err := Load(path)
	if err != nil || k3.Current() != 2 {
		t.Fatalf("reloaded after WriteFile: %v %v", k3, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key file: %v", err)
	}
}

func TestParse(t *testing.T) {
	good := "# comment\n\n1 " + strings.Repeat("A", 43) + "=\n3 " + strings.Repeat("B", 43) + "=\n"
	k, err := Parse([]byte(good))
	if err != nil || k.Current() != 3 || len(k.IDs()) != 2 {
		t.Fatalf("Parse: %v %v", k, err)
	}
	secret := strings.Repeat("C", 43) + "="
	for _, bad := range []string{"", "# only\n", "1", "x " + secret, "0 " + secret, "1 abc", "1 " + secret + "\n1 " + secret, "1 " + secret + " extra"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("Parse error repeats the key: %v", err)
		}
	}
	if k, err := ParseEntries("1 " + secret + "; 2 " + secret); err != nil || k.Current() != 2 || len(k.IDs()) != 2 {
		t.Errorf("ParseEntries: %v %v", k, err)
	}
}

func TestNormaliseID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"11010519491231002X", "11010519491231002X"},
		{"11010519491231002x", "11010519491231002X"},
		{" 1101 0519 4912 3100 2X ", "11010519491231002X"},
		{"440524188001010014", "440524188001010014"},
		// An old 15-digit number is upgraded: 19 before the year, a check digit after.
		{"110105491231002", "11010519491231002X"},
	} {
		got, err := NormaliseID(tc.in)
		if err != nil || got.Number != tc.want {
			t.Errorf("NormaliseID(%q) = %q, %v; want %q", tc.in, got.Number, err, tc.want)
		}
	}
	id, _ := NormaliseID("11010519491231002X")
	if !id.Birth.Equal(time.Date(1949, 12, 31, 0, 0, 0, 0, time.UTC)) || !id.Female {
		t.Errorf("birth %v female %v", id.Birth, id.Female)
	}
	if _, err := NormaliseID("110105194912310021"); !errors.Is(err, ErrCheckDigit) {
		t.Errorf("bad check digit: %v", err)
	}
	if id, err := NormaliseIDUnchecked("110105194912310021"); err != nil || id.Number != "110105194912310021" {
		t.Errorf("unchecked: %v %v", id, err)
	}
	for _, bad := range []string{"", "1234", "11010519491231002Y", "X10105194912310021", "01010519491231002X",
		"11010519490231002X", "11010518000101002X", "1101051949123100２X", "11010549123100A"} {
		if _, err := NormaliseIDUnchecked(bad); err == nil {
			t.Errorf("NormaliseIDUnchecked(%q) accepted", bad)
		}
	}
}

func TestCheckDigit(t *testing.T) {
	// Every 17 digits have exactly one check character that passes.
	base := "41010519480304123"
	n := 0
	for _, c := range "0123456789X" {
		if _, err := NormaliseID(base + string(c)); err == nil {
			n++
			if byte(c) != CheckDigit(base) {
				t.Errorf("passing check %c, CheckDigit says %c", c, CheckDigit(base))
			}
		}
	}
	if n != 1 {
		t.Errorf("%d check characters pass, want 1", n)
	}
}

func TestNormalisePhone(t *testing.T) {
	for _, tc := range []struct{ in, want, mask string }{
		{"13812345678", "13812345678", "138****5678"},
		{"+86 138-1234-5678", "13812345678", "138****5678"},
		{"008613812345678", "13812345678", "138****5678"},
		{"0371-12345678", "0371-12345678", "0371-****5678"},
		{"(0371) 6123456", "0371-6123456", "0371-****3456"},
		{"010 87654321", "010-87654321", "010-****4321"},
		{"02087654321", "020-87654321", "020-****4321"},
	} {
		got, err := NormalisePhone(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalisePhone(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if m := MaskPhone(got); m != tc.mask {
			t.Errorf("MaskPhone(%q) = %q, want %q", got, m, tc.mask)
		}
	}
	for _, bad := range []string{"", "12345678901", "1381234567", "138123456789", "0371-0123456", "037112345", "400-123-4567", "abc", "0371-123456789"} {
		if got, err := NormalisePhone(bad); err == nil {
			t.Errorf("NormalisePhone(%q) = %q, accepted", bad, got)
		}
	}
}

func TestMasks(t *testing.T) {
	if got := MaskID("41010519480304123X"); got != "4101**********123X" {
		t.Errorf("MaskID = %q", got)
	}
	for in, want := range map[string]string{"": "", "李": "*", "张明": "张*", "张小明": "张*明", "欧阳娜娜": "欧*娜"} {
		if got := MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := MaskBirth(time.Date(1948, 3, 4, 0, 0, 0, 0, time.UTC)); got != "1948-**-**" {
		t.Errorf("MaskBirth = %q", got)
	}
}

func FuzzNormaliseID(f *testing.F) {
	for _, s := range []string{"11010519491231002X", "110105491231002", "440524188001010014", "", "x", "1101051949123100２X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := NormaliseIDUnchecked(s)
		if err != nil {
			return
		}
		n := id.Number
		if len(n) != 18 || !allDigits(n[:17]) || !(n[17] == 'X' || n[17] >= '0' && n[17] <= '9') {
			t.Fatalf("%q normalised to %q", s, n)
		}
		// Normalising is idempotent, and the check digit either passes or
		// is the one error.
		again, err := NormaliseIDUnchecked(n)
		if err != nil || again != id {
			t.Fatalf("%q → %q → %q, %v", s, n, again.Number, err)
		}
		if _, err := NormaliseID(n); err != nil && !errors.Is(err, ErrCheckDigit) {
			t.Fatalf("%q: checked error %v", n, err)
		}
		if _, err := NormaliseID(n); (err == nil) != (CheckDigit(n) == n[17]) {
			t.Fatalf("%q: check %v but digit %c", n, err, CheckDigit(n))
		}
		if m := MaskID(n); len(m) != 18 || m[:4] != n[:4] || m[14:] != n[14:] || strings.Trim(m[4:14], "*") != "" {
			t.Fatalf("MaskID(%q) = %q", n, m)
		}
	})
}

// A number refused for its date of birth is not echoed back: a mistyped
// date is still close to someone's, and errors reach logs and answers.
func TestNormaliseIDErrorsRepeatNoDigits(t *testing.T) {
	for _, s := range []string{"41010519480231123X", "410105194813041234", "410105180003041234", "410105480231123"} {
		_, err := NormaliseIDUnchecked(s)
		if err == nil {
			t.Fatalf("%s: accepted", s)
		}
		for _, part := range []string{"19480231", "19481304", "18000304", "480231"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("%s: error %q repeats its digits", s, err)
			}
		}
	}
}

func FuzzNormalisePhone(f *testing.F) {
	for _, s := range []string{"13812345678", "+86 138 1234 5678", "0086", "+86", "0371-62345678", "(010)12345678", "", "1", "0", "０３７１", "-", "00001000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := NormalisePhone(s)
		if err != nil {
			// A number long enough to be someone's is never echoed.
			if in := strings.TrimSpace(s); len(in) >= 7 && strings.Contains(err.Error(), in) {
				t.Fatalf("error %q repeats the input", err)
			}
			return
		}
		if again, err := NormalisePhone(p); err != nil || again != p {
			t.Fatalf("%q → %q → %q, %v", s, p, again, err)
		}
		m := MaskPhone(p)
		area, _, landline := strings.Cut(p, "-")
		if strings.Count(m, "*") != 4 || m[len(m)-4:] != p[len(p)-4:] || !landline && (len(m) != 11 || m[:3] != p[:3]) ||
			landline && !strings.HasPrefix(m, area+"-****") {
			t.Fatalf("MaskPhone(%q) = %q", p, m)
		}
	})
}
