package basedata

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
	"gridwatch/internal/pii"
)

// Imports of residents (POST /residents/import): a CSV with a header row,
// or a JSON array of objects with the same names, one resident a row, each
// naming their household (created, or updated, by its code) and the
// building it is in (by code; imported before). All or nothing, like the
// other imports: every bad row is reported by row and field
// (EInvalidRows), and nothing is stored unless all are good.
//
// A million rows is the measure (BenchmarkResidentImport): the file is
// read as it arrives, each row is checked in Go and its personal data
// sealed there, by as many workers as there are cores, while the sealed
// rows stream into a temporary table with COPY; then a few set-based
// statements write households and residents. The plaintext never reaches
// the database, not even its temporary tables.
//
// A resident is known by their ID number (its keyed hash, under every
// key): a known resident is updated, and when the row names another
// household their move is recorded (out of the old one, into the new).
// Residents of a household whom an import does not name stay: moves out
// are recorded one by one (Move).

// peopleColumns are the columns of a residents import, in the order a
// row's fields are kept.
var peopleColumns = []string{"household_code", "building_code", "unit", "room", "name", "gender", "relation",
	"id_number", "phone", "birth_date", "care"}

const (
	colHousehold = iota
	colBuilding
	colUnit
	colRoom
	colName
	colGender
	colRelation
	colID
	colPhone
	colBirth
	colCare
	nColumns
)

// peopleRequired are the columns a residents import must have.
var peopleRequired = []string{"household_code", "building_code", "name", "id_number"}

// personIn is one row of a residents import, checked.
type personIn struct {
	row                           int
	household                     string
	name, gender, relation, phone string
	id                            pii.IDNumber
	care                          []string
}

// householdIn is one household of an import: where the first row naming
// it says it is, and how many rows name it.
type householdIn struct {
	building, unit, room string
	first, rows          int
}

// peopleReader reads and checks the rows of a residents import. It is
// used by one goroutine.
type peopleReader struct {
	synthetic  bool
	flags      map[string]string // care flag code or name → code
	flagList   string
	errs       *rowErrors
	households map[string]*householdIn
	ids        map[uint64]int32 // ID number → first row naming it
	rows       int
}

func newPeopleReader(flags []CareFlag, synthetic bool) *peopleReader {
	p := &peopleReader{synthetic: synthetic, flags: map[string]string{}, errs: &rowErrors{},
		households: map[string]*householdIn{}, ids: map[uint64]int32{}}
	codes := make([]string, len(flags))
	for i, f := range flags {
		p.flags[f.Code], p.flags[f.Name] = f.Code, f.Code
		codes[i] = f.Code
	}
	p.flagList = strings.Join(codes, ", ")
	return p
}

// idKey packs an 18-character ID number into a map key: 17 digits and
// the check character's place in "0123456789X" (an uint64 holds both;
// a million strings would weigh three times as much).
func idKey(n string) uint64 {
	var k uint64
	for i := 0; i < 17; i++ {
		k = k*10 + uint64(n[i]-'0')
	}
	c := uint64(10)
	if n[17] != 'X' {
		c = uint64(n[17] - '0')
	}
	return k*11 + c
}

// text checks a text field: at most max characters, no control characters.
func (p *peopleReader) text(row int, field, v string, max int) (string, bool) {
	v = strings.TrimSpace(v)
	if !utf8.ValidString(v) {
		p.errs.add(row, field, "is not UTF-8 text (save the file as CSV UTF-8)")
		return "", false
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		p.errs.add(row, field, "holds a control character")
		return "", false
	}
	if n := utf8.RuneCountInString(v); n > max {
		p.errs.add(row, field, "is %d characters long; at most %d", n, max)
		return "", false
	}
	return v, true
}

