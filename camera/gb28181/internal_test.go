package gb28181

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/rtp"

	"gridwatch/camera/gb28181/manscdp"
)

func TestParseAnswer(t *testing.T) {
	a, err := parseAnswer([]byte("v=0\r\no=32010600001310000001 0 0 IN IP4 10.0.0.5\r\ns=Play\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n" +
		"m=video 15060 TCP/RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\na=setup:passive\r\ny=0100000001\r\nf=v/2/4///a///\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.ip != "10.0.0.5" || a.port != 15060 || !a.tcp || a.setup != "passive" || a.ssrc != "0100000001" {
		t.Errorf("answer %+v", a)
	}
	for _, bad := range []struct{ body, want string }{
		{"v=0\r\nc=IN IP4 10.0.0.5\r\n", "no video medium"},
		{"v=0\r\nm=video 1 RTP/AVP 96\r\n", "no connection address"},
		{"v=0\r\nc=IN IP4 nowhere\r\nm=video 1 RTP/AVP 96\r\n", "line 2: connection address \"nowhere\" is not an IP"},
		{"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 70000 RTP/AVP 96\r\n", "line 3: bad port \"70000\""},
		{"v=0\r\ngarbage\r\n", "line 2 is not type=value"},
		{strings.Repeat("a", maxSDP+1), "too long"},
	} {
		if _, err := parseAnswer([]byte(bad.body)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.body, err, bad.want)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte("v=0\r\nc=IN IP4 10.0.0.5\r\nm=video 15060 RTP/AVP 96\r\ny=0100000001\r\n"))
	f.Add([]byte("m=video 9 TCP/RTP/AVP 96\nc=IN IP6 ::1\na=setup:active\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseAnswer(b)
		if err == nil && (a.ip == "" || a.port < 0 || a.port > 65535) {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func TestOffer(t *testing.T) {
	o := offer{platform: "34020000002000000001", channel: "32010600001310000001", ip: "10.0.0.1", port: 30000, transport: TCPPassive, ssrc: "0200000001"}
	s := o.String()
	for _, want := range []string{"s=Play\r\n", "c=IN IP4 10.0.0.1\r\n", "m=video 30000 TCP/RTP/AVP 96", "a=setup:passive", "y=0200000001\r\n", "a=rtpmap:96 PS/90000"} {
		if !strings.Contains(s, want) {
			t.Errorf("offer lacks %q:\n%s", want, s)
		}
	}
	o.from, o.to = time.Unix(1700000000, 0), time.Unix(1700003600, 0)
	o.transport = UDP
	s = o.String()
	for _, want := range []string{"s=Playback\r\n", "u=32010600001310000001:0\r\n", "t=1700000000 1700003600\r\n", "m=video 30000 RTP/AVP 96"} {
		if !strings.Contains(s, want) {
			t.Errorf("playback offer lacks %q:\n%s", want, s)
		}
	}
}

// TestReorder: packets out of order come out in order; a gap that stays
// open past the window or the wait is a loss, flagged once.
func TestReorder(t *testing.T) {
	type got struct {
		seq  uint16
		lost bool
	}
	run := func(seqs []uint16, gapAt time.Duration) []got {
		var out []got
		var r reorder
		now := time.Unix(0, 0)
		for i, s := range seqs {
			at := now.Add(time.Duration(i) * time.Millisecond)
			if gapAt > 0 && i == len(seqs)-1 {
				at = now.Add(gapAt)
			}
			r.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: s}}, at, func(p *rtp.Packet, lost bool) { out = append(out, got{p.SequenceNumber, lost}) })
		}
		return out
	}
	// Swapped neighbours, across the 16-bit wrap.
	out := run([]uint16{65534, 0, 65535, 1, 2}, 0)
	want := []got{{65534, false}, {65535, false}, {0, false}, {1, false}, {2, false}}
	if len(out) != len(want) {
		t.Fatalf("got %v", out)
	}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("got %v, want %v", out, want)
		}
	}
	// A lost packet: held ones wait, then go on flagged after the wait.
	out = run([]uint16{10, 12, 13, 14}, reorderWait+10*time.Millisecond)
	if len(out) != 4 || out[1] != (got{12, true}) || out[3] != (got{14, false}) {
		t.Fatalf("after a loss: %v", out)
	}
	// Duplicates and late packets are dropped.
	out = run([]uint16{1, 2, 2, 1, 3}, 0)
	if len(out) != 3 {
		t.Fatalf("duplicates: %v", out)
	}
	// A jump far ahead: a loss, and the stream goes on from there.
	out = run([]uint16{1, 2, 5000, 5001}, 0)
	if len(out) != 4 || out[2] != (got{5000, true}) || out[3] != (got{5001, false}) {
		t.Fatalf("jump: %v", out)
	}
}

// FuzzSIPRequest feeds what a device could send through sipgo's parser and
// everything of ours that reads a request before it is answered: the From
// ID, the expiry, the digest credentials, the MANSCDP body. None may panic
// (a panic in the SIP server's reader would stop every device's signalling).
func FuzzSIPRequest(f *testing.F) {
	f.Add([]byte("REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n" +
		"From: <sip:32010600001180000001@3402000000>;tag=1\r\nTo: <sip:32010600001180000001@3402000000>\r\nCall-ID: 1\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:32010600001180000001@127.0.0.1:5061>;expires=3600\r\nExpires: 3600\r\n" +
		"Authorization: Digest username=\"32010600001180000001\", realm=\"3402000000\", nonce=\"x\", uri=\"sip:3402000000\", response=\"00\"\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK2\r\n" +
		"From: <sip:32010600001180000001@3402000000>;tag=1\r\nTo: <sip:34020000002000000001@3402000000>\r\nCall-ID: 2\r\nCSeq: 2 MESSAGE\r\n" +
		"Content-Type: Application/MANSCDP+xml\r\nContent-Length: 119\r\n\r\n" +
		"<?xml version=\"1.0\" encoding=\"GB2312\"?><Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>32010600001180000001</DeviceID><Status>OK</Status></Notify>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := sip.ParseMessage(b)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		_ = fromID(req)
		if d := registerExpiry(req); d < 0 {
			t.Fatalf("negative expiry %v", d)
		}
		if h := req.GetHeader("Authorization"); h != nil {
			_, _ = digest.ParseCredentials(h.Value())
		}
		_, _ = manscdp.Decode(req.Body())
		_, _ = parseAnswer(req.Body())
	})
}

func TestSIPOnly(t *testing.T) {
	for in, keep := range map[string]bool{
		"REGISTER sip:x SIP/2.0\r\n": true, "MESSAGE sip:x SIP/2.0\r\n": true, "SIP/2.0 200 OK\r\n": true,
		"\x00\x01garbage": false, "": false, "register sip:x": false, "A sip": false, "GET / HTTP/1.1": true,
	} {
		out, err := sipOnly(sip.TransportReadProps{}, []byte(in))
		if err != nil || (len(out) > 0) != keep {
			t.Errorf("%q: kept %v (%v), want %v", in, len(out) > 0, err, keep)
		}
	}
}
