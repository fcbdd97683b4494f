package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"gridwatch/api"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/internal/domain"
	"gridwatch/internal/domain/domaintest"
)

// BenchmarkPostIncident is one report at a time over loopback HTTP, with
// authentication, into the demo city: the latency a hotline integration
// sees. Reports p50 and p99.
func BenchmarkPostIncident(b *testing.B) {
	ctx := context.Background()
	d := domaintest.New(b, domain.Options{Auth: auth.Options{Hash: cheapHash}}, geo.DemoCity())
	if err := d.Locator.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	tok, secret, err := d.Auth.CreateToken(ctx, auth.NewToken{Name: "bench hotline", Role: auth.RoleIntegration})
	if err != nil || tok == nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.New(d.APIDeps()).Handler())
	defer srv.Close()
	client := srv.Client()
	bb := d.Features[0].Geometry.Bounds()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		lon := bb.Min(0) + float64(i%97)/97*(bb.Max(0)-bb.Min(0))
		la := bb.Min(1) + float64(i%89)/89*(bb.Max(1)-bb.Min(1))
		body := fmt.Sprintf(`{"source":"hotline","external_id":"b%d","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[%v,%v]}}`, i, lon, la)
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/incidents", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+secret)
		t0 := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		lat = append(lat, time.Since(t0))
		if res.StatusCode != 201 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
