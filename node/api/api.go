// Package api is the node's client HTTP API (spec 09-client-api): accounts
// and sessions, pairing, rooms and messages, sync by long-poll and
// WebSocket, acknowledgements and reports, all JSON under /v1.
//
// The package decodes and checks requests, authenticates and authorises
// them, rate-limits them and answers with stable error codes; the work
// itself is done by the subsystems behind the small interfaces in Deps,
// which the node wires in. Every request is handled the same way:
//
//  1. common headers; 503 while shutting down; the per-IP rate limit;
//  2. route matching (404 not_found, 405 method_not_allowed as JSON);
//  3. on authenticated routes, the bearer token (401), then the
//     per-account rate limit (429 with Retry-After);
//  4. strict decoding of the body and query (400, 413, 415), so that bad
//     input never reaches a subsystem and changes nothing;
//  5. the subsystem call, always with the authenticated account, and the
//     answer, or the error mapped through one table (errors.go).
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/protocol/keys"
)

// Option is a test seam for New.
type Option func(*options)

type options struct {
	logger *slog.Logger
	reg    prometheus.Registerer
	now    func() time.Time
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer sets where the API's metrics are registered. Default: a
// private registry nobody gathers.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithClock replaces time.Now: envelope time checks, rate limits and
// request durations read it. Waits (long-polls, pings) use real timers.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Server is the client API.
type Server struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	now   func() time.Time
	m     *metrics
	mux   *http.ServeMux
	acctL Limiter
	ipL   Limiter

	// base is cancelled by Shutdown; long-polls and WebSockets end with it.
	base context.Context
	stop context.CancelFunc

	mu       sync.Mutex // guards the fields below
	closing  bool
	sockets  map[keys.AccountID]int
	nSockets int
	idle     chan struct{} // closed once closing and no WebSocket is left
}

