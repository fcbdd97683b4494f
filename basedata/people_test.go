package basedata

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/pii"
)

// people is the service over the demo city with a few buildings, each in
// its own grid cell, and a ring of one key.
type people struct {
	t      testing.TB
	pool   *pgxpool.Pool
	svc    *Service
	keys   *pii.Keyring
	now    time.Time
	cells  []geo.ImportFeature
	grids  map[string]int64 // grid code → id
	parent map[int64]int64  // grid id → its parent's
	// buildings: code → the grid it is in.
	buildings map[string]int64
	ctx       context.Context
}

func newPeople(t testing.TB) *people {
	t.Helper()
	demo := geotest.Demo(t)
	keys, err := pii.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &people{t: t, pool: demo.Pool, keys: keys, now: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC),
		cells: geotest.Cells(demo.Features), grids: map[string]int64{}, parent: map[int64]int64{}, buildings: map[string]int64{}}
	p.svc = p.service(keys, false)
	rows, err := demo.Pool.Query(context.Background(), `SELECT id, code, coalesce(parent_id, 0) FROM grids`)
	if err != nil {
		t.Fatal(err)
	}
	var id, parent int64
	var code string
	if _, err := pgx.ForEachRow(rows, []any{&id, &code, &parent}, func() error {
		p.grids[code], p.parent[id] = id, parent
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	uid := p.user("admin1", "admin")
	p.ctx = audit.WithActor(context.Background(), audit.Actor{Kind: "user", ID: uid, Name: "admin1"})
	// B0…B3 in the first four cells, B9 in a cell far from them.
	for i, c := range []int{0, 1, 2, 3, 9} {
		code := fmt.Sprintf("B%d", i)
		if i == 4 {
			code = "B9"
		}
		p.building(code, c)
	}
	return p
}

func (p *people) service(keys *pii.Keyring, export bool) *Service {
	return NewService(p.pool, Options{Now: func() time.Time { return p.now }, Keys: keys, Export: export})
}

// building adds a building at the middle of cell i.
func (p *people) building(code string, cell int) {
	p.t.Helper()
	m := geotest.Middle(p.cells[cell])
	var grid int64
	if err := p.pool.QueryRow(context.Background(), `INSERT INTO buildings (code, name, address, location, grid_id)
		VALUES ($1, $1 || '号楼', '测试路 ' || $1, ST_SetSRID(ST_MakePoint($2, $3), 4326), `+geo.GridAt("ST_SetSRID(ST_MakePoint($2, $3), 4326)", "")+`)
		RETURNING grid_id`, code, m[0], m[1]).Scan(&grid); err != nil {
		p.t.Fatal(err)
	}
	p.buildings[code] = grid
}

func (p *people) user(name, role string) int64 {
	p.t.Helper()
	var id int64
	if err := p.pool.QueryRow(context.Background(), `INSERT INTO users (username, display_name, role, password_hash)
		VALUES ($1, $2, $3, 'x') RETURNING id`, name, "用户 "+name, role).Scan(&id); err != nil {
		p.t.Fatal(err)
	}
	return id
}

// all sees every resident (an admin).
var all = Viewer{Residents: true}

// idNumber is a real-looking ID number (right check digit) for someone
// born on birth (YYYYMMDD), sequence seq.
func idNumber(birth string, seq int) string {
	d := "410105" + birth + fmt.Sprintf("%03d", seq)
	return d + string(pii.CheckDigit(d))
}

// wrongCheck is id with another check digit: an ID number that cannot be
// anyone's.
func wrongCheck(id string) string {
	c := byte('0')
	if id[17] == '0' {
		c = '1'
	}
	return id[:17] + string(c)
}

type personRow struct {
	household, building, unit, room, name, gender, relation, id, phone, birth, care string
}

func peopleCSV(rows ...personRow) string {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(peopleColumns)
	for _, r := range rows {
		w.Write([]string{r.household, r.building, r.unit, r.room, r.name, r.gender, r.relation, r.id, r.phone, r.birth, r.care})
	}
	w.Flush()
	return b.String()
}

func (p *people) importCSV(v Viewer, rows ...personRow) (*ImportResult, error) {
	return p.svc.ImportResidents(p.ctx, strings.NewReader(peopleCSV(rows...)), ImportOptions{Format: FormatCSV, Viewer: v})
}

func (p *people) mustImport(rows ...personRow) *ImportResult {
	p.t.Helper()
	res, err := p.importCSV(all, rows...)
	if err != nil {
		p.t.Fatalf("import: %v (%v)", err, gridwatch.ErrorDetails(err))
	}
	return res
}

func (p *people) count(table string) int {
	p.t.Helper()
	var n int
	if err := p.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		p.t.Fatal(err)
	}
	return n
}

// family is the test's residents: 张小明 (elderly alone) and his wife in
// H1 (building B0), 李四 in H2 (B1).
var (
	zhangID = idNumber("19480304", 123)
	wifeID  = idNumber("19500615", 224)
	liID    = idNumber("19851111", 315)
	family  = []personRow{
		{"H1", "B0", "1", "101", "张小明", "", "户主", zhangID, "13812345678", "1948-03-04", "elderly_alone;低保户"},
		{"H1", "B0", "1", "101", "王丽", "女", "配偶", wifeID, "", "", ""},
		{"H2", "B1", "2", "202", "李四", "male", "户主", liID, "0371-62345678", "", "veteran"},
	}
)

