package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
)

// The server side of the field app (issue 18): device sessions, the "my
// tasks" list, transitions and uploads a phone's queue may send twice, and
// where a field report was made from.

// fieldUser signs in as a new grid leader of code from a phone; it returns
// the browser and its CSRF token.
func (e *authEnv) fieldUser(name, code string) (*http.Client, string, map[string]any) {
	e.t.Helper()
	e.createUser(name, "correct horse battery", auth.RoleGridLeader, code)
	b := e.browser()
	r := e.send(b, "POST", "/api/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":"correct horse battery","device":"Pixel 7 · Chrome"}`, name), nil)
	if r.status != 200 {
		e.t.Fatalf("device login: %d %s", r.status, r.body)
	}
	me := r.json(e.t)
	return b, me["csrf_token"].(string), me
}

func TestDeviceSessions(t *testing.T) {
	e := newAuthEnv(t)
	_, _, _, code := e.gridPoint()
	phone, _, me := e.fieldUser("zhaoliu", code)
	sess, _ := me["session"].(map[string]any)
	if sess == nil || sess["device"] != "Pixel 7 · Chrome" {
		t.Fatalf("login answer's session %v: want the device", me["session"])
	}
	// A dashboard sign-in of the same user ends with the browser and after
	// 30 idle minutes (the test's limit); the device session outlives both.
	desk := e.browser()
	r := e.login(desk, "zhaoliu", "correct horse battery")
	if strings.Contains(r.header.Get("Set-Cookie"), "Max-Age") {
		t.Errorf("dashboard cookie %q: want a browser-session cookie", r.header.Get("Set-Cookie"))
	}
	e.clock.Add(3 * 24 * time.Hour)
	if r := e.send(desk, "GET", "/api/v1/me", "", nil); r.status != 401 {
		t.Errorf("dashboard session after 3 idle days: %d, want 401", r.status)
	}
	r = e.send(phone, "GET", "/api/v1/me", "", nil)
	if r.status != 200 {
		t.Fatalf("device session after 3 idle days: %d %s", r.status, r.body)
	}
	sid := int64(r.json(t)["session"].(map[string]any)["id"].(float64))
	// The admin sees the phone among the user's sessions and revokes it.
	uid := int64(me["id"].(float64))
	r = e.do("GET", fmt.Sprintf("/api/v1/users/%d/sessions", uid), nil)
	var list struct {
		Sessions []struct {
			ID     int64  `json:"id"`
			Device string `json:"device"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 {
		t.Fatalf("sessions: %d %s", r.status, r.body)
	}
	found := false
	for _, s := range list.Sessions {
		found = found || (s.ID == sid && s.Device == "Pixel 7 · Chrome")
	}
	if !found {
		t.Fatalf("sessions %s: want session %d of the phone", r.body, sid)
	}
	if strings.Contains(string(r.body), "token_hash") || strings.Contains(string(r.body), "csrf") {
		t.Errorf("the sessions list shows secrets: %s", r.body)
	}
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/sessions/%d", sid), nil); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := e.send(phone, "GET", "/api/v1/me", "", nil); r.status != 401 {
		t.Errorf("revoked phone: %d, want 401", r.status)
	}
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/sessions/%d", sid), nil); r.status != 404 {
		t.Errorf("revoke twice: %d, want 404", r.status)
	}
	a := e.do("GET", "/api/v1/audit?action=auth.session_revoked", nil)
	if !strings.Contains(string(a.body), "Pixel 7") {
		t.Errorf("audit of the revocation: %s", a.body)
	}
	// A device name that is not one is refused, naming the field.
	long := strings.Repeat("x", auth.MaxDeviceName+1)
	r = e.send(e.browser(), "POST", "/api/v1/auth/login", fmt.Sprintf(`{"username":"zhaoliu","password":"correct horse battery","device":%q}`, long), nil)
	if r.status != 400 || r.errorOf(t)["details"].(map[string]any)["field"] != "device" {
		t.Errorf("long device name: %d %s", r.status, r.body)
	}
	// An account that manages users signs in on the dashboard only.
	e.createUser("qianer", "correct horse battery", auth.RoleAdmin)
	r = e.send(e.browser(), "POST", "/api/v1/auth/login", `{"username":"qianer","password":"correct horse battery","device":"admin phone"}`, nil)
	if r.status != 403 || r.errorOf(t)["details"].(map[string]any)["field"] != "device" || r.header.Get("Set-Cookie") != "" {
		t.Errorf("admin device login: %d %s %q, want 403 naming device and no cookie", r.status, r.body, r.header.Get("Set-Cookie"))
	}
	if r := e.login(e.browser(), "qianer", "correct horse battery"); r.status != 200 {
		t.Errorf("the admin's dashboard login after it: %d %s", r.status, r.body)
	}
	// The device session's own limit: 30 idle days (the default) end it.
	phone2, _, _ := e.fieldUserAgain("zhaoliu")
	e.clock.Add(31 * 24 * time.Hour)
	if r := e.send(phone2, "GET", "/api/v1/me", "", nil); r.status != 401 {
		t.Errorf("device session after 31 idle days: %d, want 401", r.status)
	}
}

