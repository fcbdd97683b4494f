package manscdp

import (
	"encoding/xml"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// The message types are walked by reflection, by their encoding/xml
// style tags (name, attr, omitempty), rather than with xml.Unmarshal:
// element names match whatever their case, numbers are trimmed and their
// errors name the field, list items are bounded, and Encode controls the
// charset and which zero values are written.

// kind is what a field holds.
type kind int

const (
	kString  kind = iota // string
	kInt                 // int, int64
	kStrings             // []string: a repeated element
	kStruct              // *struct: an optional element with children
	kStructs             // []struct: a repeated element with children
)

type field struct {
	index     int
	name      string // element or attribute name
	attr      bool
	omitEmpty bool
	kind      kind
	elem      reflect.Type // the struct of kStruct and kStructs
}

type structInfo struct {
	elems   []*field // in order
	attrs   []*field
	byName  map[string]*field // element name, as is and in lower case
	attrsBy map[string]*field // lower-case attribute name
}

var infos sync.Map // reflect.Type → *structInfo

// infoOf describes a struct type; it panics on a field of a kind it does
// not handle, a mistake in this package's types.
func infoOf(t reflect.Type) *structInfo {
	if v, ok := infos.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{byName: map[string]*field{}, attrsBy: map[string]*field{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Type == reflect.TypeFor[xml.Name]() {
			continue
		}
		tag := sf.Tag.Get("xml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		f := &field{index: i, name: name}
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "attr":
				f.attr = true
			case "omitempty":
				f.omitEmpty = true
			}
		}
		ft := sf.Type
		switch {
		case ft.Kind() == reflect.String:
			f.kind = kString
		case ft.Kind() == reflect.Int || ft.Kind() == reflect.Int64:
			f.kind = kInt
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			f.kind = kStrings
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			f.kind, f.elem = kStruct, ft.Elem()
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			f.kind, f.elem = kStructs, ft.Elem()
		default:
			panic(fmt.Sprintf("manscdp: field %s.%s of type %s", t.Name(), sf.Name, ft))
		}
		if f.attr {
			if f.kind != kString && f.kind != kInt {
				panic(fmt.Sprintf("manscdp: attribute %s.%s of type %s", t.Name(), sf.Name, ft))
			}
			si.attrs = append(si.attrs, f)
			si.attrsBy[strings.ToLower(name)] = f
			continue
		}
		si.elems = append(si.elems, f)
		si.byName[name] = f
		si.byName[strings.ToLower(name)] = f
	}
	v, _ := infos.LoadOrStore(t, si)
	return v.(*structInfo)
}

// elem is the field an element fills, matched by name whatever its case.
func (si *structInfo) elem(name string) *field {
	if f, ok := si.byName[name]; ok {
		return f
	}
	return si.byName[strings.ToLower(name)]
}
