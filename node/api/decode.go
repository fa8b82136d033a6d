package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Strict request decoding (spec 09 §1). A request body is read whole, up to
// its endpoint's limit, and must be exactly one JSON object whose keys are
// the request type's field names, each at most once, in lower case as the
// spec writes them (encoding/json alone would accept "USERNAME" and
// duplicated keys). Required fields are pointers: absent and null are both
// missing. Every failure is ErrBadRequest with a detail about the input,
// except an oversized body (errTooLarge) and a wrong media type
// (errMediaType).

// maxJSONDepth bounds the nesting of a request; no request type nests
// deeper than 3.
const maxJSONDepth = 8

// checkJSONContentType requires Content-Type application/json, with at
// most a charset parameter of utf-8.
func checkJSONContentType(r *http.Request) error {
	v := r.Header.Values("Content-Type")
	if len(v) != 1 {
		return errMediaType
	}
	mt, params, err := mime.ParseMediaType(v[0])
	if err != nil || mt != "application/json" {
		return errMediaType
	}
	for k, p := range params {
		if k != "charset" || !strings.EqualFold(p, "utf-8") {
			return errMediaType
		}
	}
	return nil
}

// readBody checks the media type and reads the body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := checkJSONContentType(r); err != nil {
		return nil, err
	}
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge
		}
		return nil, badRequest("reading the body: %v", err)
	}
	return b, nil
}

// requireEmptyBody is for endpoints without a request body: any body is
// refused (400), so a client that meant to send something learns it.
func requireEmptyBody(r *http.Request) error {
	if r.ContentLength > 0 {
		return badRequest("this endpoint takes no body")
	}
	var one [1]byte
	if n, _ := io.ReadFull(r.Body, one[:]); n > 0 {
		return badRequest("this endpoint takes no body")
	}
	return nil
}

// validator is a request type that checks and converts its fields after
// decoding.
type validator interface{ validate() error }

// decodeStrict decodes b into v (a pointer to a request struct) and, if v
// is a validator, validates it.
func decodeStrict(b []byte, v any) error {
	if err := checkKeys(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("trailing data after the JSON value")
	}
	if val, ok := v.(validator); ok {
		return val.validate()
	}
	return nil
}

// checkKeys refuses anything but one object whose keys (at every level)
// are lower-case ASCII names, none repeated, nested at most maxJSONDepth
// deep, with nothing after it. json.Valid checks the syntax first, so the
// walk over the bytes that follows only has to find the keys: in valid
// JSON, a string is a key exactly when the next non-space byte is a colon.
// It allocates little: this runs on every message.
func checkKeys(b []byte) error {
	i := skipSpace(b, 0)
	if i == len(b) {
		return badRequest("empty body")
	}
	if !json.Valid(b) {
		// Say why: a first value that does not parse, or something after it.
		dec := json.NewDecoder(bytes.NewReader(b))
		var v any
		switch err := dec.Decode(&v); {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("truncated JSON")
		case err != nil:
			return badRequest("%s", describeJSONError(err))
		}
		if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
			return badRequest("%s", describeJSONError(err))
		}
		return badRequest("trailing data after the JSON value")
	}
	if b[i] != '{' {
		return badRequest("the body must be a JSON object")
	}
	// stack holds the open objects and arrays, with each object's keys.
	type open struct {
		object bool
		keys   []string
	}
	stack := make([]open, 0, maxJSONDepth)
	for i < len(b) {
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) == maxJSONDepth {
				return badRequest("JSON nested too deeply")
			}
			stack = append(stack, open{object: c == '{'})
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			i++
		case '"':
			end := stringEnd(b, i)
			if n := len(stack); n > 0 && stack[n-1].object {
				if j := skipSpace(b, end); j < len(b) && b[j] == ':' {
					key := string(b[i+1 : end-1])
					if !validKey(key) {
						return badRequest("unknown field %q", truncate(key))
					}
					if slices.Contains(stack[n-1].keys, key) {
						return badRequest("field %q appears twice", key)
					}
					stack[n-1].keys = append(stack[n-1].keys, key)
				}
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace, or len(b).
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just after the closing quote of the valid
// JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// validKey reports whether k looks like a field name of this API:
// lower-case ASCII letters, digits and underscores, starting with a letter.
func validKey(k string) bool {
	if k == "" || len(k) > 64 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func describeJSONError(err error) string {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("malformed JSON at offset %d", e.Offset)
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if e.Field == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("field %q: wrong type, want %s", e.Field, jsonKind(e.Type))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated JSON"
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + truncate(name)
	}
	return "malformed JSON"
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "non-negative integer"
	case reflect.Slice, reflect.Array:
		return "array"
	default:
		return "object"
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// b64 is the API's byte-string encoding: standard base64 with padding.
var b64 = base64.StdEncoding.Strict()

// decodeB64 decodes field's standard, padded base64, refusing line breaks
// (which the decoder would skip) and results longer than maxLen bytes or,
// if exact, of any other length.
func decodeB64(field, s string, maxLen int, exact bool) ([]byte, error) {
	if len(s) > base64.StdEncoding.EncodedLen(maxLen) {
		return nil, badRequest("field %q: more than %d bytes", field, maxLen)
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, badRequest("field %q: not base64", field)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, badRequest("field %q: not base64", field)
	}
	if len(b) > maxLen {
		return nil, badRequest("field %q: more than %d bytes", field, maxLen)
	}
	if exact && len(b) != maxLen {
		return nil, badRequest("field %q: %d bytes, want %d", field, len(b), maxLen)
	}
	return b, nil
}

// decodeB64Fixed decodes exactly len(dst) bytes of base64 into dst.
func decodeB64Fixed(field, s string, dst []byte) error {
	b, err := decodeB64(field, s, len(dst), true)
	if err == nil {
		copy(dst, b)
	}
	return err
}

func missing(field string) error { return badRequest("missing field %q", field) }

// query parses r's query string strictly: only the allowed names, each at
// most once, each a base-10 unsigned integer. Absent names are absent from
// the result.
func query(r *http.Request, allowed ...string) (map[string]uint64, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string")
	}
	out := make(map[string]uint64, len(vals))
	for name, vs := range vals {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if !known {
			return nil, badRequest("unknown query parameter %q", truncate(name))
		}
		if len(vs) != 1 {
			return nil, badRequest("query parameter %q given %d times", name, len(vs))
		}
		n, err := strconv.ParseUint(vs[0], 10, 64)
		if err != nil {
			return nil, badRequest("query parameter %q: want a non-negative integer", name)
		}
		out[name] = n
	}
	return out, nil
}