// person checks row's fields (by peopleColumns' order); a problem goes to
// p.errs and the row is not returned.
func (p *peopleReader) person(row int, f *[nColumns]string) (personIn, bool) {
	p.rows++
	before := p.errs.count
	in := personIn{row: row}
	required := func(field string, col, max int) string {
		v, ok := p.text(row, field, f[col], max)
		if ok && v == "" {
			p.errs.add(row, field, "is required")
		}
		return v
	}
	in.household = required("household_code", colHousehold, maxCode)
	building := required("building_code", colBuilding, maxCode)
	unit, _ := p.text(row, "unit", f[colUnit], 32)
	room, _ := p.text(row, "room", f[colRoom], 32)
	in.name = required("name", colName, 64)
	in.relation, _ = p.text(row, "relation", f[colRelation], 32)

	// Where the household is: the first row naming it says, the others
	// agree.
	if in.household != "" && building != "" {
		if h, ok := p.households[in.household]; !ok {
			p.households[in.household] = &householdIn{building: building, unit: unit, room: room, first: row, rows: 1}
		} else {
			h.rows++
			switch {
			case h.building != building:
				p.errs.add(row, "building_code", "household %q is in building %q (row %d), not %q", in.household, h.building, h.first, building)
			case h.unit != unit || h.room != room:
				p.errs.add(row, "room", "household %q is unit %q room %q (row %d), not unit %q room %q", in.household, h.unit, h.room, h.first, unit, room)
			}
		}
	}

	switch idText := strings.TrimSpace(f[colID]); {
	case idText == "":
		p.errs.add(row, "id_number", "is required")
	default:
		id, err := pii.NormaliseID(idText)
		if errors.Is(err, pii.ErrCheckDigit) && p.synthetic {
			id, err = pii.NormaliseIDUnchecked(idText)
		}
		if err != nil {
			// The number itself is not repeated: it is personal data, and
			// an error answer may be logged or shown.
			p.errs.add(row, "id_number", "%s", err)
			break
		}
		in.id = id
		k := idKey(id.Number)
		if first, dup := p.ids[k]; dup {
			p.errs.add(row, "id_number", "the same ID number is in row %d: one person, one row", first)
		} else {
			p.ids[k] = int32(row)
		}
	}

	switch g := strings.ToLower(strings.TrimSpace(f[colGender])); g {
	case "":
		if in.id.Number != "" {
			in.gender = "male"
			if in.id.Female {
				in.gender = "female"
			}
		}
	case "male", "m", "男":
		in.gender = "male"
	case "female", "f", "女":
		in.gender = "female"
	default:
		p.errs.add(row, "gender", "%q is not male or female (男, 女); leave it empty to take it from the ID number", f[colGender])
	}

	if v := strings.TrimSpace(f[colPhone]); v != "" {
		phone, err := pii.NormalisePhone(v)
		if err != nil && p.synthetic && syntheticPhone(v) {
			// The demo's people have phones no one can have (100…: no
			// mobile number begins so), as their IDs fail the check digit.
			phone, err = v, nil
		}
		if err != nil {
			p.errs.add(row, "phone", "%s", err)
		}
		in.phone = phone
	}

	if v := strings.TrimSpace(f[colBirth]); v != "" && in.id.Number != "" {
		var birth time.Time
		var err error
		for _, layout := range []string{"2006-01-02", "2006/01/02", "20060102", "2006-1-2", "2006/1/2"} {
			if birth, err = time.Parse(layout, v); err == nil {
				break
			}
		}
		switch {
		case err != nil:
			p.errs.add(row, "birth_date", "is not a date such as 1948-03-04")
		case !birth.Equal(in.id.Birth):
			p.errs.add(row, "birth_date", "is not the date of birth the ID number carries")
		}
	}

	if v := strings.TrimSpace(f[colCare]); v != "" {
		for _, c := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == '；' }) {
			c = strings.TrimSpace(c)
			if c == "" {
				continue
			}
			code, ok := p.flags[c]
			if !ok {
				p.errs.add(row, "care", "%q is not a care flag: %s (GET /api/v1/care-flags)", truncate(c, 40), p.flagList)
				continue
			}
			if !slices.Contains(in.care, code) {
				in.care = append(in.care, code)
			}
		}
	}
	if in.care == nil {
		in.care = []string{}
	}
	return in, p.errs.count == before
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// readCSV reads a residents CSV, handing each good row to emit.
func (p *peopleReader) readCSV(r io.Reader, emit func(personIn) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3) // a BOM, as spreadsheets write
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return gridwatch.Errorf(gridwatch.EInvalid, "the import is empty: send a CSV with a header row (%s)", strings.Join(peopleColumns, ", "))
	}
	if err != nil {
		return gridwatch.Errorf(gridwatch.EInvalid, "the CSV header cannot be read: %v", err)
	}
	cols := make([]int, len(header)) // header position → column
	seen := map[int]bool{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		c := slices.Index(peopleColumns, name)
		if c < 0 {
			return gridwatch.Errorf(gridwatch.EInvalid, "the CSV header has an unknown column %q (column %d): residents take %s",
				truncate(h, 40), i+1, strings.Join(peopleColumns, ", ")).WithDetails(map[string]any{"column": truncate(h, 40)})
		}
		if seen[c] {
			return gridwatch.Errorf(gridwatch.EInvalid, "the CSV header names column %q twice", name).WithDetails(map[string]any{"column": name})
		}
		seen[c], cols[i] = true, c
	}
	for _, need := range peopleRequired {
		if !seen[slices.Index(peopleColumns, need)] {
			return gridwatch.Errorf(gridwatch.EInvalid, "the CSV header has no %s column: residents take %s",
				need, strings.Join(peopleColumns, ", ")).WithDetails(map[string]any{"column": need})
		}
	}
	var f [nColumns]string
	for n := 1; ; n++ {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrFieldCount) {
			// After a broken quote the reader cannot tell where the next
			// row starts.
			p.errs.add(n, "row", "cannot be read (line %d, column %d): %v", pe.Line, pe.Column, pe.Err)
			return nil
		}
		if err != nil && pe == nil {
			return err
		}
		if len(fields) == 1 && strings.TrimSpace(fields[0]) == "" {
			n--
			continue // a blank line
		}
		if len(fields) != len(header) {
			p.rows++
			p.errs.add(n, "row", "has %d fields; the header has %d", len(fields), len(header))
			continue
		}
		f = [nColumns]string{}
		for i, v := range fields {
			f[cols[i]] = v
		}
		if in, ok := p.person(n, &f); ok {
			if err := emit(in); err != nil {
				return err
			}
		}
	}
}