// fieldUserAgain signs an existing user in from a phone.
func (e *authEnv) fieldUserAgain(name string) (*http.Client, string, map[string]any) {
	e.t.Helper()
	b := e.browser()
	r := e.send(b, "POST", "/api/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":"correct horse battery","device":"old phone"}`, name), nil)
	if r.status != 200 {
		e.t.Fatalf("device login: %d %s", r.status, r.body)
	}
	// The cookie lasts as long as the session may: 180 days by default.
	if c := r.header.Get("Set-Cookie"); !strings.Contains(c, "Max-Age=15552000") && !strings.Contains(c, "Max-Age=15551999") {
		e.t.Errorf("device cookie %q: want Max-Age of 180 days", c)
	}
	me := r.json(e.t)
	return b, me["csrf_token"].(string), me
}

func TestFieldTasksAndReplayedTransitions(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, code := e.gridPoint()
	phone, csrf, me := e.fieldUser("sunqi", code)
	uid := int64(me["id"].(float64))
	other, ocsrf, _ := e.fieldUser("zhouba", code)
	staff := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/staff", gridID), []byte(fmt.Sprintf(`{"role":"volunteer","name":"孙七","user_id":%d}`, uid)))
	if staff.status != 201 {
		t.Fatalf("staff: %d %s", staff.status, staff.body)
	}
	staffID := int64(staff.json(t)["id"].(float64))
	send := func(b *http.Client, tok, method, path, body string, hdr map[string]string) response {
		h := map[string]string{"X-CSRF-Token": tok, "Content-Type": "application/json"}
		for k, v := range hdr {
			h[k] = v
		}
		return e.send(b, method, path, body, h)
	}
	// A field report: via and the phone's accuracy are kept and shown in
	// the case's history.
	report := fmt.Sprintf(`{"source":"patrol","via":"field","accuracy_m":8.5,"category":"0101","title":"垃圾满溢","location":{"type":"Point","coordinates":[%v,%v]}}`, lon, lat)
	r := send(phone, csrf, "POST", "/api/v1/incidents", report, map[string]string{"Idempotency-Key": "report-0001"})
	if r.status != 201 {
		t.Fatalf("field report: %d %s", r.status, r.body)
	}
	id := int64(r.json(t)["id"].(float64))
	if r := send(phone, csrf, "POST", "/api/v1/incidents", report, map[string]string{"Idempotency-Key": "report-0001"}); r.status != 200 || int64(r.json(t)["id"].(float64)) != id {
		t.Errorf("the phone sends the report again: %d %s, want 200 and the same case", r.status, r.body)
	}
	in := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil).json(t)
	first := in["history"].([]any)[0].(map[string]any)["details"].(map[string]any)
	if in["via"] != "field" || in["accuracy_m"] != 8.5 || first["via"] != "field" || first["accuracy_m"] != 8.5 || first["location"] == nil {
		t.Errorf("field report shows via %v accuracy %v, history %v", in["via"], in["accuracy_m"], first)
	}
	for _, bad := range []string{`"via":"sms"`, `"accuracy_m":-1`} {
		body := strings.Replace(report, `"via":"field","accuracy_m":8.5`, bad, 1)
		if r := send(phone, csrf, "POST", "/api/v1/incidents", body, nil); r.status != 400 || !strings.Contains(r.errorOf(t)["message"].(string), strings.Split(strings.Trim(bad, `"`), `"`)[0]) {
			t.Errorf("%s: %d %s, want 400 naming the field", bad, r.status, r.body)
		}
	}
	// Only the field app (a device session) says via field: a token or a
	// dashboard session cannot pass a report off as one.
	e.token = e.tokenFor(auth.RoleIntegration)
	if r := e.do("POST", "/api/v1/incidents", []byte(report)); r.status != 400 || r.errorOf(t)["details"].(map[string]any)["field"] != "via" {
		t.Errorf("via field from a token: %d %s", r.status, r.body)
	}
	e.token = adminToken
	bulk := e.do("POST", "/api/v1/incidents/bulk", []byte(report+"\n"))
	if !strings.Contains(string(bulk.body), "not in bulk") || !strings.Contains(string(bulk.body), `"created":0`) {
		t.Errorf("via in bulk: %d %s", bulk.status, bulk.body)
	}
	// The command centre registers and dispatches it to the member.
	version := 1
	move := func(to string, extra string) {
		t.Helper()
		r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), []byte(fmt.Sprintf(`{"to":%q,"version":%d%s}`, to, version, extra)))
		if r.status != 200 {
			t.Fatalf("%s: %d %s", to, r.status, r.body)
		}
		version = int(r.json(t)["version"].(float64))
	}
	move("registered", "")
	move("dispatched", fmt.Sprintf(`,"assignee_id":%d`, staffID))
	// My tasks: the member's, nobody else's.
	mine := func(b *http.Client) []any {
		r := e.send(b, "GET", "/api/v1/incidents?assignee=me&status=dispatched,in_progress", "", nil)
		if r.status != 200 {
			t.Fatalf("my tasks: %d %s", r.status, r.body)
		}
		return r.json(t)["incidents"].([]any)
	}
	if got := mine(phone); len(got) != 1 || int64(got[0].(map[string]any)["id"].(float64)) != id {
		t.Errorf("sunqi's tasks: %v", got)
	}
	if got := mine(other); len(got) != 0 {
		t.Errorf("zhouba's tasks: %v, want none", got)
	}
	if r := e.do("GET", "/api/v1/incidents?assignee=me", nil); r.status != 400 {
		t.Errorf("assignee=me with a token: %d, want 400", r.status)
	}
	if r := e.send(phone, "GET", "/api/v1/incidents?assignee=someone", "", nil); r.status != 400 {
		t.Errorf("assignee=someone: %d, want 400", r.status)
	}
	// The phone accepts; its answer is lost and the queue sends it again:
	// applied once, the second answered with the case as it stands.
	accept := fmt.Sprintf(`{"to":"in_progress","version":%d}`, version)
	key := map[string]string{"Idempotency-Key": "accept-00000001"}
	r1 := send(phone, csrf, "POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), accept, key)
	r2 := send(phone, csrf, "POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), accept, key)
	if r1.status != 200 || r2.status != 200 || r2.header.Get("Idempotent-Replayed") != "true" || r1.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("accept twice: %d %q / %d %q %s", r1.status, r1.header.Get("Idempotent-Replayed"), r2.status, r2.header.Get("Idempotent-Replayed"), r2.body)
	}
	if v1, v2 := r1.json(t)["version"], r2.json(t)["version"]; v1 != v2 || v1.(float64) != float64(version+1) {
		t.Errorf("versions after accept and replay: %v, %v", v1, v2)
	}
	version++
	// The same key with another request is refused; another member's key
	// is theirs (no replay across callers): a stale version is a conflict
	// that says who moved it.
	if r := send(phone, csrf, "POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), `{"to":"handled","version":3,"note":"x"}`, key); r.status != 422 || r.errorOf(t)["code"] != "idempotency_mismatch" {
		t.Errorf("same key, other request: %d %s", r.status, r.body)
	}
	r = send(other, ocsrf, "POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), accept, key)
	if r.status != 409 {
		t.Fatalf("another caller's stale accept: %d %s, want 409", r.status, r.body)
	}
	if d := r.errorOf(t)["details"].(map[string]any); d["current_version"].(float64) != float64(version) || d["last_actor"] != "sunqi" {
		t.Errorf("conflict details %v", d)
	}
	if r := send(phone, csrf, "POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), `{"to":"handled","version":1}`, map[string]string{"Idempotency-Key": "bad key!"}); r.status != 400 {
		t.Errorf("a bad key: %d %s", r.status, r.body)
	}
	// The history holds the accept once.
	in = e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil).json(t)
	accepts := 0
	for _, h := range in["history"].([]any) {
		if h.(map[string]any)["to"] == "in_progress" {
			accepts++
		}
	}
	if accepts != 1 {
		t.Errorf("history has %d accepts, want 1", accepts)
	}
	// Six sends of one keyed step at once (a queue flushing on every
	// reconnect): applied once, the others replayed.
	handled := fmt.Sprintf(`{"to":"handled","version":%d,"note":"已清理"}`, version)
	codes := make(chan response, 6)
	for range 6 {
		go func() {
			codes <- send(phone, csrf, "POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", id), handled, map[string]string{"Idempotency-Key": "handled-0000001"})
		}()
	}
	replays := 0
	for range 6 {
		r := <-codes
		if r.status != 200 {
			t.Errorf("concurrent keyed step: %d %s", r.status, r.body)
		}
		if r.header.Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	in = e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil).json(t)
	if replays != 5 || in["status"] != "handled" || in["version"].(float64) != float64(version+1) {
		t.Errorf("six concurrent sends: %d replays, status %v version %v; want 5, handled, %d", replays, in["status"], in["version"], version+1)
	}
}

// tinyJPEG is the smallest kind of file that sniffs as JPEG, long enough
// to be cut into chunks.
func tinyJPEG(n int) []byte {
	b := make([]byte, n)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	for i := 11; i < n; i++ {
		b[i] = byte(i * 7)
	}
	return b
}

func TestResumableUploads(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, code := e.gridPoint()
	phone, csrf, _ := e.fieldUser("wujiu", code)
	r := e.send(phone, "POST", "/api/v1/incidents", fmt.Sprintf(`{"source":"patrol","category":"0101","title":"井盖缺失","location":{"type":"Point","coordinates":[%v,%v]}}`, lon, lat),
		map[string]string{"X-CSRF-Token": csrf, "Content-Type": "application/json"})
	if r.status != 201 {
		t.Fatalf("report: %d %s\n%s", r.status, r.body, e.logs.String())
	}
	id := int64(r.json(t)["id"].(float64))
	photo := tinyJPEG(70000)
	path := fmt.Sprintf("/api/v1/incidents/%d/attachments/uploads/photo-abc12345", id)
	put := func(start, end int, total int, body []byte) response {
		t.Helper()
		return e.send(phone, "PUT", path+"?filename=IMG_0001.jpg", string(body), map[string]string{
			"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream",
			"Content-Range": fmt.Sprintf("bytes %d-%d/%d", start, end, total)})
	}
	if r := e.send(phone, "GET", path, "", nil); r.status != 404 {
		t.Errorf("state before the first chunk: %d, want 404", r.status)
	}
	if r := put(0, 29999, len(photo), photo[:30000]); r.status != 200 || r.json(t)["offset"].(float64) != 30000 || r.json(t)["attachment"] != nil {
		t.Fatalf("chunk 1: %d %s", r.status, r.body)
	}
	// The answer was lost: the phone sends chunk 1 again; acknowledged, kept once.
	if r := put(0, 29999, len(photo), photo[:30000]); r.status != 200 || r.json(t)["offset"].(float64) != 30000 {
		t.Errorf("chunk 1 again: %d %s", r.status, r.body)
	}
	// A gap is refused with where to go on from.
	if r := put(40000, 49999, len(photo), photo[40000:50000]); r.status != 409 || r.errorOf(t)["details"].(map[string]any)["offset"].(float64) != 30000 {
		t.Errorf("a gap: %d %s", r.status, r.body)
	}
	// Another total for the same key is another file: refused.
	if r := put(30000, 39999, len(photo)+1, photo[30000:40000]); r.status != 409 {
		t.Errorf("other total: %d %s", r.status, r.body)
	}
	// Resuming: ask, then send the rest.
	st := e.send(phone, "GET", path, "", nil)
	if st.status != 200 || st.json(t)["offset"].(float64) != 30000 {
		t.Fatalf("state: %d %s", st.status, st.body)
	}
	if r := put(30000, 59999, len(photo), photo[30000:60000]); r.status != 200 {
		t.Fatalf("chunk 2: %d %s", r.status, r.body)
	}
	r = put(60000, len(photo)-1, len(photo), photo[60000:])
	if r.status != 201 {
		t.Fatalf("last chunk: %d %s", r.status, r.body)
	}
	att := r.json(t)["attachment"].(map[string]any)
	if att["kind"] != "photo" || att["content_type"] != "image/jpeg" || att["bytes"].(float64) != float64(len(photo)) || att["filename"] != "IMG_0001.jpg" {
		t.Errorf("attachment %v", att)
	}
	// The last chunk sent again: the same attachment, not a second one.
	if r := put(60000, len(photo)-1, len(photo), photo[60000:]); r.status != 200 || r.json(t)["attachment"].(map[string]any)["id"] != att["id"] {
		t.Errorf("last chunk again: %d %s", r.status, r.body)
	}
	file := e.send(phone, "GET", att["url"].(string), "", nil)
	if file.status != 200 || !bytes.Equal(file.body, photo) {
		t.Errorf("the stored photo: %d, %d bytes, want the %d sent", file.status, len(file.body), len(photo))
	}
	// A voice note (WebM from a phone's recorder) is a voice attachment.
	webm := append([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2, 0x81, 0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x84, 'w', 'e', 'b', 'm'}, make([]byte, 2000)...)
	r = e.send(phone, "PUT", fmt.Sprintf("/api/v1/incidents/%d/attachments/uploads/voice-0001", id), string(webm), map[string]string{
		"X-CSRF-Token": csrf, "Content-Range": fmt.Sprintf("bytes 0-%d/%d", len(webm)-1, len(webm))})
	if r.status != 201 || r.json(t)["attachment"].(map[string]any)["kind"] != "voice" || r.json(t)["attachment"].(map[string]any)["content_type"] != "audio/webm" {
		t.Errorf("voice note: %d %s", r.status, r.body)
	}
	// Bad input: named, nothing stored.
	text := []byte("this is not a photo at all, it is some text")
	for _, c := range []struct {
		rng, key, want string
		body           []byte
		status         int
	}{
		{fmt.Sprintf("bytes 0-%d/%d", len(text)-1, len(text)), "text-0001", "neither a photo nor a voice note", text, 400},
		{"bytes 0-9", "rng-00001", "Content-Range", text[:10], 400},
		{"bytes 5-2/10", "rng-00002", "Content-Range", text[:10], 400},
		{"bytes 0-19/20", "rng-00003", "Content-Range", text[:10], 400},
		{"bytes 0-9/99999999", "rng-00004", "larger than", text[:10], 413},
		{"bytes 0-9/10", "short", "key", text[:10], 400},
	} {
		r := e.send(phone, "PUT", fmt.Sprintf("/api/v1/incidents/%d/attachments/uploads/%s", id, c.key), string(c.body), map[string]string{"X-CSRF-Token": csrf, "Content-Range": c.rng})
		if r.status != c.status || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s: %d %s, want %d naming %q", c.key, c.rng, r.status, r.body, c.status, c.want)
		}
	}
	in := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil).json(t)
	if n := len(in["attachments"].([]any)); n != 2 {
		t.Errorf("%d attachments, want the photo and the voice note", n)
	}
	// A text file whose first chunk is too short to tell: refused when it
	// is whole, and dropped, so the phone does not resend it for ever.
	long := []byte(strings.Repeat("plain text, not a photo. ", 40))
	tpath := fmt.Sprintf("/api/v1/incidents/%d/attachments/uploads/text-0002", id)
	if r := e.send(phone, "PUT", tpath, string(long[:300]), map[string]string{"X-CSRF-Token": csrf, "Content-Range": fmt.Sprintf("bytes 0-299/%d", len(long))}); r.status != 200 {
		t.Fatalf("short first chunk: %d %s", r.status, r.body)
	}
	if r := e.send(phone, "PUT", tpath, string(long[300:]), map[string]string{"X-CSRF-Token": csrf, "Content-Range": fmt.Sprintf("bytes 300-%d/%d", len(long)-1, len(long))}); r.status != 400 {
		t.Errorf("the whole text file: %d %s, want 400", r.status, r.body)
	}
	if r := e.send(phone, "GET", tpath, "", nil); r.status != 404 {
		t.Errorf("a refused upload is kept: %d %s", r.status, r.body)
	}
	var pending int
	if err := e.pool.QueryRow(t.Context(), "SELECT count(*) FROM attachment_uploads WHERE attachment_id IS NULL").Scan(&pending); err != nil || pending != 0 {
		t.Errorf("%d unfinished uploads kept after the refusals (%v), want 0", pending, err)
	}
	// An iPhone's voice note (MP4 sound, brand "M4A ") is a voice note.
	m4a := append([]byte{0, 0, 0, 0x1c, 'f', 't', 'y', 'p', 'M', '4', 'A', ' ', 0, 0, 0, 0, 'M', '4', 'A', ' ', 'i', 's', 'o', 'm'}, make([]byte, 1000)...)
	r = e.send(phone, "PUT", fmt.Sprintf("/api/v1/incidents/%d/attachments/uploads/voice-0002", id), string(m4a), map[string]string{
		"X-CSRF-Token": csrf, "Content-Range": fmt.Sprintf("bytes 0-%d/%d", len(m4a)-1, len(m4a))})
	if r.status != 201 || r.json(t)["attachment"].(map[string]any)["content_type"] != "audio/mp4" {
		t.Errorf("m4a voice note: %d %s", r.status, r.body)
	}
	// Another member of the same grid sees the case but not this member's
	// upload: the same key is theirs alone, and leaves this one as it was.
	other, ocsrf, _ := e.fieldUser("zhengshi", code)
	if r := e.send(other, "GET", path, "", nil); r.status != 404 {
		t.Errorf("another member reads the upload: %d, want 404", r.status)
	}
	if r := e.send(other, "PUT", tpath, string(photo[:1000]), map[string]string{"X-CSRF-Token": ocsrf, "Content-Range": "bytes 0-999/2000"}); r.status != 200 {
		t.Errorf("another member's own upload under the same key: %d %s", r.status, r.body)
	}
	if r := e.send(phone, "GET", path, "", nil); r.status != 200 || r.json(t)["attachment"].(map[string]any)["id"] != att["id"] {
		t.Errorf("the owner's upload after another member's: %d %s", r.status, r.body)
	}
	// Eight sends of one whole file at once: one attachment.
	whole := tinyJPEG(5000)
	done := make(chan response, 8)
	for range 8 {
		go func() {
			done <- e.send(phone, "PUT", fmt.Sprintf("/api/v1/incidents/%d/attachments/uploads/race-0001", id), string(whole), map[string]string{
				"X-CSRF-Token": csrf, "Content-Range": fmt.Sprintf("bytes 0-%d/%d", len(whole)-1, len(whole))})
		}()
	}
	ids := map[any]bool{}
	for range 8 {
		r := <-done
		if r.status != 200 && r.status != 201 {
			t.Errorf("concurrent whole file: %d %s", r.status, r.body)
			continue
		}
		ids[r.json(t)["attachment"].(map[string]any)["id"]] = true
	}
	if len(ids) != 1 {
		t.Errorf("eight concurrent sends made attachments %v, want one", ids)
	}
	// A caller's unfinished uploads are bounded.
	for i := range 20 {
		r := e.send(phone, "PUT", fmt.Sprintf("/api/v1/incidents/%d/attachments/uploads/open-%05d", id, i), string(photo[:1000]), map[string]string{
			"X-CSRF-Token": csrf, "Content-Range": "bytes 0-999/100000"})
		if i < 16 && r.status != 200 {
			t.Fatalf("unfinished upload %d: %d %s", i, r.status, r.body)
		}
		if i >= 16 && (r.status != 429 || !strings.Contains(r.errorOf(t)["message"].(string), "unfinished uploads")) {
			t.Errorf("unfinished upload %d: %d %s, want 429", i, r.status, r.body)
		}
	}
}
