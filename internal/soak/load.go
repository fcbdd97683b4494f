package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gridwatch/internal/peerbench"
)

// camera is a recording camera the viewers, exports and tags use.
type camera struct {
	id   int64
	code string
	h264 bool // the RTSP viewer reads H.264 only
	sub  bool // it has a sub stream
}

// place is a point inside a grid of the city.
type place struct {
	grid     int64
	lon, lat float64
}

// counters are the load's running totals; a sample takes the differences.
type counters struct {
	reports, reportErrors       atomic.Int64
	joins, joinErrors, pictures atomic.Int64
	viewers                     atomic.Int64
	previews, previewErrors     atomic.Int64
	exports, exportErrors       atomic.Int64
	tagEdits, tagErrors         atomic.Int64
	missed, reconnects          atomic.Int64
}

// driver is the load: live viewers, reports with an event stream timing
// their events, redraw previews, exports and tag edits, all through
// gridwatch's public interfaces.
type driver struct {
	base        string // http://host:port
	rtsp        string // rtsp://host:port
	admin       string // the admin token: viewers, events, previews, exports, tags
	integration string // the reports' token (a 12345 hotline's)
	client      *http.Client
	cams        []camera
	places      []place
	categories  []string
	runID       string
	logf        func(format string, args ...any)

	c counters

	// Reports acknowledged and events seen, by incident id, until both
	// are there; latencies are the interval's.
	mu        sync.Mutex
	pending   map[int64]*pendingEvent
	latencies []latency
	// tagIDs are the soak's tags, oldest first (the tag loop's own).
	tagIDs []int64
}

// pendingEvent is a report on its way: when it was sent and acknowledged,
// and when its event came.
type pendingEvent struct{ sent, ack, event time.Time }

// latency is one report's event: after its acknowledgement (0 when the
// event came first) and after it was sent.
type latency struct{ ack, sent time.Duration }

// call sends a JSON request (body nil: none) with token and decodes a JSON
// answer into out (nil: discarded); it returns the status and headers.
func (d *driver) call(ctx context.Context, method, path, token string, body any, hdr http.Header, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			var err error
			if raw, err = json.Marshal(body); err != nil {
				return 0, nil, err
			}
		}
		rd = bytes.NewReader(raw)
	}
	// A request under way is let finish when the load stops (the client's
	// timeout bounds it): the service's log then shows no requests cut off
	// by the soak itself.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), method, d.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, res.Header, err
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, res.Header, fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(raw[:min(len(raw), 300)]))
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, res.Header, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, res.Header, nil
}

// every runs f every period until ctx ends, never two at once.
func every(ctx context.Context, period time.Duration, f func(ctx context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

// wait waits d or until ctx ends; false when ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runViewer is one of the live viewers: it joins a camera over MSE or RTSP
// (by its slot: half of each), watches for 10–60 s and leaves, again and
// again. A join that brings no keyframe within 10 s, or a stream that ends
// before the viewer leaves, is a failure.
func (d *driver) runViewer(ctx context.Context, slot int) {
	mse := slot%2 == 0
	for ctx.Err() == nil {
		cam := d.cams[rand.IntN(len(d.cams))]
		if !mse && !cam.h264 {
			continue
		}
		sub := cam.sub && rand.IntN(5) == 0
		ok := d.watch(ctx, cam, mse, sub, 10*time.Second+rand.N(50*time.Second))
		if !ok && !wait(ctx, time.Second) {
			return
		}
	}
}

func (d *driver) watch(ctx context.Context, cam camera, mse, sub bool, stay time.Duration) bool {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var v peerbench.Viewer
	var err error
	if mse {
		stream := "main"
		if sub {
			stream = "sub"
		}
		v, err = peerbench.DialMSE(dctx, &peerbench.MSE{
			URL: func(int) string {
				return fmt.Sprintf("%s/api/v1/cameras/%d/live?stream=%s", wsURL(d.base), cam.id, stream)
			},
			Header: http.Header{"Authorization": {"Bearer " + d.admin}},
		}, 1)
	} else {
		u := fmt.Sprintf("%s/cameras/%d", d.rtsp, cam.id)
		if sub {
			u += "/sub"
		}
		v, err = peerbench.Dial(dctx, u, "soak", d.admin)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.c.joinErrors.Add(1)
			d.logf("viewer: join camera %s: %v", cam.code, err)
		}
		return false
	}
	ended := make(chan error, 1)
	go func() { ended <- v.Run() }()
	defer func() {
		v.Close()
		<-ended
		d.c.pictures.Add(v.Count())
	}()
	select {
	case <-v.FirstKeyframe():
	case err := <-ended:
		ended <- err
		if ctx.Err() == nil {
			d.c.joinErrors.Add(1)
			d.logf("viewer: camera %s ended before its first keyframe: %v", cam.code, err)
		}
		return false
	case <-dctx.Done():
		if ctx.Err() == nil {
			d.c.joinErrors.Add(1)
			d.logf("viewer: camera %s (mse %v, sub %v): no keyframe within 10 s", cam.code, mse, sub)
		}
		return false
	}
	d.c.joins.Add(1)
	d.c.viewers.Add(1)
	defer d.c.viewers.Add(-1)
	t := time.NewTimer(stay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return true
	case err := <-ended:
		ended <- err
		d.c.joinErrors.Add(1)
		d.logf("viewer: camera %s (mse %v, sub %v): the stream ended while watched: %v", cam.code, mse, sub, err)
		return false
	}
}

func wsURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http")
}

