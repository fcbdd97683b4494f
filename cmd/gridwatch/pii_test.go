package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gridwatch/geo"
	"gridwatch/internal/pii"
)

// TestPIICommands runs the key's life: the first start makes the key file
// (0600, one key), residents are sealed under it, `pii rotate` adds key 2
// and re-seals them, `pii prune` removes key 1, and a server started on the
// new file finds and opens them.
func TestPIICommands(t *testing.T) {
	dir := dataDir(t)
	m := startMain(t, dir, false)
	keyFile := filepath.Join(dir, "pii.keys")
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file after the first start: %v %v", st, err)
	}
	id := "410105194803041230"
	id = id[:17] + string(pii.CheckDigit(id))
	post := func(path, ctype, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", m.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		req.Header.Set("Content-Type", ctype)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %d %s", path, res.StatusCode, b)
		}
	}
	post("/api/v1/grids/import", "application/geo+json", string(geo.DemoCity()))
	post("/api/v1/buildings/import", "text/csv", "code,lon,lat\nB1,113.6355,34.833\n")
	post("/api/v1/residents/import", "text/csv", "household_code,building_code,name,id_number,phone\nH1,B1,张小明,"+id+",13812345678\n")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	piiCmd := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), append(append([]string{"pii"}, args...), "--data-dir", dir, "--log-level", "error"), envOf(nil), &out, &errOut)
		if err != nil {
			t.Fatalf("pii %v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		return out.String()
	}
	if out := piiCmd("keys"); !hasLine(out, "1", "1", "seals") {
		t.Errorf("pii keys:\n%s", out)
	}
	// The key file as it was before the rotation: another node's copy.
	oldFile := filepath.Join(t.TempDir(), "old.keys")
	if b, err := os.ReadFile(keyFile); err != nil || os.WriteFile(oldFile, b, 0o600) != nil {
		t.Fatal(err)
	}
	out := piiCmd("rotate")
	if !strings.Contains(out, "added key 2") || !strings.Contains(out, "re-sealed 1 residents under key 2; 0 still") {
		t.Errorf("pii rotate:\n%s", out)
	}
	if out := piiCmd("keys"); !hasLine(out, "1", "0", "unused") || !hasLine(out, "2", "1", "seals") {
		t.Errorf("pii keys after the rotation:\n%s", out)
	}
	if out := piiCmd("prune"); !strings.Contains(out, "removed keys [1]") {
		t.Errorf("pii prune:\n%s", out)
	}
	keys, err := pii.Load(keyFile)
	if err != nil || fmt.Sprint(keys.IDs()) != "[2]" {
		t.Fatalf("key file after pruning: %v %v", keys, err)
	}

	// A node still holding the file from before the rotation is refused,
	// by the pii commands and at start, rather than sealing under key 1.
	var errOut bytes.Buffer
	if err := run(context.Background(), []string{"pii", "keys", "--data-dir", dir, "--pii-key-file", oldFile, "--log-level", "error"},
		envOf(nil), io.Discard, &errOut); err == nil || !strings.Contains(err.Error(), "newer than") {
		t.Errorf("pii keys with a stale key file: %v", err)
	}
	cfg, err := LoadConfig("serve", []string{"--addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--data-dir", dir,
		"--admin-token", testAdminToken, "--pii-key-file", oldFile}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	stale := NewMain(cfg, slog.New(slog.DiscardHandler))
	stale.PasswordHash = cheapHash
	if err := stale.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "same key file") {
		t.Errorf("a node started with a stale key file: %v", err)
	}
	stale.Close()

	m = startMain(t, dir, false)
	defer m.Close()
	var list struct {
		Residents []struct {
			ID       int64  `json:"id"`
			IDNumber string `json:"id_number"`
		} `json:"residents"`
	}
	if st := getJSON(t, m.URL()+"/api/v1/residents?id_number="+id, &list); st != 200 || len(list.Residents) != 1 {
		t.Fatalf("find by ID after the rotation: %d %+v", st, list)
	}
	var u struct {
		IDNumber string `json:"id_number"`
		Phone    string `json:"phone"`
	}
	if st := doJSON(t, http.DefaultClient, "POST", fmt.Sprintf("%s/api/v1/residents/%d/unmask", m.URL(), list.Residents[0].ID),
		[]byte(`{"purpose":"核对密钥轮换"}`), &u); st != 200 || u.IDNumber != id || u.Phone != "13812345678" {
		t.Errorf("unmask after the rotation: %d %+v", st, u)
	}
}

// hasLine reports whether out has a line starting with fields (each a
// prefix of its field), in order.
func hasLine(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(fields) {
			ok := true
			for i, want := range fields {
				if !strings.HasPrefix(f[i], want) {
					ok = false
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}