// readJSON reads a residents JSON array of objects, handing each good row
// to emit. A care value may be a list of flags or a ";"-separated text.
func (p *peopleReader) readJSON(r io.Reader, emit func(personIn) error) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<16))
	notArray := func(err error) error {
		return gridwatch.Errorf(gridwatch.EInvalidJSON, "the import is not a JSON array of residents: %v", err)
	}
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return gridwatch.Errorf(gridwatch.EInvalid, "the import is empty: send a JSON array of residents, or a CSV with a header row")
	}
	if err != nil {
		return notArray(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return notArray(errors.New("it does not start with ["))
	}
	var f [nColumns]string
	for n := 1; dec.More(); n++ {
		var obj map[string]json.RawMessage
		if err := dec.Decode(&obj); err != nil {
			var ute *json.UnmarshalTypeError
			if errors.As(err, &ute) {
				p.rows++
				p.errs.add(n, "row", "is not an object")
				continue
			}
			return notArray(fmt.Errorf("element %d: %v", n, err))
		}
		f = [nColumns]string{}
		bad := false
		for k, raw := range obj {
			c := slices.Index(peopleColumns, k)
			if c < 0 {
				p.errs.add(n, truncate(k, 40), "is not a field of a resident: %s", strings.Join(peopleColumns, ", "))
				bad = true
				continue
			}
			v, ok := jsonText(raw, c == colCare)
			if !ok {
				p.errs.add(n, k, "is not a text (a list of texts for care)")
				bad = true
				continue
			}
			f[c] = v
		}
		if bad {
			p.rows++
			continue
		}
		if in, ok := p.person(n, &f); ok {
			if err := emit(in); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return notArray(err)
	}
	return nil
}

// jsonText reads a field's JSON value: a string, null (empty), or, when
// list is set, a list of strings (joined by ";").
func jsonText(raw json.RawMessage, list bool) (string, bool) {
	var s *string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == nil {
			return "", true
		}
		return *s, true
	}
	if list {
		var l []string
		if err := json.Unmarshal(raw, &l); err == nil {
			for _, x := range l {
				if strings.ContainsAny(x, ";；") {
					return "", false
				}
			}
			return strings.Join(l, ";"), true
		}
	}
	return "", false
}

