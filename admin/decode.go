package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

// decodeJSON reads r's body into dst: one JSON object, no unknown fields,
// no trailing data, at most Config.MaxBodyBytes. An empty body is an error
// unless optional, and then leaves dst untouched.
func (h *Handler) decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return newError(http.StatusUnsupportedMediaType, CodeUnsupportedType, "", "send the request body as application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.config.MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) {
		if optional {
			return nil
		}
		return newError(http.StatusBadRequest, CodeMalformedJSON, "", "the request body is empty; send a JSON object")
	}
	if err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return newError(http.StatusBadRequest, CodeMalformedJSON, "", "the request body holds more than one JSON value")
	}
	return nil
}

// jsonError maps a decoding error to a 400 (or the 413 of an oversize body)
// that names the field at fault where it can, without echoing the body.
func jsonError(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		mbe    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &syntax):
		return newError(http.StatusBadRequest, CodeMalformedJSON, "", fmt.Sprintf("the request body is not valid JSON (at byte %d)", syntax.Offset))
	case errors.As(err, &typ):
		e := newError(http.StatusBadRequest, CodeMalformedJSON, clip(typ.Field), "wrong JSON type: expected "+jsonKind(typ.Type))
		if typ.Field == "" {
			e.Detail = "the request body must be a JSON object"
		}
		return e
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, CodeMalformedJSON, "", "the request body ends in the middle of a JSON value")
	}
	// encoding/json has no typed error for an unknown field; its message is
	// `json: unknown field "name"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return newError(http.StatusBadRequest, CodeUnknownField, clip(strings.Trim(name, `"`)), "the request body has a field this endpoint does not know")
	}
	return newError(http.StatusBadRequest, CodeMalformedJSON, "", "the request body is not valid JSON")
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}

// clip bounds a client-chosen name before it is echoed in a field member.
func clip(s string) string {
	const limit = 64
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
