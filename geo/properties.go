package geo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// A grid feature's properties: the ones gridwatch reads (code, name,
// level, parent_code) and the free ones it keeps, bounded in depth and size.

// reserved are the properties gridwatch interprets; the rest are kept.
var reserved = map[string]bool{"code": true, "name": true, "level": true, "parent_code": true}

func parseProperties(f *ImportFeature, raw json.RawMessage, probs *Problems) bool {
	i := f.Index
	bad := func(reason, format string, args ...any) {
		probs.add(Problem{Feature: i, Code: f.Code, Reason: reason, Message: featureLabel(i, f.Code) + ": " + fmt.Sprintf(format, args...)})
	}
	var props map[string]any
	if len(raw) == 0 || string(raw) == "null" {
		bad("missing_property", "properties are missing; each grid needs code, name and level")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&props); err != nil {
		bad("bad_property", "properties must be a JSON object")
		return false
	}
	ok := true
	code, err := codeValue(props["code"])
	f.Code = code
	switch {
	case props["code"] == nil:
		bad("missing_property", "property code is missing")
		ok = false
	case err != nil:
		bad("bad_code", "property code: %v", err)
		ok = false
	}
	name, _ := props["name"].(string)
	f.Name = strings.TrimSpace(name)
	if f.Name == "" {
		bad("missing_property", "property name is missing or empty")
		ok = false
	}
	lv, _ := props["level"].(string)
	f.Level = Level(strings.ToLower(strings.TrimSpace(lv)))
	if !f.Level.Valid() {
		bad("bad_property", "property level is %q; want district, street, community or grid", lv)
		ok = false
	}
	if props["parent_code"] != nil {
		pc, err := codeValue(props["parent_code"])
		if err != nil {
			bad("bad_parent", "property parent_code: %v", err)
			ok = false
		}
		f.ParentCode = pc
	}
	if ok {
		if want := 3 + 3*f.Level.Rank(); len(f.Code) != want {
			bad("bad_code", "a %s code has %d digits (6-digit district + 3 per level below); %q has %d", f.Level, want, f.Code, len(f.Code))
			ok = false
		}
		switch {
		case f.Level == LevelDistrict && f.ParentCode != "":
			bad("bad_parent", "a district has no parent, but parent_code is %q", f.ParentCode)
			ok = false
		case f.Level != LevelDistrict && f.ParentCode == "":
			bad("bad_parent", "property parent_code is missing; a %s needs its parent's code", f.Level)
			ok = false
		case f.ParentCode != "" && !strings.HasPrefix(f.Code, f.ParentCode):
			bad("bad_parent", "code %s does not start with its parent's code %s", f.Code, f.ParentCode)
			ok = false
		}
	}
	f.Properties = map[string]any{}
	for k, v := range props {
		if msg := storableValue(v); msg != "" || strings.ContainsRune(k, 0) {
			if msg == "" {
				msg = "its name holds a NUL character"
			}
			bad("bad_property", "property %q: %s", strings.ReplaceAll(k, "\x00", `\u0000`), msg)
			ok = false
			continue
		}
		if !reserved[k] {
			f.Properties[k] = v
		}
	}
	if !boundedProperties(f, probs) {
		ok = false
	}
	return ok
}

// boundedProperties checks the free properties' depth and size
// (MaxPropertyDepth, MaxPropertiesBytes), naming the property at fault;
// keys are taken in order, so the same file names the same property.
func boundedProperties(f *ImportFeature, probs *Problems) bool {
	keys := make([]string, 0, len(f.Properties))
	for k := range f.Properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	total, ok := 2, true // the braces
	for _, k := range keys {
		v := f.Properties[k]
		if d := depth(v, MaxPropertyDepth+1); d > MaxPropertyDepth {
			probs.add(Problem{Feature: f.Index, Code: f.Code, Property: k, Reason: "property_too_deep",
				Message: fmt.Sprintf("%s: property %q nests more than %d levels deep; at most %d are kept", featureLabel(f.Index, f.Code), k, MaxPropertyDepth, MaxPropertyDepth)})
			ok = false
			continue
		}
		b, err := json.Marshal(map[string]any{k: v})
		if err != nil {
			continue // storableValue has refused what cannot be encoded
		}
		if total += len(b) - 1; total > MaxPropertiesBytes {
			probs.add(Problem{Feature: f.Index, Code: f.Code, Property: k, Reason: "properties_too_large",
				Message: fmt.Sprintf("%s: the properties are larger than %d bytes with property %q; keep large data elsewhere and link to it", featureLabel(f.Index, f.Code), MaxPropertiesBytes, k)})
			return false
		}
	}
	return ok
}

// depth is how deeply v nests arrays and objects, counted up to limit.
func depth(v any, limit int) int {
	if limit == 0 {
		return 0
	}
	most := 0
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			most = max(most, depth(x, limit-1))
		}
	case map[string]any:
		for _, x := range t {
			most = max(most, depth(x, limit-1))
		}
	default:
		return 0
	}
	return most + 1
}

// storableValue returns why a property value cannot be stored and read
// back (a number beyond float64, a NUL character), or "".
func storableValue(v any) string {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Sprintf("the number %s is out of range", truncateText(t.String(), 40))
		}
	case string:
		if strings.ContainsRune(t, 0) {
			return "text holds a NUL character (\\u0000)"
		}
	case []any:
		for _, x := range t {
			if msg := storableValue(x); msg != "" {
				return msg
			}
		}
	case map[string]any:
		for k, x := range t {
			if strings.ContainsRune(k, 0) {
				return "a key holds a NUL character (\\u0000)"
			}
			if msg := storableValue(x); msg != "" {
				return msg
			}
		}
	}
	return ""
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// codeValue accepts a code as a string of digits or as an integer number.
func codeValue(v any) (string, error) {
	var s string
	switch t := v.(type) {
	case string:
		s = strings.TrimSpace(t)
	case json.Number:
		s = t.String()
	case nil:
		return "", errors.New("missing")
	default:
		return "", fmt.Errorf("want a string of digits, got %v", v)
	}
	if s == "" {
		return "", errors.New("empty")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return s, fmt.Errorf("%q is not all digits", s)
		}
	}
	return s, nil
}

func checkDuplicates(fs []ImportFeature, probs *Problems) {
	first := map[string]int{}
	for _, f := range fs {
		if j, dup := first[f.Code]; dup {
			probs.add(Problem{Feature: f.Index, Code: f.Code, Reason: "duplicate_code", Other: f.Code,
				Message: fmt.Sprintf("%s: code %s is also used by feature %d", featureLabel(f.Index, f.Code), f.Code, j)})
			continue
		}
		first[f.Code] = f.Index
	}
}
