package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestBulkLargeBody: a bulk body far past 256 KiB, answered while it is
// still being read, is stored whole. Without full duplex net/http read up
// to 256 KiB of the unread body away when the answer's first bytes went
// out, and those lines were silently missing (found by the kill tests).
func TestBulkLargeBody(t *testing.T) {
	e := newEnv(t)
	e.importDemo()
	const n = 12000 // more than two batches: answers go out before the end
	var body strings.Builder
	for i := range n {
		fmt.Fprintf(&body, `{"source":"sensor","external_id":"big-%d","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[%.5f,34.77]}}`+"\n",
			i, 113.64+float64(i%100)*0.0005)
	}
	r := e.do("POST", "/api/v1/incidents/bulk", []byte(body.String()))
	if r.status != 200 {
		t.Fatalf("bulk: %d %.300s", r.status, r.body)
	}
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	var last struct {
		Summary struct{ Lines, Created, Errors int }
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if s := last.Summary; s.Lines != n || s.Created != n || s.Errors != 0 {
		t.Errorf("summary %+v; want all %d lines created", s, n)
	}
}