func (p *people) find(id string) Resident {
	p.t.Helper()
	list, _, err := p.svc.Residents(p.ctx, Filter{IDNumber: id}, all)
	if err != nil || len(list) != 1 {
		p.t.Fatalf("find by ID: %v, %d found", err, len(list))
	}
	return list[0]
}

func TestResidentImportMasksAndFinds(t *testing.T) {
	p := newPeople(t)
	res := p.mustImport(family...)
	if res.Created != 3 || res.Updated != 0 || res.Grids != 2 || res.Unassigned != 0 {
		t.Fatalf("result %+v", res)
	}
	if n := p.count("households"); n != 2 {
		t.Fatalf("%d households", n)
	}
	zhang := p.find(strings.ToLower(zhangID)) // any case finds
	if zhang.Name != "张*明" || zhang.IDNumber != zhangID[:4]+"**********"+zhangID[14:] || zhang.Phone != "138****5678" ||
		zhang.BirthDate != "1948-**-**" || zhang.Age == nil || *zhang.Age != 78 || zhang.Gender != "male" || zhang.Relation != "户主" {
		t.Errorf("masked resident %+v", zhang)
	}
	if strings.Join(zhang.Care, ",") != "elderly_alone,low_income" {
		t.Errorf("care %v: flags by code and by name", zhang.Care)
	}
	if zhang.Household == nil || zhang.Household.Code != "H1" || zhang.Grid == nil || zhang.Grid.ID != p.buildings["B0"] {
		t.Errorf("household %+v grid %+v", zhang.Household, zhang.Grid)
	}
	wife := p.find(wifeID)
	if wife.Gender != "female" || wife.Phone != "" || wife.Name != "王*" {
		t.Errorf("wife %+v", wife)
	}
	li := p.find(liID)
	if li.Phone != "0371-****5678" {
		t.Errorf("landline mask %q", li.Phone)
	}
	if list, _, err := p.svc.Residents(p.ctx, Filter{IDNumber: idNumber("19480304", 999)}, all); err != nil || len(list) != 0 {
		t.Errorf("an unknown ID finds %d, %v", len(list), err)
	}
	if _, _, err := p.svc.Residents(p.ctx, Filter{IDNumber: "12345"}, all); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("a malformed ID: %v", err)
	}
	// Filters: care, household, grid with descendants.
	for _, tc := range []struct {
		f    Filter
		want int
	}{
		{Filter{Care: []string{"elderly_alone"}}, 1}, {Filter{Care: []string{"veteran", "low_income"}}, 0},
		{Filter{HouseholdID: *idOf(zhang.Household)}, 2}, {Filter{GridID: p.parent[p.buildings["B0"]]}, 2 + sameParent(p, "B1")},
		{Filter{Q: "小"}, 1},
	} {
		if list, _, err := p.svc.Residents(p.ctx, tc.f, all); err != nil || len(list) != tc.want {
			t.Errorf("filter %+v: %d residents, %v; want %d", tc.f, len(list), err, tc.want)
		}
	}
	// Without the permission to see residents, no list.
	if _, _, err := p.svc.Residents(p.ctx, Filter{}, Viewer{}); gridwatch.ErrorCode(err) != gridwatch.EForbidden {
		t.Errorf("residents without the permission: %v", err)
	}
	// The household card: residents masked, counts.
	hh, err := p.svc.Household(p.ctx, *idOf(zhang.Household), all)
	if err != nil {
		t.Fatal(err)
	}
	if len(hh.ResidentList) != 2 || *hh.Residents != 2 || hh.Care["elderly_alone"] != 1 || hh.Building.Code != "B0" || hh.Room != "101" {
		t.Errorf("household %+v", hh)
	}
	// Households without the permission carry no counts.
	list, _, err := p.svc.Households(p.ctx, Filter{BuildingID: p.buildingID("B0")}, Viewer{})
	if err != nil || len(list) != 1 || list[0].Residents != nil || list[0].Care != nil {
		t.Errorf("households for base.read only: %+v, %v", list, err)
	}
}

func idOf(h *HouseholdRef) *int64 {
	if h == nil {
		return new(int64)
	}
	return &h.ID
}

// sameParent is 1 when building code's grid has B0's parent.
func sameParent(p *people, code string) int {
	if p.parent[p.buildings[code]] == p.parent[p.buildings["B0"]] {
		return 1
	}
	return 0
}

func (p *people) buildingID(code string) int64 {
	p.t.Helper()
	var id int64
	if err := p.pool.QueryRow(context.Background(), `SELECT id FROM buildings WHERE code = $1`, code).Scan(&id); err != nil {
		p.t.Fatal(err)
	}
	return id
}