// stagedColumns are the columns of the temporary table of sealed rows.
var stagedColumns = []string{"row", "household_code", "name", "gender", "relation", "birth_year", "id_sealed", "id_hash", "id_masked",
	"phone_sealed", "phone_hash", "phone_masked", "birth_sealed", "care", "old_hashes"}

// seal turns a checked row into its staged values, personal data sealed.
func seal(keys *pii.Keyring, in personIn) ([]any, error) {
	idS, err := keys.Seal(pii.FieldID, []byte(in.id.Number))
	if err != nil {
		return nil, err
	}
	birthS, err := keys.Seal(pii.FieldBirth, []byte(in.id.Birth.Format("2006-01-02")))
	if err != nil {
		return nil, err
	}
	var phoneS, phoneH []byte
	if in.phone != "" {
		if phoneS, err = keys.Seal(pii.FieldPhone, []byte(in.phone)); err != nil {
			return nil, err
		}
		phoneH = keys.Hash(pii.FieldPhone, in.phone)
	}
	var old [][]byte
	if len(keys.IDs()) > 1 {
		old = keys.Find(pii.FieldID, in.id.Number)[1:]
	}
	return []any{int32(in.row), in.household, in.name, in.gender, in.relation, int32(in.id.Birth.Year()),
		idS, keys.Hash(pii.FieldID, in.id.Number), pii.MaskID(in.id.Number),
		phoneS, phoneH, pii.MaskPhone(in.phone), birthS, in.care, old}, nil
}

// sealedRows is the COPY source of sealed rows, fed by the sealers.
type sealedRows struct {
	ch    <-chan [][]any
	batch [][]any
	i     int
	err   func() error
}

func (s *sealedRows) Next() bool {
	for s.i+1 >= len(s.batch) {
		b, ok := <-s.ch
		if !ok {
			return false
		}
		s.batch, s.i = b, -1
	}
	s.i++
	return true
}

func (s *sealedRows) Values() ([]any, error) { return s.batch[s.i], nil }
func (s *sealedRows) Err() error             { return s.err() }

// analyseAbove is how many rows make an import analyse the tables it
// joins before joining them.
const analyseAbove = 10_000

// sealBatch is how many rows travel together between the reader, the
// sealers and COPY.
const sealBatch = 512

