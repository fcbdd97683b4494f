package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
)

// Page sizes of paged lists (PageParams).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// BindJSON decodes a JSON body into v, refusing unknown fields.
func BindJSON(c *gin.Context, v any) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return gridwatch.Errorf(gridwatch.EInvalidJSON, "the body is not valid JSON: %v", err)
		case errors.As(err, &te):
			return gridwatch.Errorf(gridwatch.EInvalid, "field %s: want a JSON %s, got %s", te.Field, te.Type, te.Value).
				WithDetails(map[string]any{"field": te.Field})
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return gridwatch.Errorf(gridwatch.EInvalid, "unknown field %q", f).WithDetails(map[string]any{"field": f})
		}
		return gridwatch.Errorf(gridwatch.EInvalid, "the body is not valid: %v", err)
	}
	return nil
}

// ParamError is the error of a query parameter's value.
func ParamError(name, value, why string) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "query parameter %s=%q: %s", name, value, why).
		WithDetails(map[string]any{"param": name, "value": value})
}

// IDParam reads the path's :id, a positive integer.
func IDParam(c *gin.Context) (int64, error) {
	v := c.Param("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, gridwatch.Errorf(gridwatch.EInvalid, "id %q in the path is not a positive integer", v).WithDetails(map[string]any{"param": "id", "value": v})
	}
	return id, nil
}

// FloatParam reads a required, finite number from the query.
func FloatParam(c *gin.Context, name string) (float64, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return 0, ParamError(name, v, "required")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, ParamError(name, v, "not a finite number")
	}
	return f, nil
}

// Page is a list response: the items under key and the cursor of the next
// page, null on the last.
func Page(key string, items any, next int64) gin.H {
	resp := gin.H{key: items, "next": nil}
	if next != 0 {
		resp["next"] = strconv.FormatInt(next, 10)
	}
	return resp
}

// PageParams reads ?limit= (default 100, at most 1000) and ?cursor= (the
// next of a previous page).
func PageParams(c *gin.Context) (int, int64, error) {
	limit, err := IntParam(c, "limit", DefaultPageSize, 1, MaxPageSize)
	if err != nil {
		return 0, 0, err
	}
	var cursor int64
	if cur := c.Query("cursor"); cur != "" {
		if cursor, err = strconv.ParseInt(cur, 10, 64); err != nil || cursor <= 0 {
			return 0, 0, ParamError("cursor", cur, "not a cursor from a previous page's next")
		}
	}
	return limit, cursor, nil
}

// IntParam reads an optional integer in [lo, hi] from the query, def when
// it is absent.
func IntParam(c *gin.Context, name string, def, lo, hi int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, ParamError(name, v, "want an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
	}
	return n, nil
}

// BoolParam reads an optional true or false from the query.
func BoolParam(c *gin.Context, name string) (bool, error) {
	v := c.Query(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, ParamError(name, v, "want true or false")
	}
	return b, nil
}

// Span reads the optional from and to of a time-filtered list, each an
// RFC 3339 time.
func Span(c *gin.Context, from, to *time.Time) error {
	for _, tp := range []struct {
		name string
		dst  *time.Time
	}{{"from", from}, {"to", to}} {
		if v := c.Query(tp.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return ParamError(tp.name, v, "want an RFC 3339 time such as 2026-11-26T08:00:00+08:00")
			}
			*tp.dst = t
		}
	}
	return nil
}

// IDQuery reads an optional id from the query (?grid=, ?camera=): 0 when
// absent; what names it is what (a grid, a camera) in the error.
func IDQuery(c *gin.Context, name, what string) (int64, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, ParamError(name, v, "want "+what+" id")
	}
	return id, nil
}