// runReports files perSecond reports a second as the hotline would, each
// with its own Idempotency-Key; every 25th is sent twice, and the second
// answer must be the first's case (200). An acknowledged report waits for
// its event.
func (d *driver) runReports(ctx context.Context, perSecond float64) {
	period := time.Duration(float64(time.Second) / perSecond)
	inflight := make(chan struct{}, 32)
	var wg sync.WaitGroup
	defer wg.Wait()
	n := 0
	every(ctx, period, func(ctx context.Context) {
		n++
		select {
		case inflight <- struct{}{}:
		default:
			// The service is not keeping up: a report not sent is a failure.
			d.c.reportErrors.Add(1)
			return
		}
		seq := n
		wg.Go(func() {
			defer func() { <-inflight }()
			d.report(ctx, seq)
		})
	})
}

func (d *driver) report(ctx context.Context, seq int) {
	p := d.places[rand.IntN(len(d.places))]
	body, _ := json.Marshal(map[string]any{
		"source": "hotline", "category": d.categories[rand.IntN(len(d.categories))],
		"title":       fmt.Sprintf("浸泡测试 %d", seq),
		"description": "soak load: a report filed by the 12345 hotline",
		"location": map[string]any{"type": "Point", "coordinates": []float64{
			p.lon + (rand.Float64()-0.5)*0.0004, p.lat + (rand.Float64()-0.5)*0.0004}},
	})
	key := http.Header{"Idempotency-Key": {fmt.Sprintf("soak-%s-%d", d.runID, seq)}}
	var in struct {
		ID int64 `json:"id"`
	}
	sent := time.Now()
	code, _, err := d.call(ctx, http.MethodPost, "/api/v1/incidents", d.integration, body, key, &in)
	if err == nil && (code != http.StatusCreated || in.ID == 0) {
		err = fmt.Errorf("report: %d, id %d; want 201 and an id", code, in.ID)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.c.reportErrors.Add(1)
			d.logf("report %d: %v", seq, err)
		}
		return
	}
	d.acked(in.ID, sent, time.Now())
	d.c.reports.Add(1)
	if seq%25 != 0 {
		return
	}
	first := in.ID
	code, _, err = d.call(ctx, http.MethodPost, "/api/v1/incidents", d.integration, body, key, &in)
	if err == nil && (code != http.StatusOK || in.ID != first) {
		err = fmt.Errorf("replay: %d, id %d; want 200 and id %d", code, in.ID, first)
	}
	if err != nil {
		if ctx.Err() == nil {
			d.c.reportErrors.Add(1)
			d.logf("report %d: %v", seq, err)
		}
		return
	}
	d.c.reports.Add(1)
}

// acked notes a report's acknowledgement; evented its event's arrival.
// When both are in, the latency is the event's arrival after the
// acknowledgement (0 when the event came first).
func (d *driver) acked(id int64, sent, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pending[id]; ok && !p.event.IsZero() {
		d.latencies = append(d.latencies, latency{max(0, p.event.Sub(at)), max(0, p.event.Sub(sent))})
		delete(d.pending, id)
		return
	}
	d.pending[id] = &pendingEvent{sent: sent, ack: at}
}

func (d *driver) evented(id int64, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pending[id]; ok && !p.ack.IsZero() {
		d.latencies = append(d.latencies, latency{max(0, at.Sub(p.ack)), max(0, at.Sub(p.sent))})
		delete(d.pending, id)
		return
	}
	d.pending[id] = &pendingEvent{event: at}
}

