package testtool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The Mapbox Vector Tile reader below is for tests only: enough of the
// format (protobuf wire encoding of vector_tile.proto 2.1) to check what a
// tile holds. It decodes independently of the PostGIS encoder it checks.

// MVTLayer is a layer of a decoded tile.
type MVTLayer struct {
	Name     string
	Extent   uint64
	Features []MVTFeature
}

// MVTFeature is a feature of a decoded tile: its id (HasID false when it
// has none), properties, geometry type (1 point, 2 line, 3 polygon) and
// geometry as parts (a polygon's rings, a multipoint's points) of points in
// tile coordinates.
type MVTFeature struct {
	ID         uint64
	HasID      bool
	Properties map[string]any
	Type       int
	Parts      [][][2]int64
}

// DecodeMVT decodes a tile into its layers by name.
func DecodeMVT(b []byte) (map[string]*MVTLayer, error) {
	layers := map[string]*MVTLayer{}
	err := eachField(b, func(num int, _ uint64, data []byte) error {
		if num != 3 {
			return nil
		}
		l, err := decodeLayer(data)
		if err != nil {
			return err
		}
		if _, dup := layers[l.Name]; dup {
			return fmt.Errorf("layer %q twice", l.Name)
		}
		layers[l.Name] = l
		return nil
	})
	return layers, err
}

// eachField calls fn for every field of a protobuf message: its number, its
// value when a varint or fixed number, and its bytes when length-delimited.
func eachField(b []byte, fn func(num int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad field key")
		}
		b = b[n:]
		num, typ := int(key>>3), key&7
		var v uint64
		var data []byte
		switch typ {
		case 0:
			if v, n = binary.Uvarint(b); n <= 0 {
				return errors.New("bad varint")
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errors.New("short fixed64")
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 5:
			if len(b) < 4 {
				return errors.New("short fixed32")
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("bad length")
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return fmt.Errorf("wire type %d", typ)
		}
		if err := fn(num, v, data); err != nil {
			return err
		}
	}
	return nil
}

func packed(data []byte) ([]uint64, error) {
	var out []uint64
	for len(data) > 0 {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return nil, errors.New("bad packed varint")
		}
		out, data = append(out, v), data[n:]
	}
	return out, nil
}

func decodeLayer(b []byte) (*MVTLayer, error) {
	l := &MVTLayer{Extent: 4096}
	var keys []string
	var values []any
	var raw [][]byte
	err := eachField(b, func(num int, v uint64, data []byte) error {
		switch num {
		case 1:
			l.Name = string(data)
		case 2:
			raw = append(raw, data)
		case 3:
			keys = append(keys, string(data))
		case 4:
			var val any
			err := eachField(data, func(num int, v uint64, data []byte) error {
				switch num {
				case 1:
					val = string(data)
				case 2:
					val = float64(math.Float32frombits(uint32(v)))
				case 3:
					val = math.Float64frombits(v)
				case 4:
					val = int64(v)
				case 5:
					val = v
				case 6:
					val = int64(v>>1) ^ -int64(v&1)
				case 7:
					val = v != 0
				}
				return nil
			})
			if err != nil {
				return err
			}
			values = append(values, val)
		case 5:
			l.Extent = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, data := range raw {
		f := MVTFeature{Properties: map[string]any{}}
		err := eachField(data, func(num int, v uint64, data []byte) error {
			switch num {
			case 1:
				f.ID, f.HasID = v, true
			case 2:
				tags, err := packed(data)
				if err != nil {
					return err
				}
				for i := 0; i+1 < len(tags); i += 2 {
					if tags[i] >= uint64(len(keys)) || tags[i+1] >= uint64(len(values)) {
						return errors.New("tag out of range")
					}
					f.Properties[keys[tags[i]]] = values[tags[i+1]]
				}
			case 3:
				f.Type = int(v)
			case 4:
				cmds, err := packed(data)
				if err != nil {
					return err
				}
				if f.Parts, err = decodeGeometry(cmds); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Name, err)
		}
		l.Features = append(l.Features, f)
	}
	return l, nil
}

// decodeGeometry follows the MoveTo, LineTo and ClosePath commands: each
// MoveTo of a polygon or line starts a part; each of a point is a part.
func decodeGeometry(cmds []uint64) ([][][2]int64, error) {
	var parts [][][2]int64
	var x, y int64
	zig := func(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }
	for i := 0; i < len(cmds); {
		id, count := cmds[i]&7, int(cmds[i]>>3)
		i++
		switch id {
		case 1, 2:
			if i+2*count > len(cmds) {
				return nil, errors.New("geometry ends inside a command")
			}
			for k := 0; k < count; k++ {
				x += zig(cmds[i])
				y += zig(cmds[i+1])
				i += 2
				if id == 1 || len(parts) == 0 {
					parts = append(parts, nil)
				}
				parts[len(parts)-1] = append(parts[len(parts)-1], [2]int64{x, y})
			}
		case 7:
			if len(parts) == 0 {
				return nil, errors.New("ClosePath before MoveTo")
			}
			p := parts[len(parts)-1]
			parts[len(parts)-1] = append(p, p[0])
		default:
			return nil, fmt.Errorf("geometry command %d", id)
		}
	}
	return parts, nil
}
