package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/protocol/disclosure"
)

// The API's domain errors (spec 09 §2). The node's adapters wrap subsystem
// errors with these; each maps to one status and stable code in errorTable.
// Match them with errors.Is.
var (
	// ErrBadRequest: the request is malformed (JSON, fields, base64, key
	// text, query parameters).
	ErrBadRequest = errors.New("api: bad request")
	// ErrBadEnvelope: the envelope does not parse, is already stamped, or
	// its header is wrong for the room.
	ErrBadEnvelope = errors.New("api: bad envelope")
	// ErrBadTime: the envelope's time is more than wire.MaxClockSkew from
	// the node's clock.
	ErrBadTime = errors.New("api: envelope time outside the allowed clock skew")
	// ErrBadDisclosure: a report's disclosure does not parse or verify.
	ErrBadDisclosure = errors.New("api: disclosure does not verify")
	// ErrUnauthenticated: missing, malformed, expired or revoked token, or a
	// failed login.
	ErrUnauthenticated = errors.New("api: unauthenticated")
	// ErrRegistrationClosed: the node's registration mode is closed.
	ErrRegistrationClosed = errors.New("api: registration closed")
	// ErrBadInvite: the invite is missing, unknown, used or expired.
	ErrBadInvite = errors.New("api: bad invite")
	// ErrSuspended: the account is suspended.
	ErrSuspended = errors.New("api: account suspended")
	// ErrNotFound: no such room for this account, or no such endpoint.
	ErrNotFound = errors.New("api: not found")
	// ErrUsernameTaken: registration with a username in use.
	ErrUsernameTaken = errors.New("api: username taken")
	// ErrKeyTaken: registration with an identity key in use.
	ErrKeyTaken = errors.New("api: identity key taken")
	// ErrRoomClosed: sending to a room that was left.
	ErrRoomClosed = errors.New("api: room closed")
	// ErrAlreadyWaiting: the account already has a ticket waiting.
	ErrAlreadyWaiting = errors.New("api: ticket already waiting")
	// ErrBusy: a queue is full (the send queue); the client retries later.
	ErrBusy = errors.New("api: busy")
	// ErrUnavailable: the node is shutting down.
	ErrUnavailable = errors.New("api: unavailable")
)

// Errors only the API itself raises.
var (
	errTooLarge         = errors.New("api: request body too large")
	errMediaType        = errors.New("api: unsupported media type")
	errMethodNotAllowed = errors.New("api: method not allowed")
	errRateLimited      = errors.New("api: rate limited")
	errTooManySockets   = errors.New("api: too many WebSockets")
)

