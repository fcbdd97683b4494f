package whep

import (
	"context"
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