// New builds the API server from cfg (zero fields take their defaults) and
// the subsystems in deps.
func New(cfg Config, deps Deps, opts ...Option) (*Server, error) {
	errs := []error{cfg.Validate()}
	for _, d := range []struct {
		name    string
		missing bool
	}{
		{"Accounts", deps.Accounts == nil}, {"Rooms", deps.Rooms == nil}, {"Mailbox", deps.Mailbox == nil},
		{"Sender", deps.Sender == nil}, {"Pairing", deps.Pairing == nil}, {"Reports", deps.Reports == nil},
	} {
		if d.missing {
			errs = append(errs, errors.New("api: Deps."+d.name+" is required"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o := options{logger: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(o.reg)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		deps:    deps,
		log:     o.logger.With("subsystem", "api"),
		now:     o.now,
		m:       m,
		acctL:   deps.AccountLimiter,
		ipL:     deps.IPLimiter,
		sockets: make(map[keys.AccountID]int),
		idle:    make(chan struct{}),
	}
	if s.acctL == nil {
		s.acctL = newBuckets(cfg.AccountRate, cfg.RateLimitKeys, o.now)
	}
	if s.ipL == nil {
		s.ipL = newBuckets(cfg.IPRate, cfg.RateLimitKeys, o.now)
	}
	s.base, s.stop = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

// handlerFunc is a handler that returns its error for ServeHTTP to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	handle := func(pattern string, h handlerFunc) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	// Spec 09 §3 to §8, in the spec's order.
	handle("POST /v1/register", s.register)
	handle("POST /v1/login/challenge", s.challenge)
	handle("POST /v1/login", s.login)
	handle("POST /v1/logout", s.authed(s.logout))
	handle("GET /v1/account", s.authed(s.account))
	handle("POST /v1/pair", s.authed(s.pair))
	handle("DELETE /v1/pair", s.authed(s.unpair))
	handle("GET /v1/rooms", s.authed(s.rooms))
	handle("POST /v1/rooms/{room}/messages", s.authed(s.send))
	handle("POST /v1/rooms/{room}/leave", s.authed(s.leave))
	handle("GET /v1/sync", s.authed(s.sync))
	handle("GET /v1/sync/ws", s.authed(s.syncWS))
	handle("POST /v1/ack", s.authed(s.ack))
	handle("POST /v1/reports", s.authed(s.report))
	handle("GET /v1/health", s.health)
	if s.deps.Blobs != nil {
		s.blobRoutes(handle) // spec 09 §9
	}
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	sw := &statusWriter{ResponseWriter: w}
	h := sw.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")

	fallback, pattern := s.mux.Handler(r)
	route := pattern
	if route == "" {
		route = routeUnmatched
	}
	defer func() {
		d := s.now().Sub(start)
		code := strconv.Itoa(sw.status())
		s.m.requests.WithLabelValues(route, code).Inc()
		s.m.duration.WithLabelValues(route).Observe(d.Seconds())
		s.log.Debug("request", "method", r.Method, "route", route, "status", sw.status(), "duration", d)
	}()

	if s.isClosing() {
		s.writeError(sw, r, ErrUnavailable)
		return
	}
	if ok, after := s.ipL.Allow(clientKey(r, s.cfg.TrustProxyHeaders)); !ok {
		s.m.rateLimited.WithLabelValues(scopeIP).Inc()
		s.writeError(sw, r, &rateLimitedError{scope: scopeIP, after: after})
		return
	}
	if pattern == "" {
		// No route: the mux's own answer says 404 or 405 (with Allow);
		// give it as JSON.
		c := &captureWriter{header: http.Header{}}
		fallback.ServeHTTP(c, r)
		if c.code == http.StatusMethodNotAllowed {
			if allow := c.header.Get("Allow"); allow != "" {
				h.Set("Allow", allow)
			}
			s.writeError(sw, r, errMethodNotAllowed)
			return
		}
		s.writeError(sw, r, ErrNotFound)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// routeOf is r's route pattern, for logs.
func routeOf(r *http.Request) string {
	if r.Pattern == "" {
		return routeUnmatched
	}
	return r.Pattern
}

// Shutdown stops the API: new requests get 503, long-polls return at once
// (with no events), and sync WebSockets are closed with status 1001 (going
// away). It waits until every WebSocket handler has finished, or ctx ends.
// The http.Server's own Shutdown drains the other requests.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		if s.nSockets == 0 {
			close(s.idle)
		}
	}
	s.mu.Unlock()
	s.stop()
	select {
	case <-s.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// ---- authentication ----

type accountKey struct{}

// accountFrom returns the authenticated account authed put in ctx.
func accountFrom(ctx context.Context) Account {
	a, ok := ctx.Value(accountKey{}).(Account)
	if !ok {
		panic("api: handler without authentication")
	}
	return a
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header, or "" if the header is missing or malformed.
func bearerToken(r *http.Request) string {
	v := r.Header.Values("Authorization")
	if len(v) != 1 {
		return ""
	}
	scheme, token, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxToken {
		return ""
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return ""
		}
	}
	return token
}

// authed authenticates the request's bearer token (401), applies the
// account's rate limit (429) and puts the account in the context.
func (s *Server) authed(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token := bearerToken(r)
		if token == "" {
			return ErrUnauthenticated
		}
		acct, err := s.deps.Accounts.Authenticate(r.Context(), token)
		if err != nil {
			return err
		}
		if ok, after := s.acctL.Allow(acct.ID.String()); !ok {
			s.m.rateLimited.WithLabelValues(scopeAccount).Inc()
			return &rateLimitedError{scope: scopeAccount, after: after}
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), accountKey{}, acct)))
	}
}

// ---- response writers ----

// statusWriter records the status of a response. Unwrap lets
// http.ResponseController and the WebSocket upgrade reach the connection.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// captureWriter records what the mux's fallback handler answers.
type captureWriter struct {
	header http.Header
	code   int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}