// stagePeople reads the import in o's format from r, checking every row,
// and copies the good rows, sealed, into the temporary table people_rows;
// once a row is bad the others are still read and checked (every problem
// is reported) but no longer sealed.
func (s *Service) stagePeople(parent context.Context, tx pgx.Tx, r io.Reader, o ImportOptions, p *peopleReader) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	in := make(chan []personIn, 4)
	out := make(chan [][]any, 4)
	var (
		readErr, sealErr error
		sealOnce         sync.Once
		sealers          sync.WaitGroup
		reader           = make(chan struct{})
	)
	go func() {
		defer close(reader)
		defer close(in)
		batch := make([]personIn, 0, sealBatch)
		send := func() error {
			select {
			case in <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]personIn, 0, sealBatch)
			return nil
		}
		emit := func(x personIn) error {
			if p.errs.count > 0 {
				return nil // the import fails: nothing more to seal
			}
			if batch = append(batch, x); len(batch) == sealBatch {
				return send()
			}
			return nil
		}
		if o.Format == FormatCSV {
			readErr = p.readCSV(r, emit)
		} else {
			readErr = p.readJSON(r, emit)
		}
		if readErr == nil && len(batch) > 0 && p.errs.count == 0 {
			readErr = send()
		}
	}()
	workers := min(runtime.GOMAXPROCS(0), 8)
	for range workers {
		sealers.Add(1)
		go func() {
			defer sealers.Done()
			for b := range in {
				rows := make([][]any, len(b))
				for i, x := range b {
					v, err := seal(s.keys, x)
					if err != nil {
						sealOnce.Do(func() { sealErr = err })
						cancel()
						return
					}
					rows[i] = v
				}
				select {
				case out <- rows:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { sealers.Wait(); close(out) }()
	src := &sealedRows{ch: out, i: -1, err: func() error { return nil }}
	_, copyErr := tx.CopyFrom(ctx, pgx.Identifier{"people_rows"}, stagedColumns, src)
	// Let the reader and the sealers end (a failed COPY leaves them
	// blocked on a send) before reading what they left.
	cancel()
	for range out {
	}
	<-reader
	switch {
	case readErr != nil && !errors.Is(readErr, context.Canceled):
		return readErr
	case sealErr != nil:
		return fmt.Errorf("seal: %w", sealErr)
	case copyErr != nil:
		return fmt.Errorf("stage: %w", copyErr)
	}
	return parent.Err()
}

// ImportResidents imports residents and their households (see the top of
// this file). o.Format is csv, or anything else for a JSON array; o.Viewer
// limits the buildings rows may name (and the known households they may
// update) to its grids; o.SyntheticIDs lets ID numbers with a wrong check
// digit in (the demo's made-up people). The result counts residents.
// Audited as residents.import.
func (s *Service) ImportResidents(ctx context.Context, r io.Reader, o ImportOptions) (*ImportResult, error) {
	if s.keys == nil {
		return nil, noKeys()
	}
	flags, err := careFlags(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	p := newPeopleReader(flags, o.SyntheticIDs)
	now := s.now()
	var res ImportResult
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Batch work: bounded by its context, not by a request's statement timeout.
		if err := database.Long(ctx, tx); err != nil {
			return err
		}
		// No boundary change meanwhile: households take their buildings'
		// grids as this transaction sees them, and a redraw running beside
		// it would not see them to carry them along.
		if _, err := tx.Exec(ctx, `LOCK TABLE grids IN SHARE MODE`); err != nil {
			return err
		}
		// The joins of a million staged rows with households and
		// residents hash in memory rather than in batches on disk.
		if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '256MB'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE people_rows (row int, household_code text, name text, gender text,
				relation text, birth_year int, id_sealed bytea, id_hash bytea, id_masked text, phone_sealed bytea, phone_hash bytea,
				phone_masked text, birth_sealed bytea, care text[], old_hashes bytea[]) ON COMMIT DROP;
			CREATE TEMP TABLE people_households (code text, building_code text, unit text, room text, first_row int, rows int)
				ON COMMIT DROP`); err != nil {
			return err
		}
		// How long each step took, for the debug log (a slow import says
		// where its time went).
		started, steps := time.Now(), []any{}
		step := func(name string) {
			steps = append(steps, name, time.Since(started).Round(time.Millisecond).String())
			started = time.Now()
		}
		if err := s.stagePeople(ctx, tx, r, o, p); err != nil {
			return err
		}
		if p.rows == 0 {
			return gridwatch.Errorf(gridwatch.EInvalid, "the import has no rows")
		}
		step("read_seal_copy")
		if err := stageHouseholds(ctx, tx, p.households); err != nil {
			return err
		}
		// Temporary tables are never analysed by autovacuum, and a table
		// that was empty when last analysed (households, on a first
		// import) would be planned as empty: without real figures the
		// joins below go from seconds to hours.
		if p.rows >= analyseAbove {
			if _, err := tx.Exec(ctx, `ANALYZE people_rows, people_households`); err != nil {
				return err
			}
			// Big sets are joined by hashing, never row by row: a nested
			// loop chosen on a table's last figures (residents analysed
			// empty, then filled by the very statement that reads it for
			// known ID numbers) rescans it for every row, for hours.
			if _, err := tx.Exec(ctx, `SET LOCAL enable_nestloop = off`); err != nil {
				return err
			}
		}
		if err := checkHouseholds(ctx, tx, o.Viewer, p.errs); err != nil {
			return err
		}
		if err := p.errs.err("residents import"); err != nil {
			return err
		}
		step("check")
		var households, hhCreated, moves int
		var err error
		if households, hhCreated, err = upsertHouseholds(ctx, tx, now); err != nil {
			return err
		}
		if hhCreated >= analyseAbove {
			if _, err := tx.Exec(ctx, `ANALYZE households`); err != nil {
				return err
			}
		}
		step("households")
		if len(s.keys.IDs()) > 1 {
			// Residents still under an older key are found by its hash:
			// give them the current key's, so the upsert below finds them.
			if _, err := tx.Exec(ctx, `UPDATE residents r SET id_hash = o.id_hash
				FROM (SELECT t.id_hash, unnest(t.old_hashes) AS old FROM people_rows t) o WHERE r.id_hash = o.old`); err != nil {
				return err
			}
		}
		if p.rows >= analyseAbove {
			// Residents changed much since last analysed (an import just
			// before this one, autovacuum not yet round) would be planned
			// by their old size in the joins below.
			if _, err := tx.Exec(ctx, `DO $$ BEGIN
				IF (SELECT s.n_mod_since_analyze > 0.1 * greatest(c.reltuples, 0) + 1000
					FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relid = 'residents'::regclass) THEN
					ANALYZE residents;
				END IF; END $$`); err != nil {
				return err
			}
		}
		var user *int64
		if o.Viewer.UserID != 0 {
			user = &o.Viewer.UserID
		}
		// A known resident whose row names another household moves: out
		// of the old one (if any), into the new one.
		if err := tx.QueryRow(ctx, `WITH m AS (
				INSERT INTO resident_moves (resident_id, household_id, kind, at, note, user_id)
				SELECT r.id, m.household_id, m.kind, $1, 'import', $2
				FROM people_rows t JOIN residents r ON r.id_hash = t.id_hash JOIN households h ON h.code = t.household_code
				CROSS JOIN LATERAL (VALUES (r.household_id, 'out', 1), (h.id, 'in', 2)) AS m (household_id, kind, ord)
				WHERE r.household_id IS DISTINCT FROM h.id AND m.household_id IS NOT NULL
				ORDER BY r.id, m.ord
				RETURNING kind)
			SELECT count(*) FILTER (WHERE kind = 'in') FROM m`, now, user).Scan(&moves); err != nil {
			return err
		}
		step("moves")
		updated, err := tx.Exec(ctx, updateResidents, s.keys.Current(), now)
		if err != nil {
			return err
		}
		created, err := tx.Exec(ctx, insertResidents, s.keys.Current(), now)
		if v, _ := database.Violated(err); v == database.Unique {
			return gridwatch.Errorf(gridwatch.EConflict, "another import added some of these residents at the same moment; try again")
		}
		if err != nil {
			return err
		}
		res.Created, res.Updated = int(created.RowsAffected()), int(updated.RowsAffected())
		if total := res.Created + res.Updated; total != p.rows {
			// A building deleted since the rows were checked.
			return gridwatch.Errorf(gridwatch.EConflict, "buildings changed during the import (%d of %d rows found their household); try again", total, p.rows)
		}
		step("residents")
		s.log.Debug("residents import", append([]any{"rows", p.rows, "households", households}, steps...)...)
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT h.grid_id), coalesce(sum(t.rows) FILTER (WHERE h.grid_id IS NULL), 0)
			FROM people_households t JOIN households h ON h.code = t.code`).Scan(&res.Grids, &res.Unassigned); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "residents.import", "residents", "", map[string]any{
			"rows": p.rows, "households": households, "households_created": hhCreated,
			"created": res.Created, "updated": res.Updated, "moves": moves})
	})
	if err != nil {
		if gridwatch.ErrorCode(err) != gridwatch.EInternal {
			return nil, err
		}
		return nil, fmt.Errorf("import residents: %w", err)
	}
	return &res, nil
}

