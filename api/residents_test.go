package api_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/incident"
	"gridwatch/internal/domain"
	"gridwatch/internal/pii"
	"gridwatch/internal/testdb"
)

// newPeopleEnv is a server over the demo city with personal-data keys
// (and the bulk export allowed when export is set), two buildings (B1 in
// grid leader 410105001001's community, B2 outside it) and three
// residents: two in H1 (B1), one in H2 (B2).
func newPeopleEnv(t *testing.T, export bool) *authEnv {
	t.Helper()
	keys, err := pii.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	ck, pool := newClock(), testdb.New(t)
	e := newEnvOn(t, pool, domain.Options{
		Auth:      auth.Options{Now: ck.Now, SessionIdle: 12 * time.Hour, SessionMax: 24 * time.Hour},
		Incidents: incident.Options{Now: ck.Now},
		Base:      basedata.Options{Now: ck.Now, Keys: keys, Export: export},
	})
	ae := &authEnv{env: e, clock: ck, pool: pool}
	ae.importDemo()
	buildings := fmt.Sprintf("code,name,lon,lat\nB1,一号楼,%.4f,%.4f\nB2,二号楼,%.4f,%.4f\n",
		patrolInside[0], patrolInside[1], patrolOutside[0], patrolOutside[1])
	if r := e.do("POST", "/api/v1/buildings/import?format=csv", []byte(buildings)); r.status != http.StatusCreated {
		t.Fatalf("import buildings: %d %s", r.status, r.body)
	}
	r := e.do("POST", "/api/v1/residents/import?format=csv", []byte(residentsCSV(
		[]string{"H1", "B1", "1", "101", "张小明", "", "户主", zhangID, "13812345678", "", "elderly_alone"},
		[]string{"H1", "B1", "1", "101", "王丽", "", "配偶", wifeID, "", "", ""},
		[]string{"H2", "B2", "", "", "李四", "", "", liID, "", "", "veteran"},
	)))
	if r.status != http.StatusCreated || r.json(t)["created"] != float64(3) {
		t.Fatalf("import residents: %d %s", r.status, r.body)
	}
	return ae
}

// idFor is a real-looking ID number (the right check digit).
func idFor(birth string, seq int) string {
	d := fmt.Sprintf("410105%s%03d", birth, seq)
	return d + string(pii.CheckDigit(d))
}

var (
	zhangID = idFor("19480304", 123)
	wifeID  = idFor("19500615", 224)
	liID    = idFor("19851111", 315)
)

func residentsCSV(rows ...[]string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"household_code", "building_code", "unit", "room", "name", "gender", "relation", "id_number", "phone", "birth_date", "care"})
	w.WriteAll(rows)
	return b.String()
}

// residentID finds a resident's id by ID number, as the admin.
func (e *authEnv) residentID(idNumber string) int64 {
	e.t.Helper()
	r := e.do("GET", "/api/v1/residents?id_number="+idNumber, nil)
	list, _ := r.json(e.t)["residents"].([]any)
	if r.status != http.StatusOK || len(list) != 1 {
		e.t.Fatalf("find resident: %d %s", r.status, r.body)
	}
	return int64(list[0].(map[string]any)["id"].(float64))
}

