package gbsim

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"gridwatch/camera/gb28181/manscdp"
	"gridwatch/camera/gb28181/ps"
)

func TestMain(m *testing.M) {
	// sipgo's own chatter (connections closing) goes to its default
	// logger.
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m)
}

// testChannels are five cameras: a PTZ dome, one without a position, one
// H.265 one.
func testChannels() []Channel {
	return []Channel{
		{ID: channelID(1), Name: "大门", Lon: 116.397128, Lat: 39.916527, PTZ: true},
		{ID: channelID(2), Name: "Yard", Lon: 116.40, Lat: 39.92},
		{ID: channelID(3), Name: "Roof", NoPosition: true},
		{ID: channelID(4), Name: "Gate H.265", Lon: 116.41, Lat: 39.93, H265: true},
		{ID: channelID(5), Name: "Lane", Lon: 116.42, Lat: 39.94},
	}
}

func TestRegisterKeepaliveQueries(t *testing.T) {
	for _, tc := range []struct {
		transport string
		qop       bool
		charset   string
	}{
		{"udp", true, ""},
		{"udp", false, "UTF-8"},
		{"tcp", true, ""},
	} {
		t.Run(tc.transport+"/qop="+strconv.FormatBool(tc.qop), func(t *testing.T) {
			p := newPlatform(t, tc.qop)
			d := startDevice(t, p, Config{Transport: tc.transport, Channels: testChannels(),
				Keepalive: 50 * time.Millisecond, Charset: tc.charset, Name: "NVR 一号"})

			k := recv(t, p.keepalives, "keepalive")
			if k.Root() != manscdp.RootNotify || k.DeviceID != testDeviceID || k.Status != "OK" {
				t.Errorf("keepalive %+v", k)
			}

			// The catalog: five items in messages of two.
			got := p.query(manscdp.Query(manscdp.CmdCatalog, testDeviceID, p.nextSN()))
			if len(got) != 3 {
				t.Fatalf("catalog in %d messages, want 3", len(got))
			}
			var items []manscdp.Item
			for i, m := range got {
				want := []int{2, 2, 1}[i]
				if m.SumNum != 5 || m.DeviceList.Num != want || len(m.DeviceList.Items) != want || m.DeviceID != testDeviceID {
					t.Errorf("catalog message %d: SumNum %d, Num %d, %d items, DeviceID %s", i, m.SumNum, m.DeviceList.Num, len(m.DeviceList.Items), m.DeviceID)
				}
				items = append(items, m.DeviceList.Items...)
			}
			for i, it := range items {
				ch := testChannels()[i]
				if it.DeviceID != ch.ID || it.Name != ch.Name || it.ParentID != testDeviceID || it.CivilCode != ch.ID[:6] || !it.Online() || !it.IsVideoChannel() {
					t.Errorf("item %d: %+v", i, it)
				}
				lon, lat, ok := it.Position()
				if ok == ch.NoPosition || (ok && (abs(lon-ch.Lon) > 1e-6 || abs(lat-ch.Lat) > 1e-6)) {
					t.Errorf("item %d: position %v %v %v, want %v %v (none: %v)", i, lon, lat, ok, ch.Lon, ch.Lat, ch.NoPosition)
				}
				want := manscdp.PTZFixed
				if ch.PTZ {
					want = manscdp.PTZDome
				}
				if it.PTZKind() != want {
					t.Errorf("item %d: PTZ kind %d, want %d", i, it.PTZKind(), want)
				}
			}

			info := p.query(manscdp.Query(manscdp.CmdDeviceInfo, testDeviceID, p.nextSN()))[0]
			if info.DeviceName != "NVR 一号" || info.Manufacturer != "gbsim" || info.Channel != 5 || info.Result != "OK" {
				t.Errorf("DeviceInfo %+v", info)
			}
			status := p.query(manscdp.Query(manscdp.CmdDeviceStatus, testDeviceID, p.nextSN()))[0]
			if status.Result != "OK" || status.Online != "ONLINE" || status.Status != "OK" || status.Encode != "ON" || status.Record != "OFF" {
				t.Errorf("DeviceStatus %+v", status)
			}
			if _, err := manscdp.ParseTime(status.DeviceTime, nil); err != nil {
				t.Errorf("DeviceStatus time: %v", err)
			}

			if err := d.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if r := recv(t, p.regs, "unregistration"); r.expires != 0 {
				t.Errorf("Close registered for %d s, want 0", r.expires)
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestWrongPassword(t *testing.T) {
	p := newPlatform(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	d, err := Start(ctx, Config{Server: p.addr("udp"), ServerID: testServerID, DeviceID: testDeviceID, Password: "wrong"})
	if err == nil {
		d.Close()
		t.Fatal("Start with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "403") {
		t.Errorf("error %q does not say 403", err)
	}
}

func TestReregister(t *testing.T) {
	p := newPlatform(t, false)
	d := startDevice(t, p, Config{Channels: testChannels()})
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	d.SetPassword("other")
	if err := d.Reregister(ctx); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("Reregister with a wrong password: %v", err)
	}
	p.setPassword("other")
	if err := d.Reregister(ctx); err != nil {
		t.Fatalf("Reregister: %v", err)
	}
	recv(t, p.regs, "REGISTER")
}

func TestRefresh(t *testing.T) {
	p := newPlatform(t, true)
	startDevice(t, p, Config{Expires: 1500 * time.Millisecond})
	// Re-registers at 2/3 of the expiry granted (1 s).
	for range 2 {
		if r := recv(t, p.regs, "REGISTER refresh"); r.expires != 1 {
			t.Errorf("refresh for %d s", r.expires)
		}
	}
}

func TestRefusedKeepalive(t *testing.T) {
	p := newPlatform(t, true)
	startDevice(t, p, Config{Keepalive: 20 * time.Millisecond})
	// A platform that forgot the device refuses its keepalive: it
	// registers again.
	p.mu.Lock()
	p.refuseKeepalive = true
	p.mu.Unlock()
	recv(t, p.regs, "REGISTER after a refused keepalive")
	p.mu.Lock()
	p.refuseKeepalive = false
	p.mu.Unlock()
	recv(t, p.keepalives, "keepalive")
}

func TestPauseKeepalive(t *testing.T) {
	p := newPlatform(t, true)
	d := startDevice(t, p, Config{Keepalive: time.Hour})
	d.PauseKeepalive(true)
	d.PauseKeepalive(false) // resuming sends one at once
	recv(t, p.keepalives, "keepalive after resuming")
}

func TestSubscriptionPTZAlarm(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			p := newPlatform(t, true)
			d := startDevice(t, p, Config{Transport: transport, Channels: testChannels()[:2], GCJ02: true})

			body, err := manscdp.Encode(manscdp.Query(manscdp.CmdCatalog, testDeviceID, p.nextSN()), "GB2312")
			if err != nil {
				t.Fatal(err)
			}
			sub := p.newRequest(sip.SUBSCRIBE, testDeviceID, contentTypeMANSCDP, body)
			sub.AppendHeader(sip.NewHeader("Event", "Catalog"))
			sub.AppendHeader(sip.NewHeader("Expires", "3600"))
			sub.AppendHeader(p.dlg.ContactHDR.Clone())
			res := p.do(sub)
			if e := res.GetHeader("Expires"); e == nil || e.Value() != "3600" {
				t.Errorf("SUBSCRIBE answer Expires %v", e)
			}

			add := Channel{ID: channelID(9), Name: "New", Lon: 116.5, Lat: 39.9}
			if err := d.AddChannel(add); err != nil {
				t.Fatalf("AddChannel: %v", err)
			}
			n := recv(t, p.notifies, "NOTIFY")
			if ev := n.GetHeader("Event"); ev == nil || ev.Value() != "Catalog" {
				t.Errorf("NOTIFY Event %v", ev)
			}
			if st := n.GetHeader("Subscription-State"); st == nil || !strings.HasPrefix(st.Value(), "active") {
				t.Errorf("NOTIFY Subscription-State %v", st)
			}
			if n.CallID().Value() != sub.CallID().Value() || n.To().Params.GetOr("tag", "") != sub.From().Params.GetOr("tag", "") {
				t.Errorf("NOTIFY outside the subscription's dialog")
			}
			m, err := manscdp.Decode(n.Body())
			if err != nil {
				t.Fatal(err)
			}
			it := m.DeviceList.Items
			if m.CmdType != manscdp.CmdCatalog || len(it) != 1 || it[0].DeviceID != add.ID || it[0].Event != "ADD" {
				t.Fatalf("NOTIFY body %+v", m)
			}
			// GCJ-02 is offset from WGS-84 by some hundred metres in China.
			if lon, lat, ok := it[0].Position(); !ok || abs(lon-add.Lon) < 1e-4 || abs(lon-add.Lon) > 0.02 || abs(lat-add.Lat) > 0.02 {
				t.Errorf("GCJ-02 position %v %v %v of WGS-84 %v %v", lon, lat, ok, add.Lon, add.Lat)
			}
			if err := d.RemoveChannel(add.ID); err != nil {
				t.Fatalf("RemoveChannel: %v", err)
			}
			m, err = manscdp.Decode(recv(t, p.notifies, "NOTIFY").Body())
			if err != nil {
				t.Fatal(err)
			}
			if it := m.DeviceList.Items; len(it) != 1 || it[0].DeviceID != add.ID || it[0].Event != "DEL" {
				t.Fatalf("NOTIFY body %+v", m)
			}

			// PTZ: right at speed 0x80 to channel 1.
			ptz := manscdp.PTZ{Pan: 1, PanSpeed: 0x80}
			p.send(manscdp.PTZControl(channelID(1), p.nextSN(), ptz))
			waitFor(t, "PTZ", func() bool { _, n := d.LastPTZ(channelID(1)); return n == 1 })
			if got, _ := d.LastPTZ(channelID(1)); got.Pan != 1 || got.PanSpeed != 0x80 {
				t.Errorf("LastPTZ %+v", got)
			}

			at := time.Now().Truncate(time.Second)
			if err := d.Alarm(channelID(2), 2, 5, at, "motion"); err != nil {
				t.Fatalf("Alarm: %v", err)
			}
			a := recv(t, p.msgs, "alarm")
			if a.Root() != manscdp.RootNotify || a.CmdType != manscdp.CmdAlarm || a.DeviceID != channelID(2) ||
				a.AlarmMethod != "5" || a.Info == nil || a.Info.AlarmType != "2" || a.AlarmDescription != "motion" {
				t.Errorf("alarm %+v", a)
			}
			if _, _, ok := a.Position(); !ok {
				t.Errorf("alarm without a position")
			}
			if got, err := manscdp.ParseTime(a.AlarmTime, nil); err != nil || !got.Equal(at) {
				t.Errorf("alarm time %q, want %v", a.AlarmTime, at)
			}
		})
	}
}

func TestRecordInfo(t *testing.T) {
	p := newPlatform(t, true)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.Local)
	var recs []Record
	for h := range 5 {
		recs = append(recs, Record{Channel: channelID(1), Start: day.Add(time.Duration(h) * time.Hour), End: day.Add(time.Duration(h)*time.Hour + 50*time.Minute), Type: "time"})
	}
	recs = append(recs, Record{Channel: channelID(2), Start: day, End: day.Add(time.Hour), Type: "alarm"})
	startDevice(t, p, Config{Channels: testChannels(), Records: recs})

	q := manscdp.Query(manscdp.CmdRecordInfo, channelID(1), p.nextSN())
	q.StartTime = manscdp.FormatTime(day.Add(90*time.Minute), nil)
	q.EndTime = manscdp.FormatTime(day.Add(4*time.Hour+10*time.Minute), nil)
	q.Type = "all"
	got := p.query(q)
	var items []manscdp.RecordItem
	for _, m := range got {
		if m.SumNum != 4 {
			t.Errorf("SumNum %d, want 4", m.SumNum)
		}
		items = append(items, m.RecordList.Items...)
	}
	if len(got) != 2 || len(items) != 4 {
		t.Fatalf("%d records in %d messages, want 4 in 2", len(items), len(got))
	}
	for i, it := range items {
		want := recs[i+1]
		if it.DeviceID != channelID(1) || it.StartTime != manscdp.FormatTime(want.Start, nil) || it.EndTime != manscdp.FormatTime(want.End, nil) || it.Type != "time" {
			t.Errorf("record %d: %+v", i, it)
		}
	}

	q = manscdp.Query(manscdp.CmdRecordInfo, channelID(3), p.nextSN())
	q.StartTime, q.EndTime = manscdp.FormatTime(day, nil), manscdp.FormatTime(day.Add(24*time.Hour), nil)
	if got := p.query(q); len(got) != 1 || got[0].SumNum != 0 {
		t.Errorf("no records: %d messages, SumNum %d", len(got), got[0].SumNum)
	}
}

func TestLive(t *testing.T) {
	for _, tc := range []struct {
		sip, media string
		h265       bool
	}{
		{"udp", "udp", false},
		{"udp", "tcp-passive", false},
		{"udp", "tcp-active", false},
		{"tcp", "tcp-passive", true},
		{"tcp", "udp", false},
	} {
		t.Run(tc.sip+"/"+tc.media, func(t *testing.T) {
			p := newPlatform(t, true)
			d := startDevice(t, p, Config{Transport: tc.sip, Channels: testChannels(), Audio: true})
			ch := channelID(1)
			if tc.h265 {
				ch = channelID(4)
			}
			c := p.invite(ch, "Play", tc.media, "0340200001", 0, 0)
			for _, want := range []string{"s=Play", "a=sendonly", "a=rtpmap:96 PS/90000", "y=0340200001", "c=IN IP4 127.0.0.1"} {
				if !strings.Contains(c.answer, want+"\r\n") {
					t.Errorf("answer lacks %q:\n%s", want, c.answer)
				}
			}
			switch tc.media {
			case "tcp-passive":
				if !strings.Contains(c.answer, "TCP/RTP/AVP 96\r\n") || !strings.Contains(c.answer, "a=setup:active\r\n") {
					t.Errorf("answer to setup:passive:\n%s", c.answer)
				}
			case "tcp-active":
				if !strings.Contains(c.answer, "a=setup:passive\r\n") || answerPort(t, c.answer) == 9 {
					t.Errorf("answer to setup:active:\n%s", c.answer)
				}
			}
			packs, stamps := c.packs(120)
			if stamps[0] != 0 {
				t.Errorf("first timestamp %d, want 0", stamps[0])
			}
			// The packs demultiplex (with the platform's demuxer) into
			// pictures 40 ms apart, the first a keyframe, each followed by
			// two 20 ms audio frames, at the packs' RTP timestamps.
			var frames []ps.Frame
			dm := ps.Demuxer{OnFrame: func(f ps.Frame) { frames = append(frames, f) }}
			for _, pk := range packs {
				if err := dm.Write(pk); err != nil {
					t.Fatalf("demux: %v", err)
				}
				dm.Flush()
			}
			if len(frames) != len(packs) {
				t.Fatalf("%d frames out of %d packs", len(frames), len(packs))
			}
			wantVideo := ps.H264
			if tc.h265 {
				wantVideo = ps.H265
			}
			for i, f := range frames {
				if !f.HasPTS || uint32(f.PTS) != stamps[i] {
					t.Fatalf("frame %d: PTS %d (%v), RTP timestamp %d", i, f.PTS, f.HasPTS, stamps[i])
				}
				switch i % 3 {
				case 0:
					if !f.Video || f.Type != wantVideo || f.PTS != int64(i/3)*frameTicks || f.Key != ((i/3)%gop == 0) {
						t.Fatalf("frame %d: video %v, type %v, PTS %d, key %v", i, f.Video, f.Type, f.PTS, f.Key)
					}
				default:
					if f.Video || f.Type != ps.G711A || len(f.Data) != toneFrame || f.PTS != int64(i/3)*frameTicks+int64(i%3-1)*audioTicks {
						t.Fatalf("frame %d: video %v, type %v, %d bytes, PTS %d", i, f.Video, f.Type, len(f.Data), f.PTS)
					}
				}
			}
			if d.Streams() != 1 {
				t.Errorf("Streams() = %d, want 1", d.Streams())
			}
			c.bye()
			waitFor(t, "Streams() = 0 after BYE", func() bool { return d.Streams() == 0 })
		})
	}
}

func TestLossAndReorder(t *testing.T) {
	p := newPlatform(t, true)
	d := startDevice(t, p, Config{Channels: testChannels()})
	d.SetLoss(5)
	c := p.invite(channelID(1), "Play", "udp", "0340200002", 0, 0)
	prev := c.next().SequenceNumber
	gaps := 0
	for range 40 {
		s := c.next().SequenceNumber
		if s != prev+1 {
			gaps++
		}
		prev = s
	}
	if gaps < 5 {
		t.Errorf("%d gaps with every 5th packet lost", gaps)
	}
	d.SetLoss(0)
	d.SetReorder(true)
	back := 0
	for range 60 {
		s := c.next().SequenceNumber
		if int16(s-prev) < 0 {
			back++
		}
		prev = s
	}
	if back == 0 {
		t.Error("no packet out of order with SetReorder")
	}
	c.bye()
	waitFor(t, "Streams() = 0 after BYE", func() bool { return d.Streams() == 0 })
}

func TestPlayback(t *testing.T) {
	p := newPlatform(t, true)
	d := startDevice(t, p, Config{Channels: testChannels()})
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.Local).Unix()
	c := p.invite(channelID(2), "Playback", "tcp-passive", "1340200003", start, start+8)
	if !strings.Contains(c.answer, "s=Playback\r\n") || !strings.Contains(c.answer, "t="+strconv.FormatInt(start, 10)+" "+strconv.FormatInt(start+8, 10)+"\r\n") {
		t.Errorf("playback answer:\n%s", c.answer)
	}
	_, stamps := c.packs(3)
	if stamps[0] != 0 {
		t.Errorf("playback starts at %d, want 0", stamps[0])
	}
	// Seek to 6 s and play at 4x: the stream goes on from the keyframe at
	// 6 s and ends about 0.5 s later.
	c.info("PLAY RTSP/1.0\r\nCSeq: 2\r\nRange: npt=6-\r\nScale: 4.0\r\n\r\n")
	for {
		_, ts := c.packs(1)
		if ts[0] == 6*90000 {
			break
		}
		if ts[0] > 6*90000 {
			t.Fatalf("timestamp %d after seeking to 6 s, want %d", ts[0], 6*90000)
		}
	}
	req := recv(t, p.ended, "MediaStatus")
	m, err := manscdp.Decode(req.Body())
	if err != nil {
		t.Fatal(err)
	}
	if m.Root() != manscdp.RootNotify || m.NotifyType != "121" || m.DeviceID != channelID(2) {
		t.Errorf("media status %+v", m)
	}
	// A platform finds the playback by the INVITE's Call-ID, and the
	// device by the From.
	if req.CallID().Value() != c.sess.InviteRequest.CallID().Value() || req.From().Address.User != testDeviceID {
		t.Errorf("MediaStatus Call-ID %s From %s, want the INVITE's %s and the device", req.CallID().Value(), req.From().Address.User, c.sess.InviteRequest.CallID().Value())
	}
	if d.Streams() != 1 {
		t.Errorf("Streams() = %d after the end, want 1 until BYE", d.Streams())
	}
	c.bye()
	waitFor(t, "Streams() = 0 after BYE", func() bool { return d.Streams() == 0 })
}

func TestPause(t *testing.T) {
	p := newPlatform(t, true)
	startDevice(t, p, Config{Channels: testChannels()})
	start := time.Now().Add(-time.Hour).Unix()
	c := p.invite(channelID(1), "Playback", "udp", "1340200004", start, start+60)
	c.packs(3)
	c.info("PAUSE RTSP/1.0\r\nCSeq: 1\r\nPauseTime: now\r\n\r\n")
	c.info("PLAY RTSP/1.0\r\nCSeq: 2\r\nRange: npt=now-\r\n\r\n")
	c.packs(3)
}

func TestCloseSendsBye(t *testing.T) {
	p := newPlatform(t, true)
	d := startDevice(t, p, Config{Channels: testChannels()})
	c := p.invite(channelID(1), "Play", "udp", "0340200005", 0, 0)
	c.packs(2)
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if id := recv(t, p.byes, "BYE"); id != c.sess.InviteRequest.CallID().Value() {
		t.Errorf("BYE for call %s", id)
	}
	if d.Streams() != 0 {
		t.Errorf("Streams() = %d after Close", d.Streams())
	}
}

func TestOfferParsing(t *testing.T) {
	o, err := parseOffer([]byte(offerSDP("Playback", channelID(1), 5000, "tcp-active", "1000000001", 10, 20)))
	if err != nil {
		t.Fatal(err)
	}
	if o.name != "Playback" || o.ip != "127.0.0.1" || o.port != 5000 || !o.tcp || o.setup != "active" || o.ssrc != "1000000001" || o.start != 10 || o.end != 20 {
		t.Errorf("offer %+v", o)
	}
	for _, bad := range []string{
		"v=0\r\ns=Play\r\nc=IN IP4 1.2.3.4\r\nm=video 1 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\n", // no PS
		"v=0\r\ns=Play\r\nm=video 1 RTP/AVP 96\r\na=rtpmap:96 PS/90000\r\n",                       // no address
		"v=0\r\ns=Playback\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 1 RTP/AVP 96\r\na=rtpmap:96 PS/90000\r\n",
	} {
		if _, err := parseOffer([]byte(bad)); err == nil {
			t.Errorf("parseOffer accepted %q", bad)
		}
	}
	if s, ok := parseSSRC(subjectSSRC(channelID(1) + ":0100000001," + testServerID + ":0")); !ok || s != 100000001 {
		t.Errorf("Subject SSRC %d %v", s, ok)
	}
	c, err := parseMANSRTSP([]byte("PLAY RTSP/1.0\r\nCSeq: 3\r\nRange: npt=100-\r\nScale: 2.0\r\n"))
	if err != nil || c.method != "PLAY" || c.seek != 100 || c.scale != 2 {
		t.Errorf("MANSRTSP %+v %v", c, err)
	}
	c, err = parseMANSRTSP([]byte("PAUSE MANSRTSP/1.0\r\nCSeq: 4\r\nPauseTime: now\r\n"))
	if err != nil || c.method != "PAUSE" || c.seek != -1 || c.scale != 0 {
		t.Errorf("MANSRTSP %+v %v", c, err)
	}
	for _, bad := range []string{"GET / HTTP/1.1\r\n", "PLAY RTSP/1.0\r\nRange: clock=1-\r\n", "PLAY RTSP/1.0\r\nScale: 0\r\n"} {
		if _, err := parseMANSRTSP([]byte(bad)); err == nil {
			t.Errorf("parseMANSRTSP accepted %q", bad)
		}
	}
}