// takeLatencies returns the interval's latencies after acknowledgement and
// after sending, each sorted, and counts the reports acknowledged more than
// grace ago whose event never came.
func (d *driver) takeLatencies(now time.Time, grace time.Duration) (ack, sent []time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, p := range d.pending {
		switch {
		case !p.ack.IsZero() && now.Sub(p.ack) > grace:
			d.c.missed.Add(1)
			d.logf("events: no incident.created for case %d within %s of its acknowledgement", id, grace)
			delete(d.pending, id)
		case p.ack.IsZero() && now.Sub(p.event) > 2*grace:
			delete(d.pending, id) // a case whose answer was lost
		}
	}
	for _, l := range d.latencies {
		ack, sent = append(ack, l.ack), append(sent, l.sent)
	}
	d.latencies = nil
	slices.Sort(ack)
	slices.Sort(sent)
	return ack, sent
}

// quantile returns the q-quantile of sorted durations (0 for none).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// runEvents reads the event stream as the dashboard does, reconnecting
// with the last id it saw when the stream ends.
func (d *driver) runEvents(ctx context.Context, ready chan<- struct{}) {
	last := ""
	for ctx.Err() == nil {
		err := d.readEvents(ctx, &last, ready)
		ready = nil
		if ctx.Err() != nil {
			return
		}
		d.c.reconnects.Add(1)
		d.logf("events: stream ended: %v; reconnecting from %q", err, last)
		if !wait(ctx, time.Second) {
			return
		}
	}
}

func (d *driver) readEvents(ctx context.Context, last *string, ready chan<- struct{}) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/api/v1/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.admin)
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	// The stream has no deadline: the client's timeout is for requests.
	res, err := (&http.Client{Transport: d.client.Transport}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /api/v1/events: %s", res.Status)
	}
	br := bufio.NewReader(res.Body)
	var typ, data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if typ == "incident.created" {
				var ev struct {
					ID int64 `json:"id"`
				}
				if json.Unmarshal([]byte(data), &ev) == nil && ev.ID != 0 {
					d.evented(ev.ID, time.Now())
				}
			}
			typ, data = "", ""
		case strings.HasPrefix(line, ": connected"):
			if ready != nil {
				close(ready)
				ready = nil
			}
		case strings.HasPrefix(line, "id:"):
			if id := strings.TrimSpace(line[3:]); id != "" {
				*last = id
			}
		case strings.HasPrefix(line, "event:"):
			typ = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(line[5:])
		}
	}
}

// preview redraws a grid's boundary as a GIS editor would try it: the
// boundary shrunk by 2% towards its middle, sent with ?dry_run=true under
// the grid's ETag. The answer must be a report of a change not saved.
func (d *driver) preview(ctx context.Context) {
	err := d.tryPreview(ctx, d.places[rand.IntN(len(d.places))].grid)
	if err != nil {
		if ctx.Err() == nil {
			d.c.previewErrors.Add(1)
			d.logf("preview: %v", err)
		}
		return
	}
	d.c.previews.Add(1)
}

func (d *driver) tryPreview(ctx context.Context, grid int64) error {
	var g struct {
		Geometry struct {
			Type        string          `json:"type"`
			Coordinates json.RawMessage `json:"coordinates"`
		} `json:"geometry"`
	}
	path := "/api/v1/grids/" + strconv.FormatInt(grid, 10)
	_, hdr, err := d.call(ctx, http.MethodGet, path, d.admin, nil, nil, &g)
	if err != nil {
		return err
	}
	var polys [][][][2]float64
	switch g.Geometry.Type {
	case "Polygon":
		var p [][][2]float64
		err = json.Unmarshal(g.Geometry.Coordinates, &p)
		polys = append(polys, p)
	case "MultiPolygon":
		err = json.Unmarshal(g.Geometry.Coordinates, &polys)
	default:
		err = fmt.Errorf("grid %d: geometry %q", grid, g.Geometry.Type)
	}
	if err != nil {
		return err
	}
	for _, p := range polys {
		for _, ring := range p {
			shrink(ring, 0.98)
		}
	}
	body := map[string]any{"type": "MultiPolygon", "coordinates": polys}
	var rep struct {
		DryRun    bool `json:"dry_run"`
		Committed bool `json:"committed"`
		Grids     []struct {
			ID int64 `json:"id"`
		} `json:"grids"`
	}
	code, _, err := d.call(ctx, http.MethodPut, path+"/geometry?dry_run=true", d.admin, body,
		http.Header{"If-Match": {hdr.Get("ETag")}}, &rep)
	if err != nil {
		return err
	}
	if code != http.StatusOK || !rep.DryRun || rep.Committed || len(rep.Grids) == 0 {
		return fmt.Errorf("grid %d: preview %d %+v; want 200, a dry run not committed, the grids it changes", grid, code, rep)
	}
	return nil
}

