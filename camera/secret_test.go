package camera

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/internal/testdb"
	"gridwatch/migrations"
)

// TestCredentialsStoredApart: the URL stored for display has no credential
// in it; the pull supervisor's source has the URL back byte for byte; an
// edit keeps, carries over or replaces the credentials as Patch says.
func TestCredentialsStoredApart(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	s := NewStore(pool)
	heading, fov, rng := 0.0, 90.0, 100.0
	tests := []struct {
		name, url string
		// changed is a new URL without credentials; want is what the
		// supervisor then gets ("" for a refusal naming main_url).
		changed, want string
	}{
		{"userinfo", "rtsp://admin:S3cret@10.0.0.7:554/a", "rtsp://10.0.0.8:554/b", "rtsp://admin:S3cret@10.0.0.8:554/b"},
		{"query", "rtsp://10.0.0.7/live?channel=1&PassWord=S3cret", "rtsp://10.0.0.8/live?channel=1", ""},
		{"path pairs", "rtsp://10.0.0.7/user=admin&password=S3cret&channel=1&stream=0.sdp", "rtsp://10.0.0.8/channel=1&stream=0.sdp", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cam, err := s.Create(ctx, Spec{Code: "C" + string(rune('0'+i)), Name: "x", Location: &Point{"Point", [2]float64{113.68, 34.79}},
				Heading: &heading, FOV: &fov, Range: &rng, MainURL: tt.url})
			if err != nil {
				t.Fatal(err)
			}
			var stored, secret string
			if err := pool.QueryRow(ctx, "SELECT main_url, main_secret::text FROM cameras WHERE id = $1", cam.ID).Scan(&stored, &secret); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stored, "S3cret") || !strings.Contains(secret, "S3cret") || stored != cam.MainURL {
				t.Errorf("stored main_url %q, main_secret %s: want the URL shown (%q) and the secret apart", stored, secret, cam.MainURL)
			}
			source := func() string {
				t.Helper()
				src, err := s.Source(ctx, cam.ID)
				if err != nil {
					t.Fatal(err)
				}
				return src.MainURL
			}
			if got := source(); got != tt.url {
				t.Errorf("source %q, want %q", got, tt.url)
			}
			shown := cam.MainURL
			if _, err := s.Update(ctx, cam.ID, Patch{MainURL: &shown}, geo.CRSWGS84); err != nil || source() != tt.url {
				t.Errorf("patch with the URL shown: %v, source %q; want %q kept", err, source(), tt.url)
			}
			_, err = s.Update(ctx, cam.ID, Patch{MainURL: &tt.changed}, geo.CRSWGS84)
			switch {
			case tt.want == "" && gridwatch.ErrorDetails(err)["field"] != "main_url":
				t.Errorf("changed URL without the path/query credentials: %v, want a refusal naming main_url", err)
			case tt.want == "" && strings.Contains(err.Error(), "S3cret"):
				t.Errorf("refusal %q shows the secret", err)
			case tt.want != "" && (err != nil || source() != tt.want):
				t.Errorf("changed URL: %v, source %q; want %q", err, source(), tt.want)
			}
			fresh := strings.Replace(tt.url, "S3cret", "N3wer", 1)
			if _, err := s.Update(ctx, cam.ID, Patch{MainURL: &fresh}, geo.CRSWGS84); err != nil || source() != fresh {
				t.Errorf("new credentials: %v, source %q; want %q", err, source(), fresh)
			}
		})
	}
}

// TestMigrationMovesSecrets: rows written before 0017 (URLs with their
// credentials, no secrets apart) are split by the migration; joined back
// each is what was stored, and what is shown has no credential.
func TestMigrationMovesSecrets(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	urls := []string{
		"rtsp://admin:S3cret@10.0.0.7:554/Streaming/Channels/101",
		"rtsp://10.0.0.7/live?channel=1&Password=S3cret",
		"rtsp://10.0.0.7/live?passwd=S3cret&subtype=0",
		"rtsp://10.0.0.7/live?auth=S3cret",
		"rtsp://u:S3cret@10.0.0.7/user=admin&password=S3cret&channel=1&stream=0.sdp",
		"rtsp://10.0.0.7:554/user=admin_password=S3cret_channel=1_stream=0.sdp?real_stream",
		"rtsp://10.0.0.7/cam/realmonitor?channel=1&subtype=0",
	}
	for i, u := range urls {
		if _, err := pool.Exec(ctx, `INSERT INTO cameras (code, name, location, heading, fov, range_m, cone, main_url, sub_url)
			VALUES ($1, 'x', ST_SetSRID(ST_MakePoint(113.68, 34.79), 4326), 0, 90, 100, ST_Buffer(ST_SetSRID(ST_MakePoint(113.68, 34.79), 4326), 0.001), $2, $2)`,
			"M"+string(rune('0'+i)), u); err != nil {
			t.Fatal(err)
		}
	}
	sql, err := fs.ReadFile(migrations.FS(), "0017_camera_secrets.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, string(sql)); err != nil {
		t.Fatalf("migration: %v", err)
	}
	s := NewStore(pool)
	for i, u := range urls {
		id, err := s.IDByCode(ctx, "M"+string(rune('0'+i)))
		if err != nil {
			t.Fatal(err)
		}
		var shownMain, shownSub string
		pool.QueryRow(ctx, "SELECT main_url, sub_url FROM cameras WHERE id = $1", id).Scan(&shownMain, &shownSub)
		src, err := s.Source(ctx, id)
		if err != nil || src.MainURL != u || src.SubURL != u {
			t.Errorf("%s: source after the migration %q, %q, %v; want it back", u, src.MainURL, src.SubURL, err)
		}
		if strings.Contains(shownMain+shownSub, "S3cret") {
			t.Errorf("%s: stored for display after the migration: %q, %q", u, shownMain, shownSub)
		}
		cam, err := s.Get(ctx, id, Viewer{})
		if err != nil || strings.Contains(cam.MainURL, "S3cret") || cam.HasCreds != strings.Contains(u, "S3cret") {
			t.Errorf("%s: camera after the migration %+v, %v", u, cam, err)
		}
	}
}
