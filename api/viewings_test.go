package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"gridwatch/audit"
	"gridwatch/auth"
)

// namedToken creates a token called name with role and returns its secret.
func (ve *videoEnv) namedToken(name string, role auth.Role) string {
	ve.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "role": role})
	r := ve.do("POST", "/api/v1/tokens", body)
	if r.status != 201 {
		ve.t.Fatalf("create token %s: %d %s", name, r.status, r.body)
	}
	return r.json(ve.t)["secret"].(string)
}

// get fetches path with token and returns the status and body.
func (ve *videoEnv) get(path, token string, hdr ...string) (int, []byte) {
	ve.t.Helper()
	req, _ := http.NewRequest("GET", ve.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ve.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// viewingRow is a viewing session as the API answers it.
type viewingRow struct {
	Actor struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"actor"`
	Kind      string     `json:"kind"`
	Protocol  string     `json:"protocol"`
	Camera    int64      `json:"camera_id"`
	Code      string     `json:"camera_code"`
	Stream    string     `json:"stream"`
	From      *time.Time `json:"from"`
	To        *time.Time `json:"to"`
	IP        string     `json:"ip"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Bytes     int64      `json:"bytes"`
}

// waitViewings polls the viewing sessions matching query (as an admin)
// until want of them have ended, and returns them.
func (ve *videoEnv) waitViewings(query string, want int) []viewingRow {
	ve.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, b := ve.get("/api/v1/audit/viewings?"+query, adminToken)
		if st != 200 {
			ve.t.Fatalf("viewings?%s: %d %s", query, st, b)
		}
		var page struct{ Viewings []viewingRow }
		if err := json.Unmarshal(b, &page); err != nil {
			ve.t.Fatal(err)
		}
		ended := 0
		for _, v := range page.Viewings {
			if v.EndedAt != nil {
				ended++
			}
		}
		if ended >= want {
			return page.Viewings
		}
		if time.Now().After(deadline) {
			ve.t.Fatalf("viewings?%s: %d ended after 30 s, want %d: %s", query, ended, want, b)
		}
		<-time.After(100 * time.Millisecond) // rows are written every 50 ms here
	}
}

// TestViewingSessionsAreAudited watches cameras every way there is (MSE,
// live HLS, playback HLS and its byte ranges, a recorded file alone) and
// finds each session in the audit: who, how, which camera and stream or
// footage range, from where, start and end, bytes.
func TestViewingSessionsAreAudited(t *testing.T) {
	ve := newVideoEnv(t)
	liveID, _ := ve.addCamera(1, "CAM-SEEN")
	recID, _ := ve.addCameraRecording(2, "CAM-SEEN-REC", true)
	mseTok := ve.namedToken("watch mse", auth.RoleOperator)
	hlsTok := ve.namedToken("watch hls", auth.RoleCommander)
	pbTok := ve.namedToken("watch playback", auth.RoleOperator)
	fileTok := ve.namedToken("watch file", auth.RoleOperator)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// MSE: one WebSocket, one session, ended when it closes.
	before := time.Now()
	if _, err := readMSE(t, ctx, ve.wsURL(fmt.Sprintf("/api/v1/cameras/%d/live?stream=sub", liveID)),
		http.Header{"Authorization": {"Bearer " + mseTok}}, 10); err != nil {
		t.Fatal(err)
	}

	// Live HLS: the playlist, the init segment and a segment are one session.
	st, pl := ve.get(fmt.Sprintf("/api/v1/cameras/%d/hls/index.m3u8", liveID), hlsTok)
	if st != 200 {
		t.Fatalf("playlist: %d %s", st, pl)
	}
	initURI := regexp.MustCompile(`URI="([^"]+)"`).FindSubmatch(pl)
	segURI := regexp.MustCompile(`(?m)^(seg-[^\s]+)$`).FindSubmatch(pl)
	if initURI == nil || segURI == nil {
		t.Fatalf("playlist without init or segment: %s", pl)
	}
	for _, u := range [][]byte{initURI[1], segURI[1]} {
		if st, b := ve.get(fmt.Sprintf("/api/v1/cameras/%d/hls/%s", liveID, u), hlsTok); st != 200 {
			t.Fatalf("%s: %d %s", u, st, b)
		}
	}

	// Playback: wait for footage, play a playlist and a byte range of its
	// file; and fetch a file on its own.
	var recs []struct {
		ID   int64     `json:"id"`
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	}
	q := func(from, to time.Time) string {
		return "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(recs) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no recording indexed after 30 s")
		}
		<-time.After(200 * time.Millisecond) // files are indexed as they close, every 2 s here
		st, b := ve.get(fmt.Sprintf("/api/v1/cameras/%d/recordings?%s", recID, q(before.Add(-time.Minute), time.Now().Add(time.Minute))), pbTok)
		if st != 200 {
			t.Fatalf("recordings: %d %s", st, b)
		}
		var page struct {
			Recordings []struct {
				ID   int64     `json:"id"`
				From time.Time `json:"from"`
				To   time.Time `json:"to"`
			}
		}
		_ = json.Unmarshal(b, &page)
		recs = page.Recordings
	}
	rec := recs[0]
	pbFrom, pbTo := rec.From.Truncate(time.Second), rec.To.Truncate(time.Second).Add(time.Second)
	if st, b := ve.get(fmt.Sprintf("/api/v1/cameras/%d/playback.m3u8?%s", recID, q(pbFrom, pbTo)), pbTok); st != 200 {
		t.Fatalf("playback playlist: %d %s", st, b)
	}
	if st, b := ve.get(fmt.Sprintf("/api/v1/recordings/%d/file.mp4", rec.ID), pbTok, "Range", "bytes=0-99"); st != 206 || len(b) != 100 {
		t.Fatalf("byte range: %d, %d bytes", st, len(b))
	}
	if st, _ := ve.get(fmt.Sprintf("/api/v1/recordings/%d/file.mp4", rec.ID), fileTok); st != 200 {
		t.Fatalf("file: %d", st)
	}

	// The WebSocket session ends when the server sees the socket close;
	// the HTTP ones when their gap passes (30 s), or here when the view log
	// stops, which ends them at their last request and writes everything.
	ve.waitViewings("actor="+url.QueryEscape("watch mse"), 1)
	ve.stopViewings()
	live := ve.waitViewings(fmt.Sprintf("camera=%d", liveID), 2)
	played := ve.waitViewings("camera=CAM-SEEN-REC&kind=playback", 2)
	byActor := map[string]viewingRow{}
	for _, v := range append(live, played...) {
		if _, dup := byActor[v.Actor.Name]; dup {
			t.Errorf("%s has two sessions, want one: %+v", v.Actor.Name, v)
		}
		byActor[v.Actor.Name] = v
	}
	for _, tc := range []struct {
		actor, kind, protocol string
		camera                int64
		stream                string
		from, to              time.Time
		minBytes              int64
	}{
		{"watch mse", audit.Live, audit.ProtoMSE, liveID, "sub", time.Time{}, time.Time{}, 1000},
		{"watch hls", audit.Live, audit.ProtoHLS, liveID, "main", time.Time{}, time.Time{}, 1000},
		{"watch playback", audit.Playback, audit.ProtoHLS, recID, "", pbFrom, pbTo, 100},
		{"watch file", audit.Playback, audit.ProtoFile, recID, "", rec.From, rec.To, 1000},
	} {
		t.Run(tc.actor, func(t *testing.T) {
			v, ok := byActor[tc.actor]
			if !ok {
				t.Fatalf("no session of %s in %+v", tc.actor, byActor)
			}
			if v.Actor.Kind != "token" || v.Kind != tc.kind || v.Protocol != tc.protocol || v.Camera != tc.camera || v.Stream != tc.stream {
				t.Errorf("got %s %s %s camera %d stream %q, want token %s %s camera %d stream %q",
					v.Actor.Kind, v.Kind, v.Protocol, v.Camera, v.Stream, tc.kind, tc.protocol, tc.camera, tc.stream)
			}
			if v.IP != "127.0.0.1" {
				t.Errorf("got ip %q, want 127.0.0.1", v.IP)
			}
			if v.StartedAt.Before(before.Add(-time.Second)) || v.EndedAt == nil || v.EndedAt.Before(v.StartedAt) || v.EndedAt.After(time.Now()) {
				t.Errorf("got %v to %v, want a start after %v and an end after it", v.StartedAt, v.EndedAt, before)
			}
			if v.Bytes < tc.minBytes {
				t.Errorf("got %d bytes, want at least %d", v.Bytes, tc.minBytes)
			}
			if tc.from.IsZero() {
				if v.From != nil || v.To != nil {
					t.Errorf("got range %v–%v on live video, want none", v.From, v.To)
				}
			} else if v.From == nil || v.To == nil || !v.From.Equal(tc.from) || !v.To.Equal(tc.to) {
				t.Errorf("got range %v–%v, want %v–%v", v.From, v.To, tc.from, tc.to)
			}
		})
	}
	if got := ve.waitViewings("actor="+url.QueryEscape("watch hls"), 1); len(got) != 1 || got[0].Code != "CAM-SEEN" {
		t.Errorf("by actor: got %+v, want the one HLS session on CAM-SEEN", got)
	}

	// Bad queries are named; only who may read the audit reads viewings.
	const viewings = "/api/v1/audit/viewings?"
	checkBadQueries(t, func(path string) response { return ve.do("GET", path, nil) }, []badQuery{
		{viewings + "kind=download", "kind", "", 400},
		{viewings + "from=yesterday", "from", "", 400},
		{viewings + "from=2026-11-26T08:00:00Z&to=2026-11-26T07:00:00Z", "to", "", 400},
		{viewings + "cursor=abc", "cursor", "", 400},
	})
	if st, b := ve.get("/api/v1/audit/viewings", mseTok); st != 403 {
		t.Errorf("an operator read the viewings: %d %s, want 403", st, b)
	}
	if strings.Contains(ve.logs.String(), hlsTok) {
		t.Error("a token reached the log")
	}
}

// TestViewingNeverWaitsForTheAudit holds a lock on the viewing-session
// table, so no row can be written: viewers still get their pictures, and
// the rows that do not fit the queue are counted as dropped.
func TestViewingNeverWaitsForTheAudit(t *testing.T) {
	ve := newVideoEnv(t, withViewLog(audit.ViewLogOptions{Queue: 1, Batch: 1, FlushEvery: 10 * time.Millisecond}))
	id, _ := ve.addCamera(1, "CAM-BUSY")
	tok := ve.tokenFor(auth.RoleOperator)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := ve.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `LOCK TABLE viewing_sessions IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mc, err := readMSE(t, ctx, ve.wsURL(fmt.Sprintf("/api/v1/cameras/%d/live?stream=sub", id)),
			http.Header{"Authorization": {"Bearer " + tok}}, 10)
		if err != nil || len(mc.samples) < 10 {
			t.Fatalf("viewer %d with the audit stuck: %v", i, err)
		}
	}
	if d := ve.viewings.Dropped(); d == 0 {
		t.Errorf("got no rows dropped from a queue of one with the table locked, want some")
	}
}