// shrink moves a closed ring's points towards the average of its points.
func shrink(ring [][2]float64, f float64) {
	if len(ring) < 2 {
		return
	}
	var cx, cy float64
	for _, p := range ring[:len(ring)-1] {
		cx += p[0]
		cy += p[1]
	}
	n := float64(len(ring) - 1)
	cx, cy = cx/n, cy/n
	for i := range ring {
		ring[i] = [2]float64{cx + (ring[i][0]-cx)*f, cy + (ring[i][1]-cy)*f}
	}
}

// export asks for an evidence export of 30 s of a camera's footage ending
// 10 s ago, waits for it and downloads it: the file must be as long as
// the export says.
func (d *driver) export(ctx context.Context) {
	if err := d.tryExport(ctx); err != nil {
		if ctx.Err() == nil {
			d.c.exportErrors.Add(1)
			d.logf("export: %v", err)
		}
		return
	}
	d.c.exports.Add(1)
}

func (d *driver) tryExport(ctx context.Context) error {
	cam := d.cams[rand.IntN(len(d.cams))]
	to := time.Now().Add(-10 * time.Second).Truncate(time.Millisecond)
	var e struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
		Bytes  *int64 `json:"bytes"`
		Error  *string
	}
	if _, _, err := d.call(ctx, http.MethodPost, "/api/v1/exports", d.admin,
		map[string]any{"camera_id": cam.id, "from": to.Add(-30 * time.Second), "to": to}, nil, &e); err != nil {
		return err
	}
	path := "/api/v1/exports/" + strconv.FormatInt(e.ID, 10)
	deadline := time.Now().Add(90 * time.Second)
	for e.Status != "done" {
		if e.Status == "failed" {
			return fmt.Errorf("export %d of camera %s failed: %v", e.ID, cam.code, deref(e.Error))
		}
		if time.Now().After(deadline) || !wait(ctx, 500*time.Millisecond) {
			return fmt.Errorf("export %d of camera %s: still %s after 90 s", e.ID, cam.code, e.Status)
		}
		if _, _, err := d.call(ctx, http.MethodGet, path, d.admin, nil, nil, &e); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+path+"/file", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.admin)
	res, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	n, err := io.Copy(io.Discard, res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || e.Bytes == nil || n != *e.Bytes || n == 0 {
		return fmt.Errorf("export %d file: %s, %d bytes; want 200 and the %v bytes it says", e.ID, res.Status, n, e.Bytes)
	}
	return nil
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

// tag edits the soak's footage tags as an operator would: it adds one,
// changes one's note, or, once there are 20, removes the oldest, in turn.
func (d *driver) tag(ctx context.Context, n int) {
	if err := d.tryTag(ctx, n); err != nil {
		if ctx.Err() == nil {
			d.c.tagErrors.Add(1)
			d.logf("tag: %v", err)
		}
		return
	}
	d.c.tagEdits.Add(1)
}

func (d *driver) tryTag(ctx context.Context, n int) error {
	d.mu.Lock()
	ids := slices.Clone(d.tagIDs)
	d.mu.Unlock()
	switch {
	case len(ids) == 0 || n%3 == 0:
		cam := d.cams[rand.IntN(len(d.cams))]
		to := time.Now().Truncate(time.Millisecond)
		var t struct {
			ID int64 `json:"id"`
		}
		if _, _, err := d.call(ctx, http.MethodPost, "/api/v1/tags", d.admin, map[string]any{
			"camera_id": cam.id, "from": to.Add(-15 * time.Second), "to": to, "label": "soak", "note": fmt.Sprintf("tag %d", n),
		}, nil, &t); err != nil {
			return err
		}
		d.mu.Lock()
		d.tagIDs = append(d.tagIDs, t.ID)
		d.mu.Unlock()
	case n%3 == 2 && len(ids) >= 20:
		if _, _, err := d.call(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/tags/%d", ids[0]), d.admin, nil, nil, nil); err != nil {
			return err
		}
		d.mu.Lock()
		d.tagIDs = slices.DeleteFunc(d.tagIDs, func(id int64) bool { return id == ids[0] })
		d.mu.Unlock()
	default:
		id := ids[rand.IntN(len(ids))]
		if _, _, err := d.call(ctx, http.MethodPatch, fmt.Sprintf("/api/v1/tags/%d", id), d.admin,
			map[string]any{"note": fmt.Sprintf("edited by edit %d", n)}, nil, nil); err != nil {
			return err
		}
	}
	return nil
}