func TestResidentsMaskedPerRole(t *testing.T) {
	e := newPeopleEnv(t, false)
	commander := e.signIn("commander1", auth.RoleCommander)
	r := commander.do("GET", "/api/v1/residents", "")
	list := want(t, "commander's residents", r, http.StatusOK, "")["residents"].([]any)
	if len(list) != 3 {
		t.Fatalf("commander sees %d residents", len(list))
	}
	for _, secret := range []string{zhangID, wifeID, liID, "13812345678", "张小明", "1948-03-04"} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("the list shows %q", secret)
		}
	}
	var zhang map[string]any
	for _, x := range list {
		if m := x.(map[string]any); m["name"] == "张*明" {
			zhang = m
		}
	}
	if zhang == nil || zhang["id_number"] != zhangID[:4]+"**********"+zhangID[14:] || zhang["phone"] != "138****5678" ||
		zhang["birth_date"] != "1948-**-**" || zhang["age"] != float64(78) || fmt.Sprint(zhang["care"]) != "[elderly_alone]" {
		t.Errorf("masked resident %v", zhang)
	}
	// The household card, masked too.
	hid := int64(zhang["household"].(map[string]any)["id"].(float64))
	r = commander.do("GET", fmt.Sprintf("/api/v1/households/%d", hid), "")
	h := want(t, "household", r, http.StatusOK, "")
	if len(h["resident_list"].([]any)) != 2 || h["residents"] != float64(2) || strings.Contains(string(r.body), zhangID) {
		t.Errorf("household card %s", r.body)
	}
	// A commander may not unmask.
	want(t, "commander unmasks", commander.do("POST", fmt.Sprintf("/api/v1/residents/%d/unmask", int64(zhang["id"].(float64))), `{"purpose":"查看"}`),
		http.StatusForbidden, "forbidden")

	// An operator sees no resident, only counts.
	operator := e.signIn("operator1", auth.RoleOperator)
	want(t, "operator's residents", operator.do("GET", "/api/v1/residents", ""), http.StatusForbidden, "forbidden")
	want(t, "operator's households", operator.do("GET", "/api/v1/households", ""), http.StatusForbidden, "forbidden")
	grid := int64(zhang["grid"].(map[string]any)["id"].(float64))
	r = operator.do("GET", fmt.Sprintf("/api/v1/grids/%d/summary", grid), "")
	sum := want(t, "operator's summary", r, http.StatusOK, "")
	if sum["households"] != float64(1) || sum["residents"] != float64(2) || sum["care"].(map[string]any)["elderly_alone"] != float64(1) {
		t.Errorf("summary %s", r.body)
	}

	// A grid leader sees their community's people only.
	leader := e.signIn("leader1", auth.RoleGridLeader, "410105001001")
	r = leader.do("GET", "/api/v1/residents", "")
	if n := len(want(t, "leader's residents", r, http.StatusOK, "")["residents"].([]any)); n != 2 {
		t.Errorf("leader sees %d residents, want 2", n)
	}
	want(t, "leader reads another grid's resident", leader.do("GET", fmt.Sprintf("/api/v1/residents/%d", e.residentID(liID)), ""),
		http.StatusNotFound, "not_found")
	want(t, "a bad id_number", leader.do("GET", "/api/v1/residents?id_number=12", ""), http.StatusBadRequest, "invalid", "field", "id_number")
}

