// Package inputerr turns bad client input into client-safe error messages
// that name the field and the rule: decoding errors of encoding/json (never
// a Go type name) and echoed input, cut to MaxEcho bytes and escaped. It is
// shared by the HTTP handlers of api, migration and rollout.
package inputerr

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
)

// MaxEcho is the most bytes of client input an error message repeats.
const MaxEcho = 64

// Quote returns s quoted as a Go string literal, so control characters and
// invalid UTF-8 are escaped, cut to at most MaxEcho bytes of s (on a rune
// boundary) with an ellipsis when longer.
func Quote(s string) string {
	if len(s) <= MaxEcho {
		return strconv.Quote(s)
	}
	n := MaxEcho
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	q := strconv.Quote(s[:n])
	return q[:len(q)-1] + `…"`
}

// DecodeJSON decodes data, which must hold exactly one JSON value, into v
// (a pointer). Malformed JSON, unknown fields, values of the wrong type and
// trailing data are INVALID_BODY errors whose message names the field and
// the rule; an error of a json.Unmarshaler that is a *pathstats.Error passes
// unchanged.
func DecodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return JSON(err, v)
	}
	end := int(dec.InputOffset())
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Trailing(data, end)
	}
	return nil
}

// Trailing is the error for data after the JSON value that ends at end.
func Trailing(data []byte, end int) error {
	for end < len(data) && isSpace(data[end]) {
		end++
	}
	return invalid("unexpected data after the JSON value at byte %d", end)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// JSON maps an error of encoding/json decoding into v (the target, used to
// name the expected type of a field; may be nil) to an INVALID_BODY error.
// A *pathstats.Error passes unchanged.
func JSON(err error, v any) error {
	var (
		pe *pathstats.Error
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, io.EOF):
		return invalid("body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("body is not valid JSON: unexpected end of input")
	case errors.As(err, &se):
		return invalid("body is not valid JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		return invalid("%s", typeMessage(te, v))
	}
	if quoted, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, uerr := strconv.Unquote(quoted)
		if uerr != nil {
			name = quoted
		}
		return invalid("unknown field %s", Quote(name))
	}
	return invalid("body is not valid JSON")
}

func invalid(format string, args ...any) error {
	return pathstats.Errorf(pathstats.EInvalidBody, format, args...)
}

// typeMessage names the field and the JSON type it must have.
func typeMessage(te *json.UnmarshalTypeError, v any) string {
	if te.Field == "" {
		return "body must be " + describe(te.Type)
	}
	want := te.Type
	if v != nil {
		if t := fieldType(reflect.TypeOf(v), te.Field); t != nil {
			want = t
		}
	}
	return te.Field + ": must be " + describe(want)
}

// fieldType finds the declared type of a dotted JSON field path in t, or
// nil when it cannot be followed.
func fieldType(t reflect.Type, path string) reflect.Type {
	for name := range strings.SplitSeq(path, ".") {
		t = containerElem(t)
		if t == nil || t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := structField(t, name)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return t
}

// containerElem dereferences pointers and steps into slice, array and map
// elements: the type whose fields a dotted path names next.
func containerElem(t reflect.Type) reflect.Type {
	for t != nil {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			t = t.Elem()
		default:
			return t
		}
	}
	return nil
}

// structField finds the field of t that encoding/json names name.
func structField(t reflect.Type, name string) (reflect.StructField, bool) {
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// describe names the JSON form of a Go type without naming the Go type.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if elem := plural(t.Elem()); elem != "" {
			return "an array of " + elem
		}
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a JSON value"
}

// plural names the elements of an array, or "" for mixed ones.
func plural(t reflect.Type) string {
	switch d := describe(t); d {
	case "an object", "a string", "an integer", "a number", "a non-negative integer":
		_, rest, _ := strings.Cut(d, " ")
		return rest + "s"
	case "true or false":
		return "booleans"
	}
	return ""
}
