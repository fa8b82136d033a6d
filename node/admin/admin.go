// Package admin is the operator's admin API (spec 10-admin-api), served on
// the operator listener under /admin/v1/, and the admin token file it is
// guarded by.
//
// Every request carries "Authorization: Bearer pa_..." with the token from
// <data_dir>/admin.token. The node keeps only the token's SHA-256 and
// compares the hash of what a request presents with it in constant time
// (crypto/subtle); anything else is 401 before routing, so an
// unauthenticated caller learns nothing, not even which paths exist.
//
// The API lists, shows (with the moderation state: throttle, counted
// reports, spam signals and the record of actions), suspends, unsuspends,
// throttles and unthrottles accounts (suspending also revokes every
// session of the account), creates invites, lists the report queue
// (metadata only), shows one report's disclosed plaintext and resolves
// reports, and audits a past lottery epoch. Requests are decoded strictly (JSON only,
// unknown fields refused, bodies bounded); errors are
// {"error":{"code","message"}} with the stable codes of errorTable. Every
// request is logged with subsystem=admin, never with the token, an invite
// or a report's plaintext.
package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// Prefix is the path every admin route starts with; the node mounts
// Handler there on the operator listener.
const Prefix = "/admin/v1/"

// Bounds.
const (
	// MaxLimit is the largest ?limit= a list accepts.
	MaxLimit = accounts.MaxList
)

// Config is the admin API part of the node configuration. Zero values take
// the defaults.
type Config struct {
	// MaxBodyBytes bounds a request body (the only body is a suspension
	// reason of at most accounts.MaxReason bytes). Default 8192.
	MaxBodyBytes int64 `toml:"max_body_bytes" comment:"Largest admin request body, in bytes (default 8192)."`
	// DefaultLimit is how many accounts or reports a list returns without
	// ?limit=. Default 100; at most MaxLimit.
	DefaultLimit int `toml:"default_limit" comment:"How many accounts or reports a list returns by default (default 100, at most 1000)."`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 8192
	}
	if c.DefaultLimit == 0 {
		c.DefaultLimit = 100
	}
	return c
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("admin.max_body_bytes %d is not between 1024 and 1048576", c.MaxBodyBytes))
	}
	if c.DefaultLimit < 1 || c.DefaultLimit > MaxLimit {
		errs = append(errs, fmt.Errorf("admin.default_limit %d is not between 1 and %d", c.DefaultLimit, MaxLimit))
	}
	return errors.Join(errs...)
}

// Accounts is what the admin API needs of node/accounts (*accounts.Service).
type Accounts interface {
	Get(ctx context.Context, id keys.AccountID) (accounts.Account, error)
	ByUsername(ctx context.Context, name string) (accounts.Account, error)
	List(ctx context.Context, after keys.AccountID, limit int) ([]accounts.Account, error)
	Suspend(ctx context.Context, id keys.AccountID, reason string) error
	Unsuspend(ctx context.Context, id keys.AccountID) error
	RevokeAll(ctx context.Context, id keys.AccountID) (int, error)
	CreateInvite(ctx context.Context) (token string, expires time.Time, err error)
}

// Reports is what the admin API needs of node/reports (*reports.Reports).
type Reports interface {
	List(ctx context.Context, limit int) ([]reports.Stored, error)
	Get(ctx context.Context, id [32]byte) (reports.Stored, error)
	Resolve(ctx context.Context, id [32]byte, by, note string) (reports.Stored, error)
}

// Moderation is what the admin API needs of node/moderation
// (*moderation.Moderation).
type Moderation interface {
	Status(ctx context.Context, acct keys.AccountID) (moderation.Status, error)
	Suspend(ctx context.Context, acct keys.AccountID, by, reason string) (int, error)
	Unsuspend(ctx context.Context, acct keys.AccountID, by, reason string) error
	Throttle(ctx context.Context, acct keys.AccountID, by, reason string) (moderation.Action, error)
	Unthrottle(ctx context.Context, acct keys.AccountID, by, reason string) error
}

var (
	_ Reports    = (*reports.Reports)(nil)
	_ Moderation = (*moderation.Moderation)(nil)
)

// Lottery is what the admin API needs of node/pairing (*pairing.Lottery).
type Lottery interface {
	Audit(ctx context.Context, epoch uint64) (*lottery.AuditReport, error)
}

// Deps are the subsystems behind the API. Lottery may be nil: the audit
// route then answers 404. Moderation may be nil: accounts then show no
// moderation state, suspensions are not recorded as actions, and the
// throttle routes answer 404.
type Deps struct {
	Accounts   Accounts
	Reports    Reports
	Lottery    Lottery
	Moderation Moderation
	Peers      Peers // may be nil: the nodes routes then answer 404
	Blobs      Blobs // may be nil: the blobs routes then answer 404
}

// Option is a test seam for New.
type Option func(*options)