// updateResidents and insertResidents write the staged rows: known ID
// numbers are updated, sealed again under the current key ($1), then new
// ones created, at $2. Two plain statements rather than one INSERT … ON
// CONFLICT: a first import of a million residents then inserts without a
// speculative insertion per row. A resident another import added between
// the two is a unique violation, answered as a conflict.
const updateResidents = `UPDATE residents r SET household_id = h.id, grid_id = h.grid_id,
		name = t.name, gender = t.gender, relation = t.relation, birth_year = t.birth_year,
		id_sealed = t.id_sealed, id_masked = t.id_masked, phone_sealed = t.phone_sealed,
		phone_hash = t.phone_hash, phone_masked = t.phone_masked, birth_sealed = t.birth_sealed,
		key_id = $1, care = t.care, updated_at = $2
	FROM people_rows t JOIN households h ON h.code = t.household_code
	WHERE r.id_hash = t.id_hash`

const insertResidents = `INSERT INTO residents (household_id, grid_id, name, gender, relation, birth_year, id_sealed, id_hash, id_masked,
		phone_sealed, phone_hash, phone_masked, birth_sealed, key_id, care, created_at, updated_at)
	SELECT h.id, h.grid_id, t.name, t.gender, t.relation, t.birth_year, t.id_sealed, t.id_hash, t.id_masked,
		t.phone_sealed, t.phone_hash, t.phone_masked, t.birth_sealed, $1, t.care, $2, $2
	FROM people_rows t JOIN households h ON h.code = t.household_code
	WHERE NOT EXISTS (SELECT 1 FROM residents r WHERE r.id_hash = t.id_hash)`

