package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// sentinel is an error code of the client API (spec 09-client-api §2). An
// *APIError matches the sentinel of its code with errors.Is; the Session
// also returns sentinels, wrapped, for the same conditions found locally
// (a room it knows is closed, for example).
type sentinel struct {
	code string
	text string
}

func (s *sentinel) Error() string { return "client: " + s.text }

func newSentinel(code, text string) error { return &sentinel{code: code, text: text} }

// Error codes of the client API (spec 09-client-api §2). Match an error
// against them with errors.Is; the *APIError behind it (errors.As) has the
// status, the node's message and, for ErrRateLimited, RetryAfter.
var (
	ErrBadRequest           = newSentinel("bad_request", "bad request")
	ErrBadEnvelope          = newSentinel("bad_envelope", "bad envelope")
	ErrBadTime              = newSentinel("bad_time", "envelope time too far from the node's clock")
	ErrUnauthenticated      = newSentinel("unauthenticated", "unauthenticated")
	ErrRegistrationClosed   = newSentinel("registration_closed", "registration is closed")
	ErrBadInvite            = newSentinel("bad_invite", "bad invite")
	ErrSuspended            = newSentinel("suspended", "account suspended")
	ErrNotFound             = newSentinel("not_found", "not found")
	ErrMethodNotAllowed     = newSentinel("method_not_allowed", "method not allowed")
	ErrUsernameTaken        = newSentinel("username_taken", "username taken")
	ErrKeyTaken             = newSentinel("key_taken", "identity key already registered")
	ErrRoomClosed           = newSentinel("room_closed", "room closed")
	ErrAlreadyWaiting       = newSentinel("already_waiting", "a ticket is already waiting for a partner")
	ErrBadDisclosure        = newSentinel("bad_disclosure", "disclosure does not verify")
	ErrTooLarge             = newSentinel("too_large", "request too large")
	ErrUnsupportedMediaType = newSentinel("unsupported_media_type", "unsupported media type")
	ErrRateLimited          = newSentinel("rate_limited", "rate limited")
	ErrInternal             = newSentinel("internal", "node failed")
	ErrUnavailable          = newSentinel("unavailable", "node unavailable")
)

// ErrBadResponse is returned when the node's answer does not follow the
// API: a body that is not the JSON the spec describes, a status the
// endpoint does not use, an oversized body.
var ErrBadResponse = errors.New("client: malformed response from node")

// APIError is an error answer of the node: its HTTP status, the stable code
// and the node's human-readable message. errors.Is matches it against the
// sentinel of its code (ErrNotFound, ErrRateLimited, ...).
type APIError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the node's Retry-After (429 and 503), or 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("node answered %d %s: %s", e.Status, e.Code, msg)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return s
}

// Is reports whether target is the sentinel of e's code.
func (e *APIError) Is(target error) bool {
	s, ok := target.(*sentinel)
	return ok && s.code == e.Code
}

// codeForStatus is the code of an error answer without a (parsable) body,
// from a proxy for example.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return "unavailable"
	}
	if status >= 500 {
		return "internal"
	}
	return ""
}

// RetryAfter returns how long the node asked the client to wait before
// retrying, if err is an *APIError that says so.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// Retryable reports whether a request that failed with err may be sent
// again unchanged: a network failure or timeout, a 5xx, or a 429. A 4xx
// other than 429 means the request itself is wrong and a retry would fail
// the same way.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusTooManyRequests || ae.Status >= 500
	}
	return !errors.Is(err, ErrBadResponse)
}
