package streamurl

import (
	"net/url"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name, raw, public string
	}{
		{"userinfo", "rtsp://admin:S3cret!@10.0.0.7:554/Streaming/Channels/101", "rtsp://10.0.0.7:554/Streaming/Channels/101"},
		{"user only", "rtsp://admin@cam.local/live", "rtsp://cam.local/live"},
		{"@ in the password", "rtsp://admin:p@ss@cam.local/live", "rtsp://cam.local/live"},
		{"query, lower case", "rtsp://cam.local/live?user=admin&password=S3cret&channel=1", "rtsp://cam.local/live?channel=1"},
		{"query, any case", "rtsp://cam.local/live?channel=1&Password=S3cret", "rtsp://cam.local/live?channel=1"},
		{"passwd", "rtsp://cam.local/live?passwd=S3cret&channel=1", "rtsp://cam.local/live?channel=1"},
		{"auth", "rtsp://cam.local/live?auth=S3cret", "rtsp://cam.local/live"},
		{"token with = and /", "rtsps://cam.local/live?a=1&token=ab/cd+e==&b=2", "rtsps://cam.local/live?a=1&b=2"},
		{"api_key", "rtsp://cam.local/live?API_KEY=S3cret&subtype=0", "rtsp://cam.local/live?subtype=0"},
		{"path-embedded", "rtsp://192.168.1.10/user=admin&password=S3cret&channel=1&stream=0.sdp", "rtsp://192.168.1.10/channel=1&stream=0.sdp"},
		{"path-embedded, Xiongmai", "rtsp://192.168.1.10:554/user=admin_password=S3cret_channel=1_stream=0.sdp?real_stream", "rtsp://192.168.1.10:554/channel=1_stream=0.sdp?real_stream"},
		{"path segment all secret", "rtsp://cam.local/pwd=S3cret/live", "rtsp://cam.local/live"},
		{"everything", "rtsp://u:S3cret@cam.local/user=u&password=S3cret/live?Token=S3cret#auth=S3cret", "rtsp://cam.local/live"},
		{"nothing", "rtsp://cam.local/cam/realmonitor?channel=1&subtype=0", "rtsp://cam.local/cam/realmonitor?channel=1&subtype=0"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			public, secret := Split(tt.raw)
			if public != tt.public {
				t.Errorf("Split(%q) public = %q, want %q", tt.raw, public, tt.public)
			}
			if strings.Contains(public, "S3cret") || strings.Contains(secret.String(), "S3cret") {
				t.Errorf("Split(%q) shows the secret: %q, %v", tt.raw, public, secret)
			}
			if got, err := Join(public, secret); err != nil || got != tt.raw {
				t.Errorf("Join(Split(%q)) = %q, %v; want the original", tt.raw, got, err)
			}
		})
	}
}

// forms builds a URL carrying secret in each of the ways cameras do.
var forms = []func(secret string) string{
	func(s string) string {
		return "rtsp://" + url.UserPassword("admin", s).String() + "@10.0.0.7:554/Streaming/Channels/101"
	},
	func(s string) string {
		return "rtsp://cam.local/live?channel=1&Password=" + url.QueryEscape(s) + "&subtype=0"
	},
	func(s string) string { return "rtsp://cam.local/live?passwd=" + url.QueryEscape(s) },
	func(s string) string { return "rtsp://cam.local/live?AUTH=" + url.QueryEscape(s) + "&x=1" },
	func(s string) string { return "rtsp://cam.local/live?access_token=" + url.QueryEscape(s) },
	func(s string) string {
		return "rtsp://cam.local/user=admin&password=" + url.QueryEscape(s) + "&channel=1&stream=0.sdp"
	},
	func(s string) string {
		return "rtsp://cam.local:554/user=admin_password=" + url.QueryEscape(s) + "_channel=1_stream=0.sdp?real_stream"
	},
}

// FuzzSplit: split then join gives back any string, and a secret planted
// in any of the forms never shows in the public URL.
func FuzzSplit(f *testing.F) {
	for _, seed := range []string{"S3cret", "a&b=c", "p@ss/w?rd#", "x_channel=1", "密码", "%41%"} {
		f.Add("rtsp://u:"+seed+"@h/p?token="+seed, seed)
	}
	f.Add("rtsp://h/user=a_pwd=b_c=d?x=1#key=2", "")
	f.Fuzz(func(t *testing.T, raw, secret string) {
		public, sec := Split(raw)
		if got, err := Join(public, sec); err != nil || got != raw {
			t.Fatalf("Join(Split(%q)) = %q, %v", raw, got, err)
		}
		planted := "Zq7" + secret
		for i, form := range forms {
			u := form(planted)
			public, sec := Split(u)
			if strings.Contains(public, planted) || strings.Contains(public, url.QueryEscape(planted)) {
				t.Errorf("form %d: %q split to %q: the secret shows", i, u, public)
			}
			if got, err := Join(public, sec); err != nil || got != u {
				t.Errorf("form %d: Join(Split(%q)) = %q, %v", i, u, got, err)
			}
		}
	})
}
