package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the options.
const (
	// DefaultRequestTimeout bounds one request; a long-poll gets its wait
	// on top.
	DefaultRequestTimeout = 30 * time.Second
	// maxResponseSize bounds what the client reads of one answer. A sync
	// answer is the largest; nodes bound it well below this.
	maxResponseSize = 32 << 20
	// maxErrorBodySize bounds what the client reads of an error answer.
	maxErrorBodySize = 64 << 10
)

// Option configures New and NewSession. Options are test seams: the HTTP
// transport and timeouts, the clock, randomness, the logger and the metrics
// registerer.
type Option func(*options)

type options struct {
	httpClient     *http.Client
	requestTimeout time.Duration
	now            func() time.Time
	rand           io.Reader
	logger         *slog.Logger
	reg            prometheus.Registerer
	sleep          func(ctx context.Context, d time.Duration) error
}

// WithHTTPClient sets the HTTP client (default: a client whose transport
// has connect, TLS-handshake and idle timeouts, that follows no redirects;
// the per-request deadline comes from WithRequestTimeout). Tests inject
// faulty transports here.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithRequestTimeout bounds each request (default DefaultRequestTimeout);
// Sync adds its wait.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.requestTimeout = d }
}

// WithClock replaces time.Now (default time.Now): the time sealed into
// envelopes and disclosures, and the times the Session records.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRand replaces crypto/rand (default crypto/rand.Reader) for keys,
// franking keys and transaction IDs.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// WithLogger sets the logger (default: discard). It never receives message
// content, tokens or keys.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer sets where the Session's metrics are registered (default:
// a private registry nobody gathers).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithSleep replaces the wait between send retries (default: a timer that
// ends early with ctx).
func WithSleep(f func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.sleep = f }
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.httpClient == nil {
		o.httpClient = defaultHTTPClient()
	}
	if o.requestTimeout <= 0 {
		o.requestTimeout = DefaultRequestTimeout
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.rand == nil {
		o.rand = rand.Reader
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	if o.sleep == nil {
		o.sleep = sleep
	}
	return o
}

func defaultHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			MaxIdleConnsPerHost:   4,
			ForceAttemptHTTP2:     true,
		},
		// A redirect is not part of the API; following one could send
		// the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Client is a low-level client of one node's client API (spec
// 09-client-api): one method per endpoint, no state but the session token.
// It does no cryptography beyond signing the login challenge; Session does
// the rest. A Client is safe for concurrent use.
type Client struct {
	base    string // without a trailing slash
	baseErr error
	hc      *http.Client
	timeout time.Duration

	mu    sync.Mutex
	token string
}

// New returns a client of the node at baseURL (http or https, with an
// optional path prefix). A malformed URL makes every request fail.
func New(baseURL string, opts ...Option) *Client {
	o := newOptions(opts)
	c := &Client{hc: o.httpClient, timeout: o.requestTimeout}
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		c.baseErr = fmt.Errorf("client: node URL: %w", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		c.baseErr = fmt.Errorf("client: node URL %q: want http(s)://host[:port][/path]", u.Redacted())
	default:
		c.base = strings.TrimRight(u.String(), "/")
	}
	return c
}

// SetToken sets the bearer token sent with authenticated requests ("" for
// none). Login sets it.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = token
}

func (c *Client) getToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// request describes one API call.
type request struct {
	method string
	path   string // below the base URL, starting with /v1/
	query  url.Values
	body   any  // marshaled as JSON if not nil
	auth   bool // send the bearer token
	want   int  // the success status
	out    any  // decoded from a success body if not nil
	extra  time.Duration
}

// do sends r and decodes the answer: r.out on r.want, an *APIError on an
// error status.
func (c *Client) do(ctx context.Context, r request) error {
	if c.baseErr != nil {
		return c.baseErr
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout+r.extra)
	defer cancel()
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	req.Header.Set("Accept", "application/json")
	if r.auth {
		if t := c.getToken(); t != "" {
			req.Header.Set("Authorization", "Bearer "+t)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", r.method, r.path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != r.want {
		return readAPIError(resp)
	}
	if r.out == nil {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodySize))
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return fmt.Errorf("client: %s %s: reading the answer: %w", r.method, r.path, err)
	}
	if len(b) > maxResponseSize {
		return fmt.Errorf("%w: answer over %d bytes", ErrBadResponse, maxResponseSize)
	}
	if err := json.Unmarshal(b, r.out); err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrBadResponse, r.method, r.path, err)
	}
	if v, ok := r.out.(interface{ check() error }); ok {
		if err := v.check(); err != nil {
			return fmt.Errorf("%w: %s %s: %w", ErrBadResponse, r.method, r.path, err)
		}
	}
	return nil
}

// readAPIError turns an error answer into an *APIError.
func readAPIError(resp *http.Response) error {
	e := &APIError{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodySize))
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Code = codeForStatus(resp.StatusCode)
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			e.RetryAfter = time.Duration(min(n, 24*3600)) * time.Second
		}
	}
	if resp.StatusCode < 400 {
		// A status the endpoint does not use (a redirect, a 200 where
		// 201 was due): the request's effect is unknown.
		return fmt.Errorf("%w: unexpected status %d", ErrBadResponse, resp.StatusCode)
	}
	return e
}

// errEmpty reports a missing field in an answer.
func errEmpty(field string) error { return errors.New("field " + strconv.Quote(field) + " missing") }