type options struct {
	logger *slog.Logger
	reg    prometheus.Registerer
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer sets where the API's metrics are registered. Default: a
// private registry nobody gathers.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Server is the admin API. It starts no goroutines.
type Server struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	m         *metrics
	tokenHash [32]byte
	// equal compares token hashes; subtle.ConstantTimeCompare, replaced
	// only by the test that checks it is used.
	equal func(x, y []byte) int
	mux   *http.ServeMux
}

// New returns the admin API for the token whose SHA-256 is tokenHash (from
// LoadTokenHash).
func New(cfg Config, deps Deps, tokenHash [32]byte, opts ...Option) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Accounts == nil || deps.Reports == nil {
		return nil, errors.New("admin: Deps.Accounts and Deps.Reports are required")
	}
	if tokenHash == ([32]byte{}) {
		return nil, errors.New("admin: no token hash")
	}
	o := options{logger: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	for _, opt := range opts {
		opt(&o)
	}
	m := newMetrics()
	if err := m.register(o.reg); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, deps: deps, m: m, tokenHash: tokenHash,
		log:   o.logger.With("subsystem", "admin"),
		equal: subtle.ConstantTimeCompare,
	}
	s.mux = http.NewServeMux()
	for _, r := range s.routes() {
		s.mux.Handle(r.pattern, s.route(r))
	}
	return s, nil
}

// Handler returns the API's handler; mount it at Prefix.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// route is one endpoint: a path pattern, its method and handler.
type route struct {
	name    string // a bounded metric label and log field
	pattern string
	method  string
	h       func(w http.ResponseWriter, r *http.Request) error
}

func (s *Server) routes() []route {
	rs := []route{
		{"accounts_list", Prefix + "accounts", http.MethodGet, s.listAccounts},
		{"accounts_show", Prefix + "accounts/{ref}", http.MethodGet, s.showAccount},
		{"accounts_suspend", Prefix + "accounts/{ref}/suspend", http.MethodPost, s.suspend},
		{"accounts_unsuspend", Prefix + "accounts/{ref}/unsuspend", http.MethodPost, s.unsuspend},
		{"accounts_throttle", Prefix + "accounts/{ref}/throttle", http.MethodPost, s.throttle},
		{"accounts_unthrottle", Prefix + "accounts/{ref}/unthrottle", http.MethodPost, s.unthrottle},
		{"invites_create", Prefix + "invites", http.MethodPost, s.createInvite},
		{"reports_list", Prefix + "reports", http.MethodGet, s.listReports},
		{"reports_show", Prefix + "reports/{id}", http.MethodGet, s.showReport},
		{"reports_resolve", Prefix + "reports/{id}/resolve", http.MethodPost, s.resolveReport},
		{"lottery_audit", Prefix + "lottery/epochs/{n}/audit", http.MethodGet, s.audit},
		{"nodes_list", Prefix + "nodes", http.MethodGet, s.listNodes},
		{"nodes_show", Prefix + "nodes/{id}", http.MethodGet, s.showNode},
		{"nodes_deny", Prefix + "nodes/{id}/deny", http.MethodPost, s.denyNode},
		{"nodes_throttle", Prefix + "nodes/{id}/throttle", http.MethodPost, s.throttleNode},
		{"nodes_unthrottle", Prefix + "nodes/{id}/unthrottle", http.MethodPost, s.unthrottleNode},
		{"nodes_allow", Prefix + "nodes/{id}/allow", http.MethodPost, s.allowNode},
	}
	return append(rs, s.blobRoutes()...)
}

// statusWriter remembers the status for the log and the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// serve authenticates, then routes. Unmatched paths are 404 JSON.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.authorized(r) {
		s.m.requests.WithLabelValues("unauthenticated", "401").Inc()
		s.log.Warn("admin request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", http.StatusUnauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley-admin"`)
		writeError(w, errUnauthenticated)
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.m.requests.WithLabelValues("unknown", "404").Inc()
		s.log.Info("admin request", "route", "unknown", "method", r.Method, "path", r.URL.Path, "status", http.StatusNotFound)
		writeError(w, errNotFound)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized checks the bearer token: its hash against the kept hash, in
// constant time. A malformed token is hashed all the same (as 32 zero
// bytes) so every refusal costs one compare.
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return false
	}
	text, ok := strings.CutPrefix(h[0], "Bearer ")
	raw, okTok := parseToken(text)
	got := hashToken(raw)
	match := s.equal(got[:], s.tokenHash[:]) == 1
	return ok && okTok && match
}

func (s *Server) route(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		var err error
		if r.Method != rt.method {
			sw.Header().Set("Allow", rt.method)
			err = errMethodNotAllowed
		} else {
			err = rt.h(sw, r)
		}
		if err != nil {
			if _, _, _, known := classify(err); !known {
				s.log.Error("admin request failed", "route", rt.name, "err", err)
			}
			writeError(sw, err)
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.m.requests.WithLabelValues(rt.name, fmt.Sprint(sw.status)).Inc()
		s.m.duration.WithLabelValues(rt.name).Observe(time.Since(start).Seconds())
		attrs := []any{"route", rt.name, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", sw.status}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		s.log.Info("admin request", attrs...)
	})
}
