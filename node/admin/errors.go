package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/blobs"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/node/reports"
)

// The API's errors; each maps to one status and stable code in errorTable.
var (
	errBadRequest       = errors.New("admin: bad request")
	errUnauthenticated  = errors.New("admin: unauthenticated")
	errNotFound         = errors.New("admin: not found")
	errMethodNotAllowed = errors.New("admin: method not allowed")
	errTooLarge         = errors.New("admin: request body too large")
	errMediaType        = errors.New("admin: unsupported media type")
)

// errorTable maps errors to status, stable code and safe message (spec 10
// §2). The first match wins; anything else is 500 internal, its cause
// logged and never sent.
var errorTable = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{errBadRequest, http.StatusBadRequest, "bad_request", "malformed request"},
	{accounts.ErrBadReason, http.StatusBadRequest, "bad_request", "malformed request: reason longer than 1024 bytes or not UTF-8"},
	{accounts.ErrBadUsername, http.StatusNotFound, "not_found", "no such account"},
	{moderation.ErrBadInput, http.StatusBadRequest, "bad_request", "malformed request: by must be 1 to 64 bytes, reason at most 1024, UTF-8"},
	{reports.ErrBadResolution, http.StatusBadRequest, "bad_request", "malformed request: by must be 1 to 64 bytes, note at most 1024, UTF-8"},
	{moderation.ErrNotThrottled, http.StatusConflict, "conflict", "the account is not throttled"},
	{errUnauthenticated, http.StatusUnauthorized, "unauthenticated", "missing or wrong admin token"},
	{errNotFound, http.StatusNotFound, "not_found", "not found"},
	{accounts.ErrNotFound, http.StatusNotFound, "not_found", "no such account"},
	{reports.ErrNoReport, http.StatusNotFound, "not_found", "no such report"},
	{blobs.ErrNotFound, http.StatusNotFound, "not_found", "no such blob"},
	{blobs.ErrTakenDown, http.StatusGone, "taken_down", "the blob was taken down"},
	{pairing.ErrUnknownEpoch, http.StatusNotFound, "not_found", "no stored inputs for that epoch"},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "too_large", "request body too large"},
	{errMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type", "body must be application/json"},
}

// detailError is a problem in the caller's own input; its detail is safe to
// send back.
type detailError struct {
	kind   error
	detail string
}

func (e *detailError) Error() string { return e.kind.Error() + ": " + e.detail }
func (e *detailError) Unwrap() error { return e.kind }

func badRequest(format string, args ...any) error {
	return &detailError{errBadRequest, fmt.Sprintf(format, args...)}
}

func classify(err error) (status int, code, message string, known bool) {
	for _, e := range errorTable {
		if !errors.Is(err, e.err) {
			continue
		}
		message = e.message
		var de *detailError
		if errors.As(err, &de) && errors.Is(de.kind, e.err) {
			message += ": " + de.detail
		}
		return e.status, e.code, message, true
	}
	return http.StatusInternalServerError, "internal", "the node failed", false
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	status, code, message, _ := classify(err)
	var body ErrorBody
	body.Error.Code, body.Error.Message = code, message
	writeJSON(w, status, &body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every response type marshals: a broken invariant.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
