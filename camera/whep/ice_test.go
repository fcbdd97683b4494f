package whep

import (
	"context"
	"strings"
	"testing"
	"time"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

// STUN and TURN servers: checked as URLs, given to the browsers with the
// TURN credential on the TURN ones only, and a STUN server that does not
// answer delays an answer by the gathering timeout at most.
func TestICEServers(t *testing.T) {
	for _, bad := range []string{"http://stun.example", "stun:", "turn:host:notaport"} {
		if CheckICEServer(bad) == nil {
			t.Errorf("%q taken as a STUN/TURN URL", bad)
		}
	}
	if err := CheckICEServer("stun:stun.example.org:3478"); err != nil {
		t.Error(err)
	}
	hub := publisherTB(t, camsim.ClipMain)
	srv, err := New(Config{
		Acquire:    func(context.Context, int64, string) (*stream.Hub, func(), error) { return hub, func() {}, nil },
		ICEServers: []string{"stun:127.0.0.1:9", "turn:127.0.0.1:9?transport=udp"}, TURNUsername: "gw", TURNCredential: "s3cret",
		GatherTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	is := srv.ICEServers()
	if len(is) != 2 || is[0].Credential != "" || is[1].Username != "gw" || is[1].Credential != "s3cret" {
		t.Errorf("ICE servers for the browsers: %+v", is)
	}
	// The viewer still plays over the host candidates, whatever the STUN
	// server does; the answer waited for it no longer than GatherTimeout.
	sess, v := view(t, srv, 1, false)
	st := v.Wait(t, 20*time.Second)
	if took := st.First.Sub(v.Asked); took > 5*time.Second {
		t.Errorf("the first picture came %v after the offer with an unanswering STUN server", took)
	}
	sess.Close()
}

// H.265 goes to a viewer only in a profile it offers: a Main camera to a
// viewer offering Main (profile-id 1, or none), a Main 10 camera only to
// one offering profile-id 2.
func TestOffersH265(t *testing.T) {
	const main, main10 = 1, 2
	offer := func(lines ...string) string {
		return "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 98\r\na=rtpmap:96 H264/90000\r\n" + strings.Join(lines, "\r\n") + "\r\n"
	}
	for _, tc := range []struct {
		name    string
		offer   string
		profile int
		want    bool
	}{
		{"no H.265", offer(), main, false},
		{"H.265, no profile-id", offer("a=rtpmap:98 H265/90000"), main, true},
		{"Main offered, Main 10 camera", offer("a=rtpmap:98 H265/90000", "a=fmtp:98 level-id=93;profile-id=1;tier-flag=0"), main10, false},
		{"Main 10 offered", offer("a=rtpmap:98 H265/90000", "a=fmtp:98 profile-id=2"), main10, true},
		{"Main 10 only, Main camera", offer("a=rtpmap:98 h265/90000", "a=fmtp:98 profile-id=2"), main, false},
	} {
		if got := offersH265(tc.offer, tc.profile); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
