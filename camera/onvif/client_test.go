package onvif_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"gridwatch/camera/camsim"
	"gridwatch/camera/onvif"
)

// device runs camsim's ONVIF service for one camera with an account.
func device(t *testing.T) (*camsim.Sim, string) {
	t.Helper()
	sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0", Username: "admin", Password: "Hik12345"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.ONVIFHandler())
	t.Cleanup(srv.Close)
	return sim, srv.URL + "/onvif/1/device_service"
}

// A camera added by its ONVIF address: who made it, its clock, its
// profiles, the RTSP URI of each (without credentials) and a snapshot.
func TestDescribe(t *testing.T) {
	sim, addr := device(t)
	ctx := context.Background()
	c := &onvif.Client{URL: addr, Username: "admin", Password: "Hik12345"}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := c.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Manufacturer != "Gridwatch" || d.Serial != "CAMSIM-0001" || !d.PTZ || len(d.Profiles) != 3 || d.ClockOffset.Abs() > 2*time.Second {
		t.Fatalf("device %+v", d)
	}
	if p := d.Profiles[0]; p.Token != "main" || p.Width != 640 || p.Encoding != "H264" || !p.PTZ {
		t.Errorf("main profile %+v", p)
	}
	uri, err := c.StreamURI(ctx, "sub")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(sim.URL(1, camsim.StreamSub), "admin:Hik12345@", "", 1); uri != want || strings.Contains(uri, "Hik12345") {
		t.Errorf("stream URI %q, want %q", uri, want)
	}
	snap, err := c.SnapshotURI(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot URI is behind the device's account (HTTP Digest, as
	// cameras do): refused bare, fetched with the account.
	res, err := http.Get(snap)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Digest ") {
		t.Errorf("a bare snapshot request: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	jpg, err := c.Snapshot(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(jpg)); err != nil {
		t.Errorf("snapshot %s: %v", snap, err)
	}
	if _, err := onvif.GetWithAuth(ctx, http.DefaultClient, snap, "admin", "wrong", 1<<20); !errors.Is(err, onvif.ErrUnauthorized) {
		t.Errorf("a snapshot with a wrong password: %v", err)
	}

	// A wrong password is refused, and said so.
	bad := &onvif.Client{URL: addr, Username: "admin", Password: "wrong"}
	if err := bad.Connect(ctx); !errors.Is(err, onvif.ErrUnauthorized) {
		t.Errorf("wrong password: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// PTZ over the real protocol: a continuous move moves the head until
// stopped, a preset saves the position, home and the preset go back and
// forth, and an unknown preset is a fault.
func TestPTZ(t *testing.T) {
	_, addr := device(t)
	ctx := context.Background()
	c := &onvif.Client{URL: addr, Username: "admin", Password: "Hik12345"}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Move(ctx, "main", onvif.Vector{Pan: 0.5, Tilt: -0.2}, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, moving, err := c.Position(ctx, "main")
		if err != nil {
			t.Fatal(err)
		}
		if !moving {
			t.Fatal("not moving after a continuous move")
		}
		if p.Pan > 0.05 && p.Tilt < -0.02 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the head has not moved: %+v", p)
		}
		<-time.After(20 * time.Millisecond) // the head moves in real time
	}
	if err := c.Stop(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	at, moving, err := c.Position(ctx, "main")
	if err != nil || moving {
		t.Fatalf("after stop: moving %v, %v", moving, err)
	}
	// A move with a timeout stops by itself: the dead man's switch when the
	// stop never comes (a browser that lost its network mid-press).
	if err := c.Move(ctx, "main", onvif.Vector{Zoom: 0.5}, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for {
		p, moving, err := c.Position(ctx, "main")
		if err != nil {
			t.Fatal(err)
		}
		if !moving {
			if p.Zoom <= 0 || p.Zoom > 0.5*0.1+0.01 {
				t.Errorf("zoom after a 100 ms move at 0.5/s: %v", p.Zoom)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a move with a timeout never stopped")
		}
		<-time.After(20 * time.Millisecond)
	}
	if err := c.Stop(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	at, _, _ = c.Position(ctx, "main")
	tok, err := c.SetPreset(ctx, "main", "东门 gate")
	if err != nil || tok == "" {
		t.Fatalf("set preset: %q %v", tok, err)
	}
	if err := c.Home(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := c.Position(ctx, "main"); p != (onvif.Vector{}) {
		t.Errorf("home: %+v", p)
	}
	if err := c.GotoPreset(ctx, "main", tok); err != nil {
		t.Fatal(err)
	}
	if p, _, _ := c.Position(ctx, "main"); p != at {
		t.Errorf("preset: at %+v, want %+v", p, at)
	}
	ps, err := c.Presets(ctx, "main")
	if err != nil || len(ps) != 1 || ps[0].Name != "东门 gate" || ps[0].Token != tok {
		t.Errorf("presets %+v %v", ps, err)
	}
	if err := c.GotoPreset(ctx, "main", "99"); err == nil || !strings.Contains(err.Error(), "no preset") {
		t.Errorf("unknown preset: %v", err)
	}
	if err := c.Move(ctx, "main", onvif.Vector{Pan: 2}, 0); err == nil {
		t.Error("a speed of 2 was sent")
	}
}

// The digest is WS-Security's (the ONVIF Application Programmer's Guide's
// example) and a token is checked for its account, its digest and its age.
func TestUsernameToken(t *testing.T) {
	nonce, _ := base64.StdEncoding.DecodeString("LKqI6G/AikKCQrN0zqZFlg==")
	if got := onvif.Digest(nonce, "2010-09-16T07:50:45Z", "userpassword"); got != "tuOSpGlFlIXsozq4HFNeeGeFLEI=" {
		t.Errorf("digest %s, want the guide's tuOSpGlFlIXsozq4HFNeeGeFLEI=", got)
	}
	now := time.Now()
	tok := onvif.NewToken("admin", "pw", now)
	if !tok.Check("admin", "pw", now, time.Minute) || tok.Check("admin", "other", now, time.Minute) || tok.Check("root", "pw", now, time.Minute) {
		t.Error("a token checks against the wrong account")
	}
	if tok.Check("admin", "pw", now.Add(10*time.Minute), time.Minute) {
		t.Error("a stale token was taken")
	}
}

// FuzzDeviceService: whatever a client posts, the simulated device answers
// a SOAP envelope (a fault for nonsense) and never panics; what the client
// reads back from any answer is an error or a value, never a panic.
func FuzzDeviceService(f *testing.F) {
	sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0"})
	if err != nil {
		f.Fatal(err)
	}
	h := sim.ONVIFHandler()
	f.Add("ptz_service", `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><ContinuousMove><ProfileToken>main</ProfileToken><Velocity><PanTilt x="0.5" y="0"/></Velocity></ContinuousMove></s:Body></s:Envelope>`)
	f.Add("device_service", `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><GetDeviceInformation/></s:Body></s:Envelope>`)
	f.Add("media_service", `<Envelope><Body><GetStreamUri><ProfileToken>sub</ProfileToken></GetStreamUri></Body></Envelope>`)
	f.Fuzz(func(t *testing.T, service, body string) {
		req := httptest.NewRequest("POST", "/onvif/1/"+url.PathEscape(service), strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 && rec.Code != 404 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// xs:durations as devices write them.
func TestDuration(t *testing.T) {
	if got := onvif.Duration(1500 * time.Millisecond); got != "PT1.5S" {
		t.Errorf("Duration: %s", got)
	}
	for in, want := range map[string]time.Duration{"PT2S": 2 * time.Second, "PT1M30S": 90 * time.Second, "PT0.25S": 250 * time.Millisecond, "PT1H": time.Hour} {
		if d, ok := onvif.ParseDuration(in); !ok || d != want {
			t.Errorf("ParseDuration(%s) = %v %v, want %v", in, d, ok, want)
		}
	}
	for _, bad := range []string{"", "PT", "P1D", "PT-1S", "PTS", "PT1X", "2S"} {
		if _, ok := onvif.ParseDuration(bad); ok {
			t.Errorf("ParseDuration(%q) took it", bad)
		}
	}
}

// Digest as RFC 7616 computes it (its MD5 example), and challenges as
// cameras write them.
func TestDigest(t *testing.T) {
	got := onvif.DigestResponse(md5.New, "Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
		"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth")
	if got != "8ca523f5e9506fed4657c9700eebdbec" {
		t.Errorf("RFC 7616 MD5 example: %s", got)
	}
	p := onvif.ParseChallenge(`realm="IP Camera(C1234)", qop="auth,auth-int", nonce="4e5a3\"x", stale=FALSE, opaque=""`)
	if p["realm"] != "IP Camera(C1234)" || p["qop"] != "auth,auth-int" || p["nonce"] != `4e5a3"x` || p["stale"] != "FALSE" || p["opaque"] != "" {
		t.Errorf("challenge %q", p)
	}
}

// FuzzChallenge: any challenge parses to parameters, never a panic.
func FuzzChallenge(f *testing.F) {
	f.Add(`realm="a", nonce="b", qop="auth"`)
	f.Add(`realm="unterminated`)
	f.Add(`=,,=="\`)
	f.Fuzz(func(t *testing.T, s string) {
		_ = onvif.ParseChallenge(s)
	})
}

// A device's snapshot URI is followed only to the device itself, without
// redirects, and only a JPEG is taken: the account goes nowhere else, and
// a device cannot make the server fetch (or pass on) anything else.
func TestSnapshotRefusals(t *testing.T) {
	sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0", Username: "admin", Password: "Hik12345"})
	if err != nil {
		t.Fatal(err)
	}
	// Elsewhere: another host (127.0.0.2; loopback is all of 127/8) that
	// must never be asked. (The device's own host on another port is the
	// device: ONVIF and snapshots often answer on different ports.)
	var asked []string
	elsewhere := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write([]byte{0xFF, 0xD8, 0xFF, 0xE0})
	}))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere.Listener.Close()
	elsewhere.Listener = ln
	elsewhere.Start()
	defer elsewhere.Close()
	// The device, whose snapshot URI the test chooses.
	var snapURI string
	onvifHandler := sim.ONVIFHandler()
	var dev *httptest.Server
	dev = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>login</html>"))
			return
		case "/redirect":
			http.Redirect(w, r, elsewhere.URL+"/snap.jpg", http.StatusFound)
			return
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		if strings.Contains(body.String(), "GetSnapshotUri") {
			onvif.Respond(w, 200, onvif.MediaURIResponse{XMLName: xml.Name{Local: "GetSnapshotUriResponse"}, URI: strings.ReplaceAll(snapURI, "DEVICE", dev.URL)})
			return
		}
		r.Body = io.NopCloser(&body)
		onvifHandler.ServeHTTP(w, r)
	}))
	defer dev.Close()
	ctx := context.Background()
	c := &onvif.Client{URL: dev.URL + "/onvif/1/device_service", Username: "admin", Password: "Hik12345"}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ uri, want string }{
		{elsewhere.URL + "/snap.jpg", "not on the device itself"},
		{"file:///etc/passwd", "not on the device itself"},
		{"DEVICE/html", "not a JPEG"},
		{"DEVICE/redirect", ""},
	} {
		snapURI = tc.uri
		jpg, err := c.Snapshot(ctx, "main")
		if err == nil || !strings.Contains(err.Error(), tc.want) || jpg != nil {
			t.Errorf("snapshot URI %s: %d bytes, %v; want an error saying %q", tc.uri, len(jpg), err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Hik12345") {
			t.Errorf("snapshot URI %s: the error shows the password: %v", tc.uri, err)
		}
	}
	if len(asked) > 0 {
		t.Errorf("a host other than the device was asked: %v", asked)
	}
}