func TestUnmaskWithPurposeIsAudited(t *testing.T) {
	e := newPeopleEnv(t, false)
	leader := e.signIn("leader1", auth.RoleGridLeader, "410105001001")
	zhang := e.residentID(zhangID)
	path := fmt.Sprintf("/api/v1/residents/%d/unmask", zhang)
	want(t, "no purpose", leader.do("POST", path, `{}`), http.StatusUnprocessableEntity, "purpose_required", "field", "purpose")
	want(t, "a short purpose", leader.do("POST", path, `{"purpose":" 看 "}`), http.StatusUnprocessableEntity, "purpose_required")
	r := leader.do("POST", path, `{"purpose":"核实独居老人身份"}`)
	u := want(t, "unmask", r, http.StatusOK, "")
	if u["id_number"] != zhangID || u["phone"] != "13812345678" || u["birth_date"] != "1948-03-04" || u["name"] != "张小明" {
		t.Errorf("unmasked %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("unmasked answer cacheable: %q", r.header.Get("Cache-Control"))
	}
	// Outside the leader's grids: not found, and nothing recorded.
	want(t, "unmask outside scope", leader.do("POST", fmt.Sprintf("/api/v1/residents/%d/unmask", e.residentID(liID)), `{"purpose":"核实身份信息"}`),
		http.StatusNotFound, "not_found")
	r = e.do("GET", "/api/v1/audit?action=resident.unmask", nil)
	entries := want(t, "audit", r, http.StatusOK, "")["entries"].([]any)
	if len(entries) != 1 {
		t.Fatalf("audit entries %s", r.body)
	}
	en := entries[0].(map[string]any)
	summary := en["summary"].(map[string]any)
	if en["actor"].(map[string]any)["name"] != "leader1" || en["target_type"] != "resident" || en["target_id"] != fmt.Sprint(zhang) ||
		summary["purpose"] != "核实独居老人身份" || en["at"] == nil {
		t.Errorf("audit entry %v", en)
	}
	// The personal data are in no log.
	for _, secret := range []string{zhangID, "13812345678"} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func TestResidentsExportOffByDefault(t *testing.T) {
	off := newPeopleEnv(t, false)
	want(t, "export off", off.do("GET", "/api/v1/residents/export", nil), http.StatusForbidden, "pii_export_disabled")
	leader := off.signIn("leader1", auth.RoleGridLeader, "410105001001")
	want(t, "export by a leader", leader.do("GET", "/api/v1/residents/export", ""), http.StatusForbidden, "forbidden")

	on := newPeopleEnv(t, true)
	r := on.do("GET", "/api/v1/residents/export?care=elderly_alone", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][7] != zhangID || recs[1][8] != "13812345678" {
		t.Errorf("export %q %v", recs, err)
	}
	r = on.do("GET", "/api/v1/audit?action=residents.export", nil)
	entries := want(t, "audit", r, http.StatusOK, "")["entries"].([]any)
	if len(entries) != 1 || entries[0].(map[string]any)["summary"].(map[string]any)["rows"] != float64(1) {
		t.Errorf("export audit %s", r.body)
	}
}

func TestVisitsOverHTTP(t *testing.T) {
	e := newPeopleEnv(t, false)
	leader := e.signIn("leader1", auth.RoleGridLeader, "410105001001")
	r := leader.do("GET", "/api/v1/households?q=H1", "")
	hh := want(t, "households", r, http.StatusOK, "")["households"].([]any)
	if len(hh) != 1 {
		t.Fatalf("households %s", r.body)
	}
	path := fmt.Sprintf("/api/v1/households/%d/visits", int64(hh[0].(map[string]any)["id"].(float64)))
	body := fmt.Sprintf(`{"visited_at":%q,"note":"老人身体尚好"}`, e.clock.Now().Add(-time.Hour).Format(time.RFC3339))
	r = leader.do("POST", path, body, "Idempotency-Key", "visit-0001")
	v := want(t, "visit", r, http.StatusCreated, "")
	r2 := leader.do("POST", path, body, "Idempotency-Key", "visit-0001")
	v2 := want(t, "replay", r2, http.StatusOK, "")
	if v2["id"] != v["id"] || r2.header.Get("Idempotent-Replayed") != "true" || v["user"].(map[string]any)["username"] != "leader1" {
		t.Errorf("replay %s %v", r2.body, r2.header)
	}
	want(t, "bad key", leader.do("POST", path, body, "Idempotency-Key", "no"), http.StatusBadRequest, "invalid", "header", "Idempotency-Key")
	r = leader.do("GET", "/api/v1/visits?mine=true", "")
	if n := len(want(t, "my visits", r, http.StatusOK, "")["visits"].([]any)); n != 1 {
		t.Errorf("my visits: %s", r.body)
	}
	r = leader.do("GET", path, "")
	if n := len(want(t, "household visits", r, http.StatusOK, "")["visits"].([]any)); n != 1 {
		t.Errorf("household visits: %s", r.body)
	}
	// Another community's household is not found.
	r = e.do("GET", "/api/v1/households?q=H2", nil)
	other := int64(r.json(t)["households"].([]any)[0].(map[string]any)["id"].(float64))
	want(t, "visit outside scope", leader.do("POST", fmt.Sprintf("/api/v1/households/%d/visits", other), `{}`), http.StatusNotFound, "not_found")
	commander := e.signIn("commander1", auth.RoleCommander)
	want(t, "commander records a visit", commander.do("POST", path, `{}`), http.StatusForbidden, "forbidden")
}

func TestResidentsImportOverHTTP(t *testing.T) {
	e := newPeopleEnv(t, false)
	leader := e.signIn("leader1", auth.RoleGridLeader, "410105001001")
	bad := residentsCSV(
		[]string{"H3", "B1", "", "", "赵五", "", "", idFor("19900101", 1), "", "", ""},
		[]string{"H3", "B1", "", "", "赵六", "", "", idFor("19900101", 1)[:17] + "0", "", "", ""},
		[]string{"H4", "B2", "", "", "钱七", "", "", idFor("19900101", 3), "", "", ""},
	)
	r := leader.do("POST", "/api/v1/residents/import", bad, "Content-Type", "text/csv")
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad import: %d %s", r.status, r.body)
	}
	d := r.errorOf(t)["details"].(map[string]any)
	rows := d["rows"].([]any)
	if d["count"] != float64(2) || len(rows) != 2 || rows[0].(map[string]any)["row"] != float64(2) || rows[0].(map[string]any)["field"] != "id_number" ||
		rows[1].(map[string]any)["row"] != float64(3) || rows[1].(map[string]any)["field"] != "building_code" {
		t.Errorf("bad rows %s", r.body)
	}
	r = e.do("GET", "/api/v1/residents", nil)
	if n := len(r.json(t)["residents"].([]any)); n != 3 {
		t.Errorf("%d residents after a refused import, want 3", n)
	}
	// A good import in the leader's grids, as JSON; a move is recorded.
	r = leader.do("POST", "/api/v1/residents/import?format=json",
		`[{"household_code":"H3","building_code":"B1","name":"赵五","id_number":"`+idFor("19900101", 1)+`"}]`)
	if r.status != http.StatusCreated || r.json(t)["created"] != float64(1) {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	zhang := e.residentID(zhangID)
	r = e.do("GET", "/api/v1/households?q=H3", nil)
	h3 := int64(r.json(t)["households"].([]any)[0].(map[string]any)["id"].(float64))
	r = leader.do("POST", fmt.Sprintf("/api/v1/residents/%d/moves", zhang), fmt.Sprintf(`{"kind":"in","household_id":%d,"note":"投亲"}`, h3))
	moved := want(t, "move", r, http.StatusOK, "")
	if moves := moved["moves"].([]any); len(moves) != 2 || moved["household"].(map[string]any)["code"] != "H3" {
		t.Errorf("after the move %s", r.body)
	}
	// Care flags: everyone signed in reads them, an admin sets them.
	r = leader.do("GET", "/api/v1/care-flags", "")
	if n := len(want(t, "care flags", r, http.StatusOK, "")["care_flags"].([]any)); n != 7 {
		t.Errorf("care flags %s", r.body)
	}
	want(t, "leader sets a flag", leader.do("PUT", "/api/v1/care-flags/pregnant", `{"name":"孕产妇","position":8}`), http.StatusForbidden, "forbidden")
	if r := e.do("PUT", "/api/v1/care-flags/pregnant", []byte(`{"name":"孕产妇","position":8}`)); r.status != http.StatusOK || r.json(t)["name"] != "孕产妇" {
		t.Errorf("admin sets a flag: %d %s", r.status, r.body)
	}
	want(t, "a bad flag code", leader.e.do("PUT", "/api/v1/care-flags/Bad-Code", []byte(`{"name":"x"}`)), http.StatusBadRequest, "invalid", "field", "code")
}