// TestNoPlaintextInTheDatabase reads the people's tables directly, every
// bytea and text column and the whole row as text, and finds no ID
// number, phone or birth date in any form.
func TestNoPlaintextInTheDatabase(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	hh := p.find(zhangID).Household.ID
	if _, _, err := p.svc.RecordVisit(p.ctx, hh, NewVisit{Note: "探望"}, "", Viewer{UserID: p.user("wang", "grid_leader")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Move(p.ctx, p.find(liID).ID, Move{Kind: "in", HouseholdID: hh}, all); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Unmask(p.ctx, p.find(zhangID).ID, "核实低保资格", all); err != nil {
		t.Fatal(err)
	}
	secrets := []string{}
	for _, id := range []string{zhangID, wifeID, liID} {
		secrets = append(secrets, id, id[6:14], id[:6]+id[14:], id[6:10]+"-"+id[10:12]+"-"+id[12:14])
	}
	secrets = append(secrets, "13812345678", "12345678", "62345678", "0371-62345678")
	ctx := context.Background()
	for _, table := range []string{"residents", "households", "resident_moves", "home_visits", "people_counts", "audit_log"} {
		rows, err := p.pool.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var c [2]string
			return c, r.Scan(&c[0], &c[1])
		})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range cols {
			if c[1] != "bytea" && c[1] != "text" && c[1] != "text[]" && c[1] != "jsonb" {
				continue
			}
			vals, err := p.pool.Query(ctx, fmt.Sprintf(`SELECT %s::bytea FROM %s WHERE %[1]s IS NOT NULL`,
				map[bool]string{true: pgx.Identifier{c[0]}.Sanitize(), false: "convert_to(" + pgx.Identifier{c[0]}.Sanitize() + "::text, 'UTF8')"}[c[1] == "bytea"], table))
			if err != nil {
				t.Fatal(err)
			}
			bs, err := pgx.CollectRows(vals, pgx.RowTo[[]byte])
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bs {
				n++
				for _, s := range secrets {
					if bytes.Contains(b, []byte(s)) {
						t.Errorf("%s.%s holds %q in the clear", table, c[0], s)
					}
				}
			}
		}
		whole, err := p.pool.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %s t`, table))
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(whole, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range texts {
			for _, s := range secrets {
				if strings.Contains(row, s) {
					t.Errorf("a %s row holds %q: %s", table, s, row)
				}
			}
		}
		if table == "residents" && (n < 3*8 || len(texts) != 3) {
			t.Errorf("read %d values of %d residents: the test looked at nothing", n, len(texts))
		}
	}
	// And what was sealed opens to what was imported.
	u, err := p.svc.Unmask(p.ctx, p.find(zhangID).ID, "核实低保资格", all)
	if err != nil || u.IDNumber != zhangID || u.Phone != "13812345678" || u.BirthDate != "1948-03-04" || u.Name != "张小明" {
		t.Errorf("unmasked %+v, %v", u, err)
	}
}

func TestResidentImportRefusesBadRowsAndStoresNothing(t *testing.T) {
	p := newPeople(t)
	bad := []personRow{
		family[0],
		{"H2", "B1", "", "", "李四", "", "", wrongCheck(liID), "", "", ""},                      // 2: check digit
		{"H3", "B404", "", "", "赵五", "", "", idNumber("19900101", 1), "", "", ""},             // 3: unknown building (+ row 4)
		{"H3", "B404", "", "", "赵六", "", "", idNumber("19900101", 2), "12345", "", ""},        // 4: bad phone, same unknown building
		{"H1", "B1", "1", "101", "钱七", "", "", idNumber("19900101", 3), "", "", ""},           // 5: H1 is in B0
		{"H4", "B2", "", "", "孙八", "", "", zhangID, "", "", ""},                               // 6: zhang's ID again
		{"H4", "B2", "", "", "周九", "x", "", idNumber("19900101", 4), "", "1990-01-02", "fly"}, // 7: gender, birth date, care
		{"H4", "B2", "", "", "", "", "", "", "", "", ""},                                      // 8: name and ID required
	}
	_, err := p.importCSV(all, bad...)
	if gridwatch.ErrorCode(err) != EInvalidRows {
		t.Fatalf("import of bad rows: %v", err)
	}
	d := gridwatch.ErrorDetails(err)
	got := d["rows"].([]RowError)
	want := []struct {
		row   int
		field string
		says  string
	}{
		{2, "id_number", "check digit"}, {3, "building_code", "not a known building"}, {4, "phone", "mobile"},
		{5, "building_code", `in building "B0" (row 1)`}, {6, "id_number", "in row 1"},
		{7, "gender", "not male or female"}, {7, "birth_date", "not the date of birth"}, {7, "care", "not a care flag"},
		{8, "name", "required"}, {8, "id_number", "required"},
	}
	if len(got) != len(want) {
		t.Fatalf("rows %+v, want %d", got, len(want))
	}
	for i, w := range want {
		if got[i].Row != w.row || got[i].Field != w.field || !strings.Contains(got[i].Message, w.says) {
			t.Errorf("bad row %d: %+v, want row %d field %s saying %q", i, got[i], w.row, w.field, w.says)
		}
	}
	// Row 4's building is wrong too: counted, said once at the household's
	// first row.
	if d["count"] != len(want)+1 {
		t.Errorf("count %v, want %d", d["count"], len(want)+1)
	}
	for _, g := range got {
		for _, id := range []string{zhangID, liID[:17]} {
			if strings.Contains(g.Message, id) {
				t.Errorf("an error repeats an ID number: %s", g.Message)
			}
		}
	}
	for _, table := range []string{"residents", "households", "resident_moves", "people_counts"} {
		if n := p.count(table); n != 0 {
			t.Errorf("%d rows in %s after a refused import", n, table)
		}
	}
	if n := p.count("audit_log WHERE action = 'residents.import'"); n != 0 {
		t.Errorf("a refused import was audited")
	}

	// The demo's made-up people have wrong check digits on purpose: let in
	// only when the import says so.
	synthetic := personRow{"H9", "B2", "", "", "演示", "", "", wrongCheck(liID), "", "", ""}
	if _, err := p.importCSV(all, synthetic); gridwatch.ErrorCode(err) != EInvalidRows {
		t.Errorf("a wrong check digit: %v", err)
	}
	res, err := p.svc.ImportResidents(p.ctx, strings.NewReader(peopleCSV(synthetic)), ImportOptions{Format: FormatCSV, Viewer: all, SyntheticIDs: true})
	if err != nil || res.Created != 1 {
		t.Fatalf("synthetic import: %+v %v", res, err)
	}
	p.find(wrongCheck(liID))

	// The whole file is refused when its header is wrong.
	for _, data := range []string{"", "household_code,building_code,name\nH1,B0,x\n", "household_code,building_code,name,id_number,nickname\n"} {
		if _, err := p.svc.ImportResidents(p.ctx, strings.NewReader(data), ImportOptions{Format: FormatCSV, Viewer: all}); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
			t.Errorf("header %q: %v", data, err)
		}
	}
}

func TestResidentImportJSONAndScope(t *testing.T) {
	p := newPeople(t)
	js := `[{"household_code":"H1","building_code":"B0","name":"张小明","id_number":"` + zhangID + `","care":["elderly_alone","veteran"]},
		{"household_code":"H2","building_code":"B1","name":"李四","id_number":"` + liID + `","phone":null}]`
	res, err := p.svc.ImportResidents(p.ctx, strings.NewReader(js), ImportOptions{Viewer: all})
	if err != nil || res.Created != 2 {
		t.Fatalf("JSON import: %+v %v", res, err)
	}
	if c := p.find(zhangID).Care; len(c) != 2 {
		t.Errorf("care from a JSON list: %v", c)
	}
	for _, bad := range []string{`{}`, `[1`, `[{"household_code":"H1","age":3}]`, `[{"name":5}]`} {
		_, err := p.svc.ImportResidents(p.ctx, strings.NewReader(bad), ImportOptions{Viewer: all})
		if c := gridwatch.ErrorCode(err); c != EInvalidRows && c != gridwatch.EInvalidJSON {
			t.Errorf("JSON %s: %v", bad, err)
		}
	}

	// A grid leader of B0's grid sees B0's people only, imports into it
	// only, and unmasks there only.
	leader := Viewer{UserID: p.user("leader", "grid_leader"), Grids: []int64{p.buildings["B0"]}, Residents: true}
	list, _, err := p.svc.Residents(p.ctx, Filter{}, leader)
	if err != nil || len(list) != 1 || list[0].Household.Code != "H1" {
		t.Fatalf("leader's residents: %+v %v", list, err)
	}
	_, err = p.importCSV(leader, personRow{"H5", "B1", "", "", "吴十", "", "", idNumber("19900101", 5), "", "", ""},
		personRow{"H2", "B0", "", "", "李五", "", "", idNumber("19900101", 7), "", "", ""})
	d := gridwatch.ErrorDetails(err)
	if gridwatch.ErrorCode(err) != EInvalidRows || d["count"] != 2 {
		t.Fatalf("leader's import outside their grids: %v %v", err, d)
	}
	rows := d["rows"].([]RowError)
	if rows[0].Field != "building_code" || !strings.Contains(rows[0].Message, "not in your grids") ||
		rows[1].Field != "household_code" || !strings.Contains(rows[1].Message, "outside your grids") {
		t.Errorf("rows %+v", rows)
	}
	// A resident kept in another grid is not the leader's to rewrite and
	// move in by naming their ID number in a row of their own household;
	// the answer says so without repeating the number or where they are.
	before := p.find(liID)
	_, err = p.importCSV(leader, personRow{"H1", "B0", "1", "101", "冒名", "", "", liID, "13900000000", "", ""})
	d = gridwatch.ErrorDetails(err)
	if gridwatch.ErrorCode(err) != EInvalidRows || d["count"] != 1 {
		t.Fatalf("leader's import of a resident outside their grids: %v %v", err, d)
	}
	if rows := d["rows"].([]RowError); rows[0].Row != 1 || rows[0].Field != "id_number" || strings.Contains(rows[0].Message, liID) ||
		strings.Contains(rows[0].Message, "H2") {
		t.Errorf("rows %+v", rows)
	}
	if after := p.find(liID); after.Name != before.Name || after.Household.Code != "H2" || after.Phone != before.Phone {
		t.Errorf("the resident outside the leader's grids changed: %+v → %+v", before, after)
	}
	if _, err := p.svc.Unmask(p.ctx, p.find(liID).ID, "走访核实", leader); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("unmask outside the leader's grids: %v", err)
	}
	if _, err := p.svc.Resident(p.ctx, p.find(liID).ID, leader); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("a resident outside the leader's grids: %v", err)
	}
}

func TestUnmaskNeedsPurposeAndIsAudited(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	id := p.find(zhangID).ID
	for _, purpose := range []string{"", "  ab  ", strings.Repeat("长", 201)} {
		if _, err := p.svc.Unmask(p.ctx, id, purpose, all); gridwatch.ErrorCode(err) != EPurpose || gridwatch.ErrorDetails(err)["field"] != "purpose" {
			t.Errorf("purpose %q: %v", purpose, err)
		}
	}
	if n := p.count("audit_log WHERE action = 'resident.unmask'"); n != 0 {
		t.Fatalf("refused unmaskings audited: %d", n)
	}
	u, err := p.svc.Unmask(p.ctx, id, "  核实独居老人身份  ", all)
	if err != nil || u.IDNumber != zhangID {
		t.Fatalf("unmask: %+v %v", u, err)
	}
	entries, _, err := audit.NewStore(p.pool).List(context.Background(), audit.Filter{Action: "resident.unmask"})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit: %v %v", entries, err)
	}
	e := entries[0]
	if e.Actor.Name != "admin1" || e.TargetType != "resident" || e.TargetID != strconv.FormatInt(id, 10) || e.Summary["purpose"] != "核实独居老人身份" ||
		fmt.Sprint(e.Summary["fields"]) != "[name id_number phone birth_date]" || e.At.IsZero() {
		t.Errorf("audit entry %+v", e)
	}
	if _, err := p.service(nil, false).Unmask(p.ctx, id, "核实独居老人身份", all); gridwatch.ErrorCode(err) != gridwatch.EUnavailable {
		t.Errorf("unmask without keys: %v", err)
	}
}

func TestMovesAndHistory(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	li := p.find(liID)
	h1 := p.find(zhangID).Household.ID
	// In to H1 (out of H2), then out.
	d, err := p.svc.Move(p.ctx, li.ID, Move{Kind: "in", HouseholdID: h1, Note: "投亲"}, all)
	if err != nil {
		t.Fatal(err)
	}
	if d.Household.ID != h1 || d.Grid.ID != p.buildings["B0"] || len(d.Moves) != 2 || d.Moves[0].Kind != "out" || d.Moves[0].Household.Code != "H2" ||
		d.Moves[1].Kind != "in" || d.Moves[1].Household.Code != "H1" || d.Moves[1].Note != "投亲" {
		t.Fatalf("after moving in: %+v", d)
	}
	if _, err := p.svc.Move(p.ctx, li.ID, Move{Kind: "in", HouseholdID: h1}, all); gridwatch.ErrorCode(err) != gridwatch.EConflict {
		t.Errorf("moving into one's own household: %v", err)
	}
	p.now = p.now.Add(time.Hour)
	d, err = p.svc.Move(p.ctx, li.ID, Move{Kind: "out", Note: "迁往外地"}, all)
	if err != nil || d.Household != nil || d.Grid != nil || len(d.Moves) != 3 || d.Moves[2].Kind != "out" {
		t.Fatalf("after moving out: %+v %v", d, err)
	}
	if _, err := p.svc.Move(p.ctx, li.ID, Move{Kind: "out"}, all); gridwatch.ErrorCode(err) != gridwatch.EConflict {
		t.Errorf("moving out twice: %v", err)
	}
	for _, m := range []Move{{Kind: "away"}, {Kind: "in"}, {Kind: "out", HouseholdID: h1}, {Kind: "out", At: p.now.Add(time.Hour)}} {
		if _, err := p.svc.Move(p.ctx, li.ID, m, all); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
			t.Errorf("move %+v: %v", m, err)
		}
	}
	if n := p.count("audit_log WHERE action = 'resident.move'"); n != 2 {
		t.Errorf("%d moves audited, want 2", n)
	}
	// A grid leader elsewhere cannot move someone into a household of theirs.
	leader := Viewer{Grids: []int64{p.buildings["B9"]}, Residents: true}
	if _, err := p.svc.Move(p.ctx, p.find(wifeID).ID, Move{Kind: "out"}, leader); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("a move outside the leader's grids: %v", err)
	}

	// An import naming a known resident in another household moves them:
	// 王丽 from H1 to H2, her history says so.
	res := p.mustImport(personRow{"H2", "B1", "2", "202", "王丽", "", "配偶", wifeID, "13900001111", "", ""})
	if res.Created != 0 || res.Updated != 1 {
		t.Errorf("re-import: %+v", res)
	}
	wife, err := p.svc.Resident(p.ctx, p.find(wifeID).ID, all)
	if err != nil {
		t.Fatal(err)
	}
	if wife.Household.Code != "H2" || wife.Phone != "139****1111" || len(wife.Moves) != 2 || wife.Moves[0].Household.Code != "H1" || wife.Moves[1].Kind != "in" {
		t.Errorf("after a re-import: %+v", wife)
	}
}

func TestVisitsAreIdempotent(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	h1, h2 := p.find(zhangID).Household.ID, p.find(liID).Household.ID
	wang := Viewer{UserID: p.user("wang", "grid_leader"), Grids: []int64{p.buildings["B0"]}, Residents: true}
	at := p.now.Add(-2 * time.Hour)
	v1, created, err := p.svc.RecordVisit(p.ctx, h1, NewVisit{VisitedAt: &at, Note: "身体尚好"}, "visit-key-0001", wang)
	if err != nil || !created || v1.HouseholdID != h1 || !v1.VisitedAt.Equal(at) || v1.User.Username != "wang" || v1.Note != "身体尚好" {
		t.Fatalf("visit: %+v %v %v", v1, created, err)
	}
	v2, created, err := p.svc.RecordVisit(p.ctx, h1, NewVisit{VisitedAt: &at, Note: "身体尚好"}, "visit-key-0001", wang)
	if err != nil || created || v2.ID != v1.ID {
		t.Fatalf("replay: %+v %v %v", v2, created, err)
	}
	later := at.Add(time.Minute)
	if _, _, err := p.svc.RecordVisit(p.ctx, h1, NewVisit{VisitedAt: &later}, "visit-key-0001", wang); gridwatch.ErrorCode(err) != gridwatch.EIdempotencyMismatch {
		t.Errorf("the key with another time: %v", err)
	}
	// Another member's same key is their own.
	li := Viewer{UserID: p.user("li", "grid_leader"), Residents: true}
	if _, created, err := p.svc.RecordVisit(p.ctx, h2, NewVisit{}, "visit-key-0001", li); err != nil || !created {
		t.Errorf("another member's key: %v %v", created, err)
	}
	if _, _, err := p.svc.RecordVisit(p.ctx, h2, NewVisit{}, "visit-key-0002", wang); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("a household outside the member's grids: %v", err)
	}
	if _, _, err := p.svc.RecordVisit(p.ctx, h1, NewVisit{}, "bad key", wang); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("a bad key: %v", err)
	}
	if _, _, err := p.svc.RecordVisit(p.ctx, h1, NewVisit{}, "", Viewer{Residents: true}); gridwatch.ErrorCode(err) != gridwatch.EForbidden {
		t.Errorf("a visit by a token: %v", err)
	}
	future := p.now.Add(time.Hour)
	if _, _, err := p.svc.RecordVisit(p.ctx, h1, NewVisit{VisitedAt: &future}, "", wang); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("a visit in the future: %v", err)
	}
	if n := p.count("home_visits"); n != 2 {
		t.Errorf("%d visits stored, want 2", n)
	}
	mine, _, err := p.svc.Visits(p.ctx, VisitFilter{UserID: wang.UserID}, wang)
	if err != nil || len(mine) != 1 {
		t.Errorf("wang's visits: %d %v", len(mine), err)
	}
	inScope, _, err := p.svc.Visits(p.ctx, VisitFilter{}, wang)
	if err != nil || len(inScope) != 1 {
		t.Errorf("visits in wang's grids: %d %v", len(inScope), err)
	}
	if _, _, err := p.svc.Visits(p.ctx, VisitFilter{HouseholdID: h2}, wang); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("another grid's household's visits: %v", err)
	}
	d, err := p.svc.Resident(p.ctx, p.find(zhangID).ID, wang)
	if err != nil || len(d.Visits) != 1 {
		t.Errorf("the resident card's visits: %+v %v", d, err)
	}

	// A household's last visit is on it in lists and on its card (the
	// newest, whoever made it), null for one never visited and for those
	// who do not see residents.
	earlier := at.Add(-24 * time.Hour)
	if _, _, err := p.svc.RecordVisit(p.ctx, h1, NewVisit{VisitedAt: &earlier}, "visit-key-0003", wang); err != nil {
		t.Fatal(err)
	}
	list, _, err := p.svc.Households(p.ctx, Filter{}, all)
	if err != nil || len(list) != 2 {
		t.Fatalf("households: %+v %v", list, err)
	}
	for _, h := range list {
		if h.LastVisitAt == nil || !h.LastVisitAt.Equal(map[int64]time.Time{h1: at, h2: p.now}[h.ID]) {
			t.Errorf("household %s last visit %v", h.Code, h.LastVisitAt)
		}
	}
	hd, err := p.svc.Household(p.ctx, h1, wang)
	if err != nil || hd.LastVisitAt == nil || !hd.LastVisitAt.Equal(at) {
		t.Errorf("household card's last visit: %+v %v", hd, err)
	}
	if b, _ := json.Marshal(hd); !strings.Contains(string(b), `"last_visit_at":"`+at.Format(time.RFC3339)) {
		t.Errorf("household JSON: %s", b)
	}
	p.mustImport(personRow{"H3", "B2", "", "", "赵六", "", "", idNumber("19700101", 11), "", "", ""})
	never, _, err := p.svc.Households(p.ctx, Filter{Q: "H3"}, all)
	if err != nil || len(never) != 1 || never[0].LastVisitAt != nil {
		t.Errorf("a household never visited: %+v %v", never, err)
	}
	if b, _ := json.Marshal(never[0]); !strings.Contains(string(b), `"last_visit_at":null`) {
		t.Errorf("household JSON: %s", b)
	}
	noPeople, _, err := p.svc.Households(p.ctx, Filter{HouseholdID: h1}, Viewer{})
	if err != nil || len(noPeople) != 1 || noPeople[0].LastVisitAt != nil {
		t.Errorf("a household for one who does not see residents: %+v %v", noPeople, err)
	}
}

func TestExportIsOffByDefaultAndAudited(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	var out bytes.Buffer
	if err := p.svc.ExportResidents(p.ctx, Filter{}, all, &out); gridwatch.ErrorCode(err) != EExportDisabled || out.Len() != 0 {
		t.Fatalf("export on a server without --pii-export: %v (%d bytes)", err, out.Len())
	}
	on := p.service(p.keys, true)
	if err := on.ExportResidents(p.ctx, Filter{Care: []string{"elderly_alone"}}, all, &out); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || strings.Join(recs[0], ",") != strings.Join(peopleColumns, ",") ||
		strings.Join(recs[1], ",") != "H1,B0,1,101,张小明,male,户主,"+zhangID+",13812345678,1948-03-04,elderly_alone;low_income" {
		t.Errorf("export %q", recs)
	}
	entries, _, err := audit.NewStore(p.pool).List(context.Background(), audit.Filter{Action: "residents.export"})
	if err != nil || len(entries) != 1 || entries[0].Summary["rows"] != float64(1) || entries[0].Actor.Name != "admin1" {
		t.Errorf("export audit %+v %v", entries, err)
	}
	// An export imports again as it is.
	out.Reset()
	if err := on.ExportResidents(p.ctx, Filter{}, all, &out); err != nil {
		t.Fatal(err)
	}
	res, err := p.svc.ImportResidents(p.ctx, &out, ImportOptions{Format: FormatCSV, Viewer: all})
	if err != nil || res.Updated != 3 || res.Created != 0 {
		t.Errorf("re-import of an export: %+v %v", res, err)
	}
}

// TestKeyRotation seals under key 1, adds key 2 and rotates: every row is
// then under key 2, and with key 1 gone from the ring everything still
// opens and is found by ID.
func TestKeyRotation(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	k2, err := pii.Generate(p.keys)
	if err != nil {
		t.Fatal(err)
	}
	p.svc = p.service(k2, true)
	// During the rotation, rows under key 1 are found and updated, not
	// doubled.
	if res := p.mustImport(family[2]); res.Created != 0 || res.Updated != 1 {
		t.Fatalf("import under key 2 of a key-1 resident: %+v", res)
	}
	p.find(zhangID)
	rows, err := p.svc.KeyRows(p.ctx)
	if err != nil || rows[1] != 2 || rows[2] != 1 {
		t.Fatalf("rows per key before the rotation: %v %v", rows, err)
	}
	res, err := p.svc.Rotate(p.ctx, 1) // one row a batch: the loop is exercised
	if err != nil || res.Key != 2 || res.Resealed != 2 || res.Remaining != 0 || res.Rows[2] != 3 {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	if res, err := p.svc.Rotate(p.ctx, 0); err != nil || res.Resealed != 0 {
		t.Errorf("a second rotation: %+v %v", res, err)
	}
	only2, err := k2.Without(1)
	if err != nil {
		t.Fatal(err)
	}
	p.svc = p.service(only2, true)
	for _, id := range []string{zhangID, wifeID, liID} {
		u, err := p.svc.Unmask(p.ctx, p.find(id).ID, "密钥轮换核对", all)
		if err != nil || u.IDNumber != id {
			t.Errorf("after the rotation %s: %+v %v", id[:4], u, err)
		}
	}
	var out bytes.Buffer
	if err := p.svc.ExportResidents(p.ctx, Filter{}, all, &out); err != nil || strings.Count(out.String(), "\n") != 4 {
		t.Errorf("export after the rotation: %v", err)
	}
	// The old ring no longer opens, nor finds, anything.
	zhang := p.find(zhangID).ID
	p.svc = p.service(p.keys, false)
	if _, err := p.svc.Unmask(p.ctx, zhang, "密钥轮换核对", all); gridwatch.ErrorCode(err) != gridwatch.EUnavailable {
		t.Errorf("key 1 alone after the rotation: %v", err)
	}
	if list, _, err := p.svc.Residents(p.ctx, Filter{IDNumber: zhangID}, all); err != nil || len(list) != 0 {
		t.Errorf("key 1 alone finds %d, %v", len(list), err)
	}
}

func TestSummaryCountsFollow(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	g0 := p.buildings["B0"]
	check := func(grid int64, households, residents int64, care map[string]int64) {
		t.Helper()
		sum, err := p.svc.Summary(p.ctx, grid, all)
		if err != nil {
			t.Fatal(err)
		}
		h, r, c := sum.Households, sum.Residents, sum.Care
		if h != households || r != residents {
			t.Errorf("grid %d: %d households %d residents, want %d %d", grid, h, r, households, residents)
		}
		if len(c) < 7 {
			t.Errorf("care %v: every flag, zeros too", c)
		}
		for k, v := range care {
			if c[k] != v {
				t.Errorf("grid %d care %s = %d, want %d", grid, k, c[k], v)
			}
		}
	}
	check(g0, 1, 2, map[string]int64{"elderly_alone": 1, "low_income": 1, "veteran": 0})
	root := g0
	for p.parent[root] != 0 {
		root = p.parent[root]
	}
	check(root, 2, 3, map[string]int64{"elderly_alone": 1, "veteran": 1})
	// Moving out takes a resident out of the counts; an import's update of
	// care flags changes them.
	if _, err := p.svc.Move(p.ctx, p.find(zhangID).ID, Move{Kind: "out"}, all); err != nil {
		t.Fatal(err)
	}
	check(g0, 1, 1, map[string]int64{"elderly_alone": 0, "low_income": 0})
	p.mustImport(personRow{"H1", "B0", "1", "101", "王丽", "", "", wifeID, "", "", "disabled"})
	check(g0, 1, 1, map[string]int64{"disabled": 1})
	// A building placed in another grid (a redraw) takes its households
	// and residents along.
	g9 := p.buildings["B9"]
	err := pgx.BeginFunc(p.ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(p.ctx, `UPDATE buildings SET grid_id = $1 WHERE code = 'B0'`, g9); err != nil {
			return err
		}
		// As a change removing the old grid would say it.
		return p.svc.followBuildings(p.ctx, tx, &geo.Change{Removed: []int64{g0}})
	})
	if err != nil {
		t.Fatal(err)
	}
	check(g0, 0, 0, map[string]int64{"disabled": 0})
	check(g9, 1, 1, map[string]int64{"disabled": 1})
	if w := p.find(wifeID); w.Grid == nil || w.Grid.ID != g9 {
		t.Errorf("resident's grid after the building moved: %+v", w.Grid)
	}
	// A flag added later counts in its own slot.
	if _, err := p.svc.SetCareFlag(p.ctx, "pregnant", "孕产妇", 8); err != nil {
		t.Fatal(err)
	}
	p.mustImport(personRow{"H2", "B1", "2", "202", "李四", "", "", liID, "", "", "pregnant;veteran"})
	check(p.buildings["B1"], 1, 1, map[string]int64{"pregnant": 1, "veteran": 1, "disabled": 0})
	// The counts are what counting the rows gives.
	for what, q := range map[string]string{
		"people": `SELECT grid_id, residents::bigint, households::bigint FROM people_counts WHERE residents <> 0 OR households <> 0
			EXCEPT SELECT g, (SELECT count(*) FROM residents WHERE grid_id = g), (SELECT count(*) FROM households WHERE grid_id = g)
			FROM (SELECT grid_id FROM residents UNION SELECT grid_id FROM households) x (g) WHERE g IS NOT NULL`,
		"care": `SELECT c.grid_id, f.code, c.care[f.slot]::bigint FROM people_counts c, care_flags f WHERE coalesce(c.care[f.slot], 0) <> 0
			EXCEPT SELECT grid_id, flag, count(*) FROM residents, unnest(care) AS flag WHERE grid_id IS NOT NULL GROUP BY 1, 2`,
	} {
		var drift int
		if err := p.pool.QueryRow(p.ctx, `SELECT count(*) FROM (`+q+`) d`).Scan(&drift); err != nil || drift != 0 {
			t.Errorf("%s counts drift from the rows: %d %v", what, drift, err)
		}
	}
}

// FuzzResidentImportRows reads any text as a residents CSV and as JSON:
// nothing panics, every row handed on is whole and checked (a normalised
// ID number, a known gender, known flags), and no error repeats an ID
// number.
func FuzzResidentImportRows(f *testing.F) {
	f.Add(peopleCSV(family...))
	f.Add("household_code,building_code,name,id_number\nH1,B1,x," + zhangID[:17] + "x\n\"broken")
	f.Add(`[{"household_code":"H1","building_code":"B1","name":"张","id_number":"` + zhangID + `","care":["veteran"]},1,{"x":2}]`)
	flags := []CareFlag{{Code: "elderly_alone", Name: "独居老人"}, {Code: "veteran", Name: "退役军人"}}
	f.Fuzz(func(t *testing.T, data string) {
		for _, json := range []bool{false, true} {
			p := newPeopleReader(flags, false)
			var got []personIn
			emit := func(in personIn) error { got = append(got, in); return nil }
			var err error
			if json {
				err = p.readJSON(strings.NewReader(data), emit)
			} else {
				err = p.readCSV(strings.NewReader(data), emit)
			}
			if err != nil && gridwatch.ErrorCode(err) == gridwatch.EInternal {
				t.Fatalf("internal error: %v", err)
			}
			if p.rows < len(got) {
				t.Fatalf("%d rows counted, %d handed on", p.rows, len(got))
			}
			for _, in := range got {
				if _, err := pii.NormaliseID(in.id.Number); err != nil || in.name == "" || in.household == "" ||
					(in.gender != "male" && in.gender != "female") {
					t.Fatalf("row handed on: %+v (%v)", in, err)
				}
				for _, c := range in.care {
					if c != "elderly_alone" && c != "veteran" {
						t.Fatalf("care flag %q", c)
					}
				}
			}
			for _, e := range p.errs.list {
				for _, in := range got {
					if strings.Contains(e.Message, in.id.Number) {
						t.Fatalf("an error repeats an ID number: %s", e.Message)
					}
				}
			}
		}
	})
}

// Nodes share the database, not their key files: a node with a key 1 of
// its own, or with the file from before a rotation, is warned while no
// resident is stored and refused once one is.
func TestCheckKeysTellsNodesApart(t *testing.T) {
	p := newPeople(t)
	if warn, err := p.svc.CheckKeys(p.ctx); warn != nil || err != nil {
		t.Fatalf("the first node: %v %v", warn, err)
	}
	other, err := pii.Generate(nil) // a node that made its own key file
	if err != nil {
		t.Fatal(err)
	}
	if warn, err := p.service(other, false).CheckKeys(p.ctx); warn == nil || err != nil {
		t.Errorf("another key 1 before any resident: %v %v", warn, err)
	}
	p.mustImport(family...)
	if _, err := p.service(other, false).CheckKeys(p.ctx); err == nil || !strings.Contains(err.Error(), "key 1 is not") {
		t.Errorf("another key 1 with residents stored: %v", err)
	}
	if warn, err := p.svc.CheckKeys(p.ctx); warn != nil || err != nil {
		t.Errorf("the first node again: %v %v", warn, err)
	}
	k2, err := pii.Generate(p.keys)
	if err != nil {
		t.Fatal(err)
	}
	if warn, err := p.service(k2, false).CheckKeys(p.ctx); warn != nil || err != nil {
		t.Fatalf("the rotated ring: %v %v", warn, err)
	}
	// The file from before the rotation no longer starts a node.
	if _, err := p.svc.CheckKeys(p.ctx); err == nil || !strings.Contains(err.Error(), "newer than") {
		t.Errorf("a stale ring: %v", err)
	}
	var text string
	if err := p.pool.QueryRow(p.ctx, `SELECT string_agg(encode(fingerprint, 'base64'), ' ') FROM pii_keys`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	for _, secret := range strings.Fields(string(k2.Marshal())) {
		if len(secret) > 20 && strings.Contains(text, secret) {
			t.Errorf("a key is in the database")
		}
	}
}
