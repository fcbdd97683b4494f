package pii

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Field names: the AAD a value is sealed with and the domain its hash is
// taken in.
const (
	FieldID    = "id_number"
	FieldPhone = "phone"
	FieldBirth = "birth_date"
)

// ErrCheckDigit is NormaliseID's error for an ID number whose last
// character is not its check digit: a typing mistake, or a made-up number.
var ErrCheckDigit = errors.New("the check digit does not match (ISO 7064 MOD 11-2): a digit is mistyped, or the number is not real")

// IDNumber is a resident ID number (居民身份证号码, GB 11643-1999) as
// NormaliseID reads it.
type IDNumber struct {
	// Number is the 18-character form, an upper-case X as check digit.
	Number string
	// Birth is the date of birth it carries.
	Birth time.Time
	// Female is what its sequence digit says (odd: male, even: female).
	Female bool
}

// NormaliseID reads a resident ID number: 18 characters, 17 digits and a
// check digit (0-9 or X, x accepted), with spaces ignored, carrying a
// real date of birth, whose check digit matches (ISO 7064 MOD 11-2).
//
// A 15-digit first-generation number (issued until 2004, no longer valid
// since 2013 but still found in old registers) is accepted and upgraded
// the standard way: "19" inserted before its two-digit birth year and the
// check digit computed. The two forms of one person's number are thus one
// number, stored and found alike.
func NormaliseID(s string) (IDNumber, error) {
	id, err := NormaliseIDUnchecked(s)
	if err != nil {
		return id, err
	}
	if checkDigit(id.Number[:17]) != id.Number[17] {
		return IDNumber{}, ErrCheckDigit
	}
	return id, nil
}

// NormaliseIDUnchecked is NormaliseID without the check digit: for
// clearly synthetic numbers (the demo's, made with a wrong check digit so
// that they cannot be anyone's) and for searching.
func NormaliseIDUnchecked(s string) (IDNumber, error) {
	s = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	switch len(s) {
	case 18:
	case 15:
		if !allDigits(s) {
			return IDNumber{}, errors.New("a 15-character ID number has digits only")
		}
		s = s[:6] + "19" + s[6:]
		s += string(checkDigit(s))
	default:
		if n := utf8.RuneCountInString(s); n != 18 {
			return IDNumber{}, fmt.Errorf("an ID number has 18 characters (or 15 for an old one), not %d", n)
		}
		return IDNumber{}, errors.New("an ID number has 17 digits and a check digit (0-9 or X)")
	}
	if !allDigits(s[:17]) || !(s[17] >= '0' && s[17] <= '9' || s[17] == 'X') {
		return IDNumber{}, errors.New("an ID number has 17 digits and a check digit (0-9 or X)")
	}
	if s[0] < '1' || s[0] > '9' {
		return IDNumber{}, errors.New("an ID number starts with a region code (GB/T 2260), never 0")
	}
	birth, err := time.Parse("20060102", s[6:14])
	if err != nil || birth.Year() < 1850 {
		// Its digits are not repeated: a mistyped date of birth is still
		// close to someone's, and an error answer may be logged or shown.
		return IDNumber{}, errors.New("the date of birth it carries (characters 7 to 14, YYYYMMDD) is not a date")
	}
	return IDNumber{Number: s, Birth: birth, Female: (s[16]-'0')%2 == 0}, nil
}

// checkDigit is the ISO 7064 MOD 11-2 check character of 17 digits.
func checkDigit(d string) byte {
	sum, w := 0, 1
	// Weights are 2^(17-i) mod 11, from the right: 2, 4, 8, 5, 10, …
	for i := 16; i >= 0; i-- {
		w = w * 2 % 11
		sum += int(d[i]-'0') * w
	}
	return "10X98765432"[sum%11]
}

// CheckDigit is the check character the 17 digits d (its first 17
// characters) call for; d must be digits.
func CheckDigit(d string) byte { return checkDigit(d[:17]) }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// NormalisePhone reads a phone number: an 11-digit mobile (1[3-9]…), with
// +86 or 0086 before it accepted, kept as its 11 digits; or a landline
// with its area code (010 and 02x: 3 digits; others 4) and a 7- or
// 8-digit number, kept as "0371-12345678". Spaces, hyphens and brackets
// are ignored.
func NormalisePhone(s string) (string, error) {
	d := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '(', ')', '（', '）':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(d, "+86"):
		d = d[3:]
	case strings.HasPrefix(d, "0086"):
		d = d[4:]
	}
	if !allDigits(d) {
		return "", errors.New("a phone number has digits only (besides spaces, hyphens and brackets)")
	}
	if d[0] == '1' {
		if len(d) != 11 || d[1] < '3' {
			return "", errors.New("a mobile number has 11 digits starting 13 to 19")
		}
		return d, nil
	}
	// 00… is the international prefix, no area code.
	if d[0] != '0' || len(d) > 1 && d[1] == '0' {
		return "", errors.New("a phone number is an 11-digit mobile, or a landline with its area code (0371-12345678)")
	}
	area := 4
	if strings.HasPrefix(d, "010") || strings.HasPrefix(d, "02") {
		area = 3
	}
	if n := len(d) - area; n < 7 || n > 8 || d[area] == '0' {
		return "", errors.New("a landline is its area code and a 7- or 8-digit number not starting 0 (0371-12345678)")
	}
	return d[:area] + "-" + d[area:], nil
}

// MaskID shows an ID number's first 4 and last 4 characters:
// 4101**********1234.
func MaskID(s string) string {
	if len(s) <= 8 {
		return strings.Repeat("*", len(s))
	}
	return s[:4] + strings.Repeat("*", len(s)-8) + s[len(s)-4:]
}

// MaskPhone shows a mobile's first 3 and last 4 digits (138****5678), a
// landline's area code and last 4 (0371-****5678).
func MaskPhone(s string) string {
	if area, num, ok := strings.Cut(s, "-"); ok && len(num) > 4 {
		return area + "-****" + num[len(num)-4:]
	}
	if len(s) <= 7 {
		return strings.Repeat("*", len(s))
	}
	return s[:3] + "****" + s[len(s)-4:]
}

// MaskName shows a name's first character and, from 3 characters on, its
// last, with one star between (the length is not told): 张*, 张*明, 欧*娜.
func MaskName(s string) string {
	r := []rune(strings.TrimSpace(s))
	switch len(r) {
	case 0:
		return ""
	case 1:
		return "*"
	case 2:
		return string(r[0]) + "*"
	}
	return string(r[0]) + "*" + string(r[len(r)-1])
}

// MaskBirth shows a date of birth's year only: 1948-**-**.
func MaskBirth(t time.Time) string {
	return fmt.Sprintf("%04d-**-**", t.Year())
}
