package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// The shapes most handlers share, written once: read the path's id, bind
// the JSON body, make one domain call, answer its result or return its
// error.

// JSON answers v with status, or returns err: the tail of a handler whose
// one domain call gave v and err. v is only answered when err is nil.
func JSON(c *gin.Context, status int, v any, err error) error {
	if err != nil {
		return err
	}
	c.JSON(status, v)
	return nil
}

// NoContent answers 204, or returns err.
func NoContent(c *gin.Context, err error) error {
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// ByID is a handler of the resource named by the path's :id.
func ByID(do func(c *gin.Context, id int64) error) Handler {
	return func(c *gin.Context) error {
		id, err := IDParam(c)
		if err != nil {
			return err
		}
		return do(c, id)
	}
}

// Bind is a handler of a JSON body decoded into a T (BindJSON).
func Bind[T any](do func(c *gin.Context, body *T) error) Handler {
	return func(c *gin.Context) error {
		var body T
		if err := BindJSON(c, &body); err != nil {
			return err
		}
		return do(c, &body)
	}
}

// BindByID is a handler of the resource named by the path's :id and a
// JSON body decoded into a T; the id is read first, as its errors come
// first.
func BindByID[T any](do func(c *gin.Context, id int64, body *T) error) Handler {
	return ByID(func(c *gin.Context, id int64) error {
		var body T
		if err := BindJSON(c, &body); err != nil {
			return err
		}
		return do(c, id, &body)
	})
}
