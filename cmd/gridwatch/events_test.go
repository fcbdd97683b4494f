package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"gridwatch/geo"
	"gridwatch/internal/pgcluster"
)

// startMainDB runs the real wiring on 127.0.0.1:0 against the database at
// dsn, as node id (nodes on one database need distinct ids).
func startMainDB(t *testing.T, dsn, id string) *Main {
	t.Helper()
	return startMain(t, dataDir(t), false, "--database-url", dsn, "--node-id", id)
}

// post sends body as the admin and decodes the JSON answer into v.
func post(t testing.TB, client *http.Client, url string, body []byte, v any) int {
	t.Helper()
	return doJSON(t, client, "POST", url, body, v)
}

// sseLine is one line of an event stream, or the error that ended it.
type sseLine struct {
	text string
	err  error
}

// openEvents opens GET /api/v1/events as the admin and returns its lines
// once the stream says it is subscribed.
func openEvents(t *testing.T, ctx context.Context, client *http.Client, base string) <-chan sseLine {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		res.Body.Close()
		t.Fatalf("events on %s: %d %s", base, res.StatusCode, res.Header.Get("Content-Type"))
	}
	lines := make(chan sseLine, 100)
	go func() {
		defer close(lines)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sseLine{text: sc.Text()}
		}
		lines <- sseLine{err: sc.Err()}
	}()
	for l := range waitLines(t, lines) {
		if l == ": connected" {
			return lines
		}
	}
	t.Fatal("the stream ended before it was subscribed")
	return nil
}

// waitLines yields lines until the stream ends, failing the test when none
// comes within a deadline.
func waitLines(t *testing.T, lines <-chan sseLine) func(func(string) bool) {
	return func(yield func(string) bool) {
		for {
			select {
			case l, ok := <-lines:
				if !ok || l.err != nil {
					return
				}
				if !yield(l.text) {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatal("nothing on the event stream within 30 s")
			}
		}
	}
}

// nextEvent reads the stream up to the next event of type typ and returns
// its data.
func nextEvent(t *testing.T, lines <-chan sseLine, typ string) map[string]any {
	t.Helper()
	var event string
	for l := range waitLines(t, lines) {
		switch {
		case strings.HasPrefix(l, "event: "):
			event = strings.TrimPrefix(l, "event: ")
		case strings.HasPrefix(l, "data: ") && event == typ:
			var data map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &data); err != nil {
				t.Fatalf("event data %q: %v", l, err)
			}
			return data
		case l == "":
			event = ""
		}
	}
	t.Fatalf("the stream ended before a %s event", typ)
	return nil
}

// TestEventsAcrossProcesses runs two gridwatch services on one database, as
// two processes behind a load balancer would: an incident reported to A is
// announced on B's event stream (LISTEN/NOTIFY), and shutting B down ends
// its open stream instead of waiting for it.
func TestEventsAcrossProcesses(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dataDir(t), "pg"), Fast: true})
	if err != nil {
		t.Fatalf("database: %v", err)
	}
	defer cluster.Close()
	if err := cluster.EnsureDatabase(ctx, "gridwatch"); err != nil {
		t.Fatal(err)
	}
	dsn := cluster.DSN("gridwatch")
	a := startMainDB(t, dsn, "events-a")
	defer a.Close()
	b := startMainDB(t, dsn, "events-b")
	defer b.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	if code := post(t, client, a.URL()+"/api/v1/grids/import", geo.DemoCity(), nil); code != http.StatusCreated {
		t.Fatalf("import the demo city: %d", code)
	}
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	onA := openEvents(t, streamCtx, client, a.URL())
	onB := openEvents(t, streamCtx, client, b.URL())

	var in struct {
		ID   int64 `json:"id"`
		Grid *struct {
			ID int64 `json:"id"`
		} `json:"grid"`
	}
	body := []byte(`{"source":"hotline","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[113.68,34.79]}}`)
	if code := post(t, client, a.URL()+"/api/v1/incidents", body, &in); code != http.StatusCreated || in.Grid == nil {
		t.Fatalf("report to A: %d, grid %v", code, in.Grid)
	}
	for name, lines := range map[string]<-chan sseLine{"B": onB, "A": onA} {
		data := nextEvent(t, lines, "incident.created")
		if data["id"] != float64(in.ID) || data["grid_id"] != float64(in.Grid.ID) || data["status"] != "reported" {
			t.Errorf("%s: incident.created %v, want incident %d in grid %d", name, data, in.ID, in.Grid.ID)
		}
	}

	// B's stream is still open: Close must end it, not wait for it.
	if err := b.Close(); err != nil {
		t.Errorf("close B with an open stream: %v", err)
	}
	for range waitLines(t, onB) {
	}
	stopStreams()
	for range onA {
	}
	if err := a.Close(); err != nil {
		t.Errorf("close A: %v", err)
	}
	client.CloseIdleConnections()
}