// errorTable maps every error the API answers with to its status, stable
// code and safe message (spec 09 §2). The first entry the error matches
// wins. Anything that matches none is 500 internal, with the cause logged
// and never sent.
var errorTable = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{ErrBadRequest, http.StatusBadRequest, "bad_request", "malformed request"},
	{ErrBadEnvelope, http.StatusBadRequest, "bad_envelope", "bad envelope"},
	{ErrBadTime, http.StatusBadRequest, "bad_time", "envelope time is too far from the node's clock"},
	{ErrBadDisclosure, http.StatusBadRequest, "bad_disclosure", "disclosure does not verify"},
	{ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated", "unauthenticated"},
	{ErrRegistrationClosed, http.StatusForbidden, "registration_closed", "registration is closed"},
	{ErrBadInvite, http.StatusForbidden, "bad_invite", "invite missing, unknown, used or expired"},
	{ErrSuspended, http.StatusForbidden, "suspended", "the account is suspended"},
	{ErrNotFound, http.StatusNotFound, "not_found", "not found"},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed"},
	{ErrUsernameTaken, http.StatusConflict, "username_taken", "username taken"},
	{ErrKeyTaken, http.StatusConflict, "key_taken", "identity key already registered"},
	{ErrRoomClosed, http.StatusConflict, "room_closed", "the room is closed"},
	{ErrAlreadyWaiting, http.StatusConflict, "already_waiting", "a ticket is already waiting for a partner"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "too_large", "request body too large"},
	{errMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type", "body must be application/json"},
	{errRateLimited, http.StatusTooManyRequests, "rate_limited", "rate limited; retry later"},
	{errTooManySockets, http.StatusTooManyRequests, "rate_limited", "too many open sync WebSockets for this account"},
	{ErrBusy, http.StatusServiceUnavailable, "unavailable", "the node is busy; retry later"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "the node is shutting down; retry later"},
	// Blobs (spec 09 §9).
	{ErrBlobNotFound, http.StatusNotFound, "not_found", "no such blob or upload"},
	{ErrBlobTooLarge, http.StatusRequestEntityTooLarge, "too_large", "blob over the node's size limit"},
	{ErrQuota, http.StatusForbidden, "quota_exceeded", "the account's blob storage quota is used up"},
	{ErrNodeFull, http.StatusInsufficientStorage, "node_full", "the node's blob storage is full; retry later"},
	{ErrTooManyUploads, http.StatusConflict, "too_many_uploads", "too many uploads in progress; complete or abort one"},
	{ErrBadPart, http.StatusBadRequest, "bad_part", "bad part"},
	{ErrPartConflict, http.StatusConflict, "part_conflict", "the part was received before with other content"},
	{ErrUploadBusy, http.StatusConflict, "upload_busy", "the upload is busy with another request; retry"},
	{ErrUploadIncomplete, http.StatusConflict, "upload_incomplete", "parts are missing"},
	{ErrBadBlob, http.StatusBadRequest, "bad_blob", "the manifest is malformed or does not match the uploaded ciphertext"},
	{ErrTakenDown, http.StatusGone, "taken_down", "the blob was taken down"},
	{ErrOriginUnavailable, http.StatusBadGateway, "origin_unavailable", "the blob's origin node is unreachable or sent bad data; retry later"},
	{errOctetStream, http.StatusUnsupportedMediaType, "unsupported_media_type", "body must be application/octet-stream"},
}

// detailError is an error found in the client's own request: its detail
// is safe to send back (it describes the client's input, never a secret or
// the node's state). It unwraps to the sentinel that gives its status.
type detailError struct {
	kind   error
	detail string
}

func (e *detailError) Error() string { return e.kind.Error() + ": " + e.detail }
func (e *detailError) Unwrap() error { return e.kind }

func badRequest(format string, args ...any) error {
	return &detailError{ErrBadRequest, fmt.Sprintf(format, args...)}
}

func badEnvelope(format string, args ...any) error {
	return &detailError{ErrBadEnvelope, fmt.Sprintf(format, args...)}
}

// rateLimitedError carries the Retry-After of a 429.
type rateLimitedError struct {
	scope string
	after time.Duration
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("%v (%s, retry after %v)", errRateLimited, e.scope, e.after)
}
func (e *rateLimitedError) Unwrap() error { return errRateLimited }

// RateLimited is the error an adapter returns for a request over one of a
// subsystem's own per-account limits (moderation's throttle, say): 429
// rate_limited with Retry-After, as the API's own limiter answers.
func RateLimited(after time.Duration) error {
	return &rateLimitedError{scope: scopeAccount, after: after}
}

// retryAfterSeconds is Retry-After in whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	if s < 1 || math.IsNaN(s) {
		return 1
	}
	if s > 3600 {
		return 3600
	}
	return int(s)
}

// errorBody is the JSON of every error response (spec 09 §2).
type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// classify returns the status, code and safe message for err.
func classify(err error) (status int, code, message string, ok bool) {
	for _, e := range errorTable {
		if !errors.Is(err, e.err) {
			continue
		}
		message = e.message
		var de *detailError
		if errors.As(err, &de) && errors.Is(de.kind, e.err) {
			message += ": " + de.detail
		}
		var ve *disclosure.VerifyError
		if errors.Is(e.err, ErrBadDisclosure) && errors.As(err, &ve) {
			message += ": " + ve.Check.String()
		}
		return e.status, e.code, message, true
	}
	return http.StatusInternalServerError, "internal", "the node failed; nothing was acknowledged", false
}

// writeError answers r with err's status and code, and logs it (logFailure).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, message := s.logFailure(r.Context(), r.Method, routeOf(r), err)
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(rl.after)))
	}
	writeJSON(w, status, &errorBody{Error: errorJSON{Code: code, Message: message}})
}

// logFailure classifies a failed request and logs it: the cause of a 5xx
// at error (internal) or warn (unavailable), client errors at debug, so
// clients cannot flood the log.
func (s *Server) logFailure(ctx context.Context, method, route string, err error) (status int, code, message string) {
	status, code, message, known := classify(err)
	level := slog.LevelDebug
	switch {
	case !known && ctx.Err() != nil && errors.Is(err, context.Canceled):
		// The client went away: nobody reads the answer, nothing failed.
	case !known:
		level = slog.LevelError
	case status >= 500:
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "request failed", "method", method, "route", route, "status", status, "code", code, "err", err)
	return status, code, message
}
