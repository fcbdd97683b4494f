package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"gridwatch/api/httpapi"

	"github.com/gin-gonic/gin"
)

// decodeEngine is the decoding layer alone: checkInput, then BindJSON into
// a struct with free-form members, as a route's handler does.
func decodeEngine() *gin.Engine {
	s := New(Deps{})
	e := gin.New()
	r := Route{Method: "POST", Path: "/x"}
	e.POST("/x", s.checkInput(r, map[string][]string{"POST /x": nil}), httpapi.Handle(s.log, func(c *gin.Context) error {
		var v struct {
			Note  string         `json:"note"`
			Tags  []string       `json:"tags"`
			Other map[string]any `json:"other"`
		}
		if err := httpapi.BindJSON(c, &v); err != nil {
			return err
		}
		c.Status(http.StatusNoContent)
		return nil
	}, nil))
	return e
}

// jsonString writes text as a JSON string without cleaning it: quotes,
// backslashes and control characters other than NUL are escaped, and every
// other byte (a NUL, invalid UTF-8) goes in raw.
func jsonString(text []byte) []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, c := range text {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c > 0 && c < 0x20:
			b.WriteString(`\u00`)
			b.WriteString(strconv.FormatUint(uint64(c)>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(c)&15, 16))
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.Bytes()
}

// FuzzDecodeBody fuzzes the decoding layer: any body answers below 500, and
// a note holding a NUL (raw or escaped) or invalid UTF-8 is always a 400
// naming the field, while any other text is accepted. Seeds are in
// testdata/fuzz/FuzzDecodeBody.
func FuzzDecodeBody(f *testing.F) {
	e := decodeEngine()
	post := func(body []byte) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/x", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		e.ServeHTTP(w, req)
		return w
	}
	f.Fuzz(func(t *testing.T, body, note []byte) {
		if w := post(body); w.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body)
		}
		nul := bytes.IndexByte(note, 0) >= 0
		doc := append(append([]byte(`{"note":`), jsonString(note)...), '}')
		w := post(doc)
		if !nul && utf8.Valid(note) {
			if w.Code != http.StatusNoContent {
				t.Fatalf("clean note %q: %d %s, want 204", note, w.Code, w.Body)
			}
			// The same text with a NUL escaped into it is refused.
			doc = append(append([]byte(`{"tags":["a",`), jsonString(note)[:1]...), append([]byte(`\u0000`), jsonString(note)[1:]...)...)
			doc = append(doc, "]}"...)
			if w := post(doc); w.Code != 400 || !strings.Contains(w.Body.String(), `"field":"tags[1]"`) {
				t.Fatalf("escaped NUL in %s: %d %s, want 400 naming tags[1]", doc, w.Code, w.Body)
			}
			return
		}
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"field":"note"`) {
			t.Fatalf("note %q: %d %s, want 400 naming note", note, w.Code, w.Body)
		}
	})
}