// stageHouseholds copies an import's households into people_households.
func stageHouseholds(ctx context.Context, tx pgx.Tx, hh map[string]*householdIn) error {
	rows := make([][]any, 0, len(hh))
	for code, h := range hh {
		rows = append(rows, []any{code, h.building, h.unit, h.room, int32(h.first), int32(h.rows)})
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"people_households"},
		[]string{"code", "building_code", "unit", "room", "first_row", "rows"}, pgx.CopyFromRows(rows))
	return err
}

// checkHouseholds adds to errs the households whose building is unknown
// or, for a viewer limited to some grids, lies outside them, and the known
// households outside them: each at the first row naming it, counting all
// its rows.
func checkHouseholds(ctx context.Context, tx pgx.Tx, v Viewer, errs *rowErrors) error {
	query := `SELECT t.first_row, t.rows, t.code, t.building_code, 'unknown' FROM people_households t
		WHERE NOT EXISTS (SELECT 1 FROM buildings b WHERE b.code = t.building_code)`
	args := []any{}
	if v.Grids != nil {
		args = append(args, v.Grids)
		query += `
		UNION ALL
		SELECT t.first_row, t.rows, t.code, t.building_code, 'building' FROM people_households t
		JOIN buildings b ON b.code = t.building_code
		WHERE NOT coalesce(b.grid_id IN (SELECT * FROM grid_subtree($1)), false)
		UNION ALL
		SELECT t.first_row, t.rows, t.code, t.building_code, 'household' FROM people_households t
		JOIN households h ON h.code = t.code
		WHERE NOT coalesce(h.grid_id IN (SELECT * FROM grid_subtree($1)), false)
		UNION ALL
		SELECT t.row, 1, t.household_code, '', 'resident' FROM people_rows t
		JOIN residents r ON r.id_hash = ANY(array_prepend(t.id_hash, t.old_hashes))
		WHERE NOT coalesce(r.grid_id IN (SELECT * FROM grid_subtree($1)), false)`
		// A resident is known by their ID number wherever they live: a row
		// naming one kept in another grid (or moved out of every grid)
		// would rewrite them and move them in, a change of people outside
		// the caller's scope; Move refuses it alike (404).
	}
	rows, err := tx.Query(ctx, query+` ORDER BY 1`, args...)
	if err != nil {
		return err
	}
	var found rowErrors
	var (
		first, n       int32
		code, building string
		why            string
	)
	if _, err := pgx.ForEachRow(rows, []any{&first, &n, &code, &building, &why}, func() error {
		others := ""
		if n > 1 {
			others = fmt.Sprintf(" (and the household's %d other rows)", n-1)
		}
		switch why {
		case "unknown":
			found.add(int(first), "building_code", "%q is not a known building: import it first%s", building, others)
		case "building":
			found.add(int(first), "building_code", "building %q is not in your grids%s", building, others)
		case "resident":
			// The number is not repeated, nor where the resident is.
			found.add(int(first), "id_number", "is a resident's kept outside your grids: who keeps their grid moves them out first, or an admin imports the row")
		default:
			found.add(int(first), "household_code", "household %q is in a building outside your grids%s", code, others)
		}
		found.count += int(n) - 1
		return nil
	}); err != nil {
		return err
	}
	errs.merge(&found)
	return nil
}

