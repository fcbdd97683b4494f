package api_test

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
	"gridwatch/camera/whep/wheptest"
)

// whepPost posts an SDP offer as WHEP does and returns the response.
func (ve *videoEnv) whepPost(path, token, contentType, offer string) (*http.Response, string) {
	ve.t.Helper()
	req, _ := http.NewRequest("POST", ve.srv.URL+path, strings.NewReader(offer))
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ve.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// A viewer watches a camera over WebRTC through the API: 201 with an SDP
// answer and the session's Location; pictures at once, a keyframe first;
// the session is audited as webrtc; DELETE ends it (a second DELETE: 404);
// a revoked token ends its session at the next check; the roles and scopes
// of the other outputs apply.
func TestWHEPThroughTheAPI(t *testing.T) {
	ve := newVideoEnv(t)
	id, _ := ve.addCamera(1, "CAM-RTC")
	tok := ve.namedToken("watch webrtc", auth.RoleOperator)
	path := fmt.Sprintf("/api/v1/cameras/%d/whep", id)

	var location string
	v := wheptest.Dial(t, false, func(offer string) (string, error) {
		res, body := ve.whepPost(path, tok, "application/sdp", offer)
		if res.StatusCode != 201 || res.Header.Get("Content-Type") != "application/sdp" {
			return "", fmt.Errorf("POST %s: %d %s %s", path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		location = res.Header.Get("Location")
		return body, nil
	})
	st := v.Wait(t, 30*time.Second)
	t.Logf("first packet %v after the offer", st.First.Sub(v.Asked))
	if !st.FirstKey || !strings.HasPrefix(location, path+"/") {
		t.Errorf("first a keyframe %v; Location %q", st.FirstKey, location)
	}
	req, _ := http.NewRequest("DELETE", ve.srv.URL+location, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	for i, want := range []int{204, 404} {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("DELETE %d: %d, want %d", i+1, res.StatusCode, want)
		}
	}
	rows := ve.waitViewings(fmt.Sprintf("camera=%d", id), 1)
	if len(rows) != 1 || rows[0].Protocol != "webrtc" || rows[0].Bytes == 0 {
		t.Errorf("viewings %+v, want one webrtc session with its bytes", rows)
	}

	// A revoked token's session ends by itself.
	r := ve.do("POST", "/api/v1/tokens", []byte(`{"name":"rtc wall","role":"operator"}`))
	created := r.json(t)
	secret := created["secret"].(string)
	var revokedAt string
	v2 := wheptest.Dial(t, false, func(offer string) (string, error) {
		res, body := ve.whepPost(path, secret, "application/sdp", offer)
		if res.StatusCode != 201 {
			return "", fmt.Errorf("POST: %d %s", res.StatusCode, body)
		}
		revokedAt = res.Header.Get("Location")
		return body, nil
	})
	v2.Wait(t, 30*time.Second)
	if r := ve.do("DELETE", fmt.Sprintf("/api/v1/tokens/%v", created["token"].(map[string]any)["id"]), nil); r.status != 204 && r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	ve.waitViewings(fmt.Sprintf("camera=%d", id), 2)
	req, _ = http.NewRequest("DELETE", ve.srv.URL+revokedAt, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 404 {
		t.Errorf("the revoked token's session still exists: %v %v", err, res.StatusCode)
	}

	// Who may watch gets the STUN/TURN servers (none here) in /me; who
	// may not, does not.
	if st, b := ve.get("/api/v1/me", tok); st != 200 || !strings.Contains(string(b), `"ice_servers"`) {
		t.Errorf("/me of a video viewer: %d %s", st, b)
	}
	if st, b := ve.get("/api/v1/me", ve.tokenFor(auth.RoleIntegration)); st != 200 || strings.Contains(string(b), `"ice_servers"`) {
		t.Errorf("/me of the integration role: %d %s", st, b)
	}

	// Refusals: no token, the integration role, a leader outside the
	// camera's grids, a body that is not SDP, an offer without video.
	for _, tc := range []struct {
		name, token, ct, offer string
		status                 int
	}{
		{"no token", "", "application/sdp", "v=0\r\n", 401},
		{"integration", ve.tokenFor(auth.RoleIntegration), "application/sdp", "v=0\r\n", 403},
		{"not SDP", tok, "application/json", "{}", 400},
		{"no video", tok, "application/sdp", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", 400},
	} {
		if res, body := ve.whepPost(path, tc.token, tc.ct, tc.offer); res.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, res.StatusCode, body, tc.status)
		}
	}
}

// A snapshot is the camera's latest picture as a JPEG, to those who may
// watch it live; taking one is in the view log.
func TestSnapshotThroughTheAPI(t *testing.T) {
	ve := newVideoEnv(t)
	id, _ := ve.addCamera(1, "CAM-SNAP")
	tok := ve.namedToken("snapshots", auth.RoleOperator)
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/cameras/%d/snapshot.jpg", ve.srv.URL, id), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/jpeg" || res.Header.Get("X-Snapshot-Time") == "" {
		t.Fatalf("snapshot: %d %s %q", res.StatusCode, res.Header, body[:min(len(body), 200)])
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(body))
	if err != nil || cfg.Width != 640 || cfg.Height != 360 {
		t.Errorf("snapshot: %dx%d JPEG, %v", cfg.Width, cfg.Height, err)
	}
	if st, _ := ve.get(fmt.Sprintf("/api/v1/cameras/%d/snapshot.jpg", id), ve.tokenFor(auth.RoleIntegration)); st != 403 {
		t.Errorf("the integration role's snapshot: %d, want 403", st)
	}
	rows := ve.waitViewings(fmt.Sprintf("camera=%d", id), 1)
	if len(rows) != 1 || rows[0].Protocol != "jpeg" || rows[0].Bytes != int64(len(body)) {
		t.Errorf("viewings %+v, want the snapshot as jpeg with its bytes", rows)
	}
}
