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
	"gridwatch/camera/camsim"
	"gridwatch/camera/onvif"
	"gridwatch/camera/onvifcam"
	"gridwatch/geo"
	"gridwatch/internal/domain"
	"gridwatch/internal/domain/domaintest"
)

// BenchmarkPTZCommand is one PTZ move at a time against a simulated dome,
// as a held button sends them: "device" is the baseline, the SOAP call
// straight to the device (what any ONVIF client pays); "api" is the same
// move through gridwatch's API — authentication, the grid scope, the
// control row taken in PostgreSQL, the SOAP call inside its transaction,
// the audit (a repeat is not written again); "api-audited" alternates two
// moves so that each one is written to the audit log. p50 and p99 in ms,
// and each one's p50 over the device's.
func BenchmarkPTZCommand(b *testing.B) {
	ctx := context.Background()
	sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0", Username: "admin", Password: "bench-pw"})
	if err != nil {
		b.Fatal(err)
	}
	dev := httptest.NewServer(sim.ONVIFHandler())
	defer dev.Close()
	devURL := dev.URL + "/onvif/1/device_service"
	d := domaintest.New(b, domain.Options{Auth: auth.Options{Hash: cheapHash}}, geo.DemoCity())
	deps := d.APIDeps()
	deps.ONVIF = onvifcam.New(d.Pool, d.Cameras, onvifcam.Options{})
	srv := httptest.NewServer(api.New(deps).Handler())
	defer srv.Close()
	_, secret, err := d.Auth.CreateToken(ctx, auth.NewToken{Name: "bench operator", Role: auth.RoleOperator})
	if err != nil {
		b.Fatal(err)
	}
	bb := d.Features[len(d.Features)-1].Geometry.Bounds()
	c := [2]float64{(bb.Min(0) + bb.Max(0)) / 2, (bb.Min(1) + bb.Max(1)) / 2}
	post := func(path, body string) (int, []byte) {
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		return res.StatusCode, out
	}
	st, body := post("/api/v1/cameras", fmt.Sprintf(`{"code":"PTZ-BENCH","name":"球机","location":{"type":"Point","coordinates":[%v,%v]},"onvif":{"url":%q,"username":"admin","password":"bench-pw"}}`, c[0], c[1], devURL))
	if st != 201 {
		b.Fatalf("create: %d %s", st, body)
	}
	var id int64
	if _, err := fmt.Sscanf(string(body), `{"id":%d`, &id); err != nil {
		b.Fatalf("camera id in %s: %v", body, err)
	}
	client := &onvif.Client{URL: devURL, Username: "admin", Password: "bench-pw"}
	if err := client.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	p50 := map[string]float64{}
	run := func(name string, one func(i int)) {
		b.Run(name, func(b *testing.B) {
			var lat []time.Duration
			i := 0
			for b.Loop() {
				t0 := time.Now()
				one(i)
				lat = append(lat, time.Since(t0))
				i++
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			p50[name] = q(0.5)
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			if base := p50["device"]; name != "device" && base > 0 {
				b.ReportMetric(q(0.5)/base, "x-device")
			}
		})
	}
	run("device", func(int) {
		if err := client.Move(ctx, "main", onvif.Vector{Pan: 0.5}, 2*time.Second); err != nil {
			b.Fatal(err)
		}
	})
	path := fmt.Sprintf("/api/v1/cameras/%d/ptz", id)
	run("api", func(int) {
		if st, body := post(path, `{"op":"move","pan":0.5}`); st != 200 {
			b.Fatalf("move: %d %s", st, body)
		}
	})
	run("api-audited", func(i int) {
		if st, body := post(path, fmt.Sprintf(`{"op":"move","pan":0.%d}`, 4+i%2)); st != 200 {
			b.Fatalf("move: %d %s", st, body)
		}
	})
}
