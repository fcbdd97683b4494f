package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gw.json")
	if err := os.WriteFile(file, []byte(`{"addr":"127.0.0.1:9000","data_dir":"/from/file","max_vertices":5000,"log_level":"debug"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig("serve", []string{"--config", file, "--data-dir", "/from/flag"},
		envOf(map[string]string{"GRIDWATCH_ADDR": "127.0.0.1:9100", "DATABASE_URL": "postgres://u:p@db/gw", "GRIDWATCH_SHUTDOWN_TIMEOUT": "3s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Addr = "127.0.0.1:9100" // env beats file
	want.DataDir = "/from/flag"  // flag beats file
	want.MaxVertices = 5000      // file beats default
	want.LogLevel = "debug"      // file
	want.DatabaseURL = "postgres://u:p@db/gw"
	want.ShutdownTimeout = 3 * time.Second
	if *cfg != want {
		t.Errorf("got %+v\nwant %+v", *cfg, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		wantIn string
	}{
		{"bad addr", []string{"--addr", "nonsense"}, nil, "addr"},
		{"bad port", []string{"--addr", "127.0.0.1:99999"}, nil, "port"},
		{"bad log level", nil, map[string]string{"GRIDWATCH_LOG_LEVEL": "loud"}, "log-level"},
		{"bad number", []string{"--max-vertices", "many"}, nil, "--max-vertices"},
		{"tiny vertex limit", []string{"--max-vertices", "2"}, nil, "max-vertices"},
		{"bad basemap", []string{"--basemap-style-url", "ftp://x"}, nil, "basemap-style-url"},
		{"bad duration", nil, map[string]string{"GRIDWATCH_SHUTDOWN_TIMEOUT": "soon"}, "GRIDWATCH_SHUTDOWN_TIMEOUT"},
		{"unknown flag", []string{"--colour", "red"}, nil, "colour"},
		{"stray argument", []string{"extra"}, nil, "extra"},
		{"export range over a day", []string{"--export-max-range", "25h"}, nil, "export-max-range"},
		{"no export age", nil, map[string]string{"GRIDWATCH_EXPORT_MAX_AGE": "0s"}, "export-max-age"},
		{"no exports pending", []string{"--export-max-pending", "0"}, nil, "export-max-pending"},
		{"bad database url", nil, map[string]string{"DATABASE_URL": "postgres://u:secret@host:notaport/db"}, "database-url"},
		{"bad leader report policy", []string{"--leader-report-outside", "maybe"}, nil, "leader-report-outside"},
		{"not a STUN URL", []string{"--webrtc-ice-servers", "http://stun.example"}, nil, "webrtc-ice-servers"},
		{"keyframe wait under a second", []string{"--key-timeout", "500ms"}, nil, "key-timeout"},
		{"a pool of one", []string{"--db-max-conns", "1"}, nil, "db-max-conns"},
		{"a pool too big", nil, map[string]string{"GRIDWATCH_DB_MAX_CONNS": "5000"}, "db-max-conns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig("serve", tt.args, envOf(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("err = %v, want it to name %q", err, tt.wantIn)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestConfigFileUnknownKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gw.json")
	os.WriteFile(file, []byte(`{"adress":"x"}`), 0o600)
	_, err := LoadConfig("serve", []string{"--config", file}, envOf(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"adress"`) {
		t.Fatalf("err = %v, want the unknown key named", err)
	}
}

// TestLeaderReportOutsideFlag: a grid leader's reports outside their grids
// are refused unless the flag (or its variable) says allow.
func TestLeaderReportOutsideFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, "refuse"},
		{"flag", []string{"--leader-report-outside", "allow"}, nil, "allow"},
		{"environment", nil, map[string]string{"GRIDWATCH_LEADER_REPORT_OUTSIDE": "allow"}, "allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadConfig("serve", tc.args, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.LeaderReportOutside != tc.want {
				t.Errorf("got %q, want %q", cfg.LeaderReportOutside, tc.want)
			}
		})
	}
}

func TestPIIFlags(t *testing.T) {
	cfg, err := LoadConfig("serve", []string{"--data-dir", "/srv/gw"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PIIExport || cfg.PIIKeys != "" || piiKeyFile(cfg) != "/srv/gw/pii.keys" {
		t.Errorf("defaults: export %v, keys %q, key file %q", cfg.PIIExport, cfg.PIIKeys, piiKeyFile(cfg))
	}
	cfg, err = LoadConfig("demo", []string{"--pii-key-file", "/etc/gw/pii.keys", "--pii-export"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.PIIExport || piiKeyFile(cfg) != "/etc/gw/pii.keys" {
		t.Errorf("flags: export %v, key file %q", cfg.PIIExport, piiKeyFile(cfg))
	}
	if cfg, err := LoadConfig("serve", []string{"--pii-export=false"}, envOf(map[string]string{"GRIDWATCH_PII_EXPORT": "true"}), io.Discard); err != nil || cfg.PIIExport {
		t.Errorf("--pii-export=false over the environment: %v", err)
	}
	key := "1 " + strings.Repeat("A", 43) + "="
	cfg, err = LoadConfig("serve", nil, envOf(map[string]string{"GRIDWATCH_PII_KEYS": key, "GRIDWATCH_PII_EXPORT": "true"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.PIIExport || cfg.PIIKeys != key {
		t.Errorf("environment: export %v", cfg.PIIExport)
	}
	if k, file, err := loadPIIKeys(cfg); err != nil || file != "" || k.Current() != 1 {
		t.Errorf("keys from the environment: %v %q %v", k, file, err)
	}
	for _, bad := range []struct {
		args   []string
		env    map[string]string
		wantIn string
	}{
		{[]string{"--pii-export=maybe"}, nil, "pii-export"},
		{nil, map[string]string{"GRIDWATCH_PII_KEYS": "1 " + strings.Repeat("B", 40)}, "pii-keys"},
	} {
		_, err := LoadConfig("serve", bad.args, envOf(bad.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), bad.wantIn) {
			t.Errorf("%v %v: %v, want an error naming %s", bad.args, bad.env, err, bad.wantIn)
		}
		if err != nil && strings.Contains(err.Error(), strings.Repeat("B", 40)) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

// TestDBMaxConns: --db-max-conns sizes the pool of requests, streams and
// recording, as /metrics reports it.
func TestDBMaxConns(t *testing.T) {
	m := startMain(t, dataDir(t), false, "--db-max-conns", "7")
	defer m.Close()
	st, body := send(t, http.DefaultClient, "GET", m.URL()+"/metrics", nil)
	if st != http.StatusOK {
		t.Fatalf("/metrics: %d", st)
	}
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "gridwatch_db_pool_max_connections{") {
			if !strings.HasSuffix(strings.TrimSpace(line), " 7") {
				t.Errorf("%s: want 7, from --db-max-conns", strings.TrimSpace(line))
			}
			return
		}
	}
	t.Fatal("/metrics has no gridwatch_db_pool_max_connections")
}