// merge adds o's rows to e, keeping the first MaxListedRows by row.
func (e *rowErrors) merge(o *rowErrors) {
	if o.count == 0 {
		return
	}
	e.list = append(e.list, o.list...)
	slices.SortStableFunc(e.list, func(a, b RowError) int { return a.Row - b.Row })
	if len(e.list) > MaxListedRows {
		e.list = e.list[:MaxListedRows]
	}
	e.count += o.count
}

// upsertHouseholdsSQL is upsertHouseholds' statement, at $1. The
// residents of a household that moved (to another building, so perhaps
// another grid) go with it, those the import does not name too.
const upsertHouseholdsSQL = `WITH up AS (
	INSERT INTO households AS h (code, building_id, unit, room, grid_id, created_at, updated_at)
	SELECT t.code, b.id, t.unit, t.room, b.grid_id, $1, $1 FROM people_households t JOIN buildings b ON b.code = t.building_code
	ON CONFLICT (code) DO UPDATE SET building_id = excluded.building_id, unit = excluded.unit, room = excluded.room,
		grid_id = excluded.grid_id, updated_at = excluded.updated_at
	WHERE (h.building_id, h.unit, h.room, h.grid_id) IS DISTINCT FROM (excluded.building_id, excluded.unit, excluded.room, excluded.grid_id)
	RETURNING h.id, h.grid_id, xmax = 0 AS created
), follow AS (
	UPDATE residents r SET grid_id = up.grid_id, updated_at = $1 FROM up
	WHERE NOT up.created AND r.household_id = up.id AND r.grid_id IS DISTINCT FROM up.grid_id
)
SELECT (SELECT count(*) FROM people_households), count(*) FILTER (WHERE created) FROM up`

// upsertHouseholds creates the import's new households and updates the
// known ones that moved (building, unit, room), each taking its
// building's grid. It returns how many households the import names and
// how many it created.
func upsertHouseholds(ctx context.Context, tx pgx.Tx, now time.Time) (int, int, error) {
	var all, created int
	err := tx.QueryRow(ctx, upsertHouseholdsSQL, now).Scan(&all, &created)
	return all, created, err
}

// syntheticPhone tells an invented number of the demo: 11 digits beginning
// 100, a prefix no mobile network in China is given.
func syntheticPhone(v string) bool {
	return len(v) == 11 && strings.HasPrefix(v, "100") && strings.Trim(v, "0123456789") == ""
}
