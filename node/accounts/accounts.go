// Package accounts is a node's user accounts and their authentication
// (spec 09 §3): registration (open, by invite, or closed), login by signing
// a challenge with the account's identity key, session tokens, and
// suspension.
//
// # Accounts
//
// An account is an identity key (keys.AccountID) and a username, both
// unique on the node. Usernames are 3 to 32 characters of a-z 0-9 _ - .,
// starting with a letter; anything else is refused (ErrBadUsername), never
// normalised. Registration is open, by invite (an unused, unexpired invite
// token from CreateInvite, consumed in the same batch that writes the
// account), or closed.
//
// # Login
//
// Challenge hands out a random 32-byte nonce, valid once for ChallengeTTL,
// whether or not the username exists, so login reveals nothing about which
// accounts exist. Outstanding challenges live in memory only, at most
// MaxChallenges of them: when full, the oldest is dropped (its login fails
// and the client asks again). Login takes the nonce back (single use, on
// any attempt) and checks the account key's Ed25519 signature under the
// label wire.LabelAccountLogin ("parley/v1/account-login") over
// LoginMessage, the canonical encoding (spec 02) of
//
//	u8        version = 1
//	string16  audience   the node's ID text (Config.Audience), so a
//	                     signature for one node cannot log in at another
//	string16  username
//	fixed[32] nonce
//
// that is, the signature covers wire.Labeled(wire.LabelAccountLogin,
// LoginMessage(audience, username, nonce)). Every failure (unknown user,
// unknown, used or expired nonce, a nonce issued for another username, a
// bad signature) is the one error ErrBadLogin, and an unknown user costs
// the same signature check as a known one.
//
// Suspended accounts can log in: they must be able to see their state.
// Login and Authenticate return the account with Suspended set, and the
// callers (pairing, sending) refuse their actions.
//
// # Tokens
//
// A session token is 32 random bytes, written "pt_" + unpadded base64url.
// The node keeps only SHA-256 of the raw 32 bytes, so a copy of the store
// does not hold a usable token; looking a token up by its hash also means no
// secret is ever compared. Tokens expire after TokenTTL; an expired token
// is deleted when it is next presented, and by PurgeExpired. Invite tokens
// ("pi_" + base64url of 32 random bytes) are kept the same way.
//
// # Storage
//
// Under the prefixes of node/store/keys.go that this package owns, with
// values in protocol/wire's canonical encoding; times are unix
// milliseconds as i64, and every record starts with a version byte (1):
//
//	acct/<AccountID 32>           u8 1 | string16 username | i64 created |
//	                              u8 flags (bit 0: suspended; others 0) |
//	                              string16 suspend_reason
//	user/<username>               fixed[32] AccountID
//	tok/<SHA-256(token) 32>       u8 1 | fixed[32] AccountID | i64 created | i64 expires
//	atok/<AccountID 32><hash 32>  empty (finds an account's tokens for RevokeAll)
//	inv/<SHA-256(invite) 32>      u8 1 | i64 created | i64 expires |
//	                              fixed[32] used_by (zero: unused) | i64 used
//
// The store has no transactions: the service serialises its own
// read-check-write sequences (registration, invites, suspension, token
// deletion) with mutexes, which is sound because no other subsystem
// writes these prefixes.
package accounts

import (
	"container/list"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

// Errors. Match them with errors.Is.
var (
	// ErrBadUsername: the username breaks the rules in the package doc.
	ErrBadUsername = errors.New("accounts: bad username")
	// ErrBadKey: the identity key cannot be an account's (the zero key).
	ErrBadKey = errors.New("accounts: bad identity key")
	// ErrUsernameTaken: another account has the username.
	ErrUsernameTaken = errors.New("accounts: username taken")
	// ErrKeyTaken: another account has the identity key.
	ErrKeyTaken = errors.New("accounts: identity key taken")
	// ErrBadInvite: in invite mode, the invite is missing, malformed,
	// unknown, used or expired.
	ErrBadInvite = errors.New("accounts: bad invite")
	// ErrRegistrationClosed: the registration mode is closed.
	ErrRegistrationClosed = errors.New("accounts: registration closed")
	// ErrBadLogin: a login failed, for any reason.
	ErrBadLogin = errors.New("accounts: login failed")
	// ErrUnauthenticated: a token is malformed, unknown, expired or revoked.
	ErrUnauthenticated = errors.New("accounts: unauthenticated")
	// ErrNotFound: no account has that ID or username.
	ErrNotFound = errors.New("accounts: not found")
	// ErrBadReason: a suspension reason is longer than MaxReason bytes or
	// not UTF-8.
	ErrBadReason = errors.New("accounts: bad suspension reason")
)

// Registration modes.
const (
	ModeOpen   = "open"   // anyone may register
	ModeInvite = "invite" // registration needs an invite from CreateInvite
	ModeClosed = "closed" // nobody may register
)

// Bounds.
const (
	// MinUsername and MaxUsername bound a username's length in bytes.
	MinUsername = 3
	MaxUsername = 32
	// MaxReason bounds a suspension reason, in bytes.
	MaxReason = 1024
	// MaxAudience bounds Config.Audience, in bytes.
	MaxAudience = 256
	// MaxList is the most accounts one List call returns.
	MaxList = 1000
)

// Config is the accounts part of the node configuration. Zero values
// take the defaults.
type Config struct {
	// Audience names this node in login challenges; the client signs over
	// it (see the package doc). The node sets it to its peer ID text; it is
	// not a config file setting. Required, at most MaxAudience bytes.
	Audience string `toml:"-"`
	// RegistrationMode is "open", "invite" or "closed". Default "open".
	RegistrationMode string `toml:"registration_mode" comment:"Who may register: \"open\" (anyone), \"invite\" (with an invite token from the admin API) or \"closed\" (default \"open\")."`
	// TokenTTL is how long a session token is valid after login. Default 24h.
	TokenTTL time.Duration `toml:"token_ttl" comment:"How long a login session token is valid (default \"24h\")."`
	// ChallengeTTL is how long a login challenge is valid. Default 2m.
	ChallengeTTL time.Duration `toml:"challenge_ttl" comment:"How long a login challenge is valid (default \"2m\")."`
	// MaxChallenges bounds the login challenges held in memory; past it
	// the oldest is dropped. Default 100000.
	MaxChallenges int `toml:"max_challenges" comment:"Most outstanding login challenges kept in memory; past it the oldest is dropped (default 100000)."`
	// InviteTTL is how long an invite is valid after it is created.
	// Default 168h (7 days).
	InviteTTL time.Duration `toml:"invite_ttl" comment:"How long an invite token is valid (default \"168h\", 7 days)."`
}

// DefaultConfig returns the defaults, with Audience empty.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	if c.RegistrationMode == "" {
		c.RegistrationMode = ModeOpen
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.ChallengeTTL == 0 {
		c.ChallengeTTL = 2 * time.Minute
	}
	if c.MaxChallenges == 0 {
		c.MaxChallenges = 100000
	}
	if c.InviteTTL == 0 {
		c.InviteTTL = 7 * 24 * time.Hour
	}
	return c
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Audience == "" {
		errs = append(errs, errors.New("accounts: audience is required"))
	}
	if len(c.Audience) > MaxAudience {
		errs = append(errs, fmt.Errorf("accounts: audience is %d bytes, above %d", len(c.Audience), MaxAudience))
	}
	switch c.RegistrationMode {
	case "", ModeOpen, ModeInvite, ModeClosed:
	default:
		errs = append(errs, fmt.Errorf("accounts: registration_mode %q is not open, invite or closed", c.RegistrationMode))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"token_ttl", c.TokenTTL}, {"challenge_ttl", c.ChallengeTTL}, {"invite_ttl", c.InviteTTL}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("accounts: %s %v is negative", d.name, d.v))
		}
	}
	if c.MaxChallenges < 0 {
		errs = append(errs, fmt.Errorf("accounts: max_challenges %d is negative", c.MaxChallenges))
	}
	return errors.Join(errs...)
}

type options struct {
	now    func() time.Time
	rand   io.Reader
	logger *slog.Logger
	reg    prometheus.Registerer
}

// Option is a test seam or wiring choice for New.
type Option func(*options)

// WithClock makes the service read time from now instead of time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRand makes the service draw nonces and tokens from r instead of
// crypto/rand.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the service's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Account is a registered account.
type Account struct {
	ID            keys.AccountID
	Username      string
	Created       time.Time
	Suspended     bool
	SuspendReason string
}

// Service manages the accounts of one node. Its methods are safe for
// concurrent use. It starts no goroutines.
type Service struct {
	st    *store.Store
	cfg   Config
	now   func() time.Time
	rand  io.Reader
	log   *slog.Logger
	m     *metrics
	dummy keys.AccountID // verified against for unknown users, for uniform timing

	// regMu serialises read-check-write sequences on account, username and
	// invite records (registration, invites, suspension).
	regMu sync.Mutex
	// tokMu serialises token deletions, so that each token is counted out
	// of the active-tokens gauge once.
	tokMu sync.Mutex

	chMu       sync.Mutex
	challenges map[[32]byte]*list.Element // of *pending
	chOrder    list.List                  // of *pending, oldest (soonest to expire) first
}

// New returns the accounts service over st. It counts the stored
// suspended accounts and tokens once, for the gauges.
func New(st *store.Store, cfg Config, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := options{now: time.Now, rand: rand.Reader, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	dummy, err := keys.AccountKeyFromSeed(make([]byte, keys.SeedSize))
	if err != nil {
		return nil, fmt.Errorf("accounts: dummy key: %w", err)
	}
	s := &Service{
		st:         st,
		cfg:        cfg,
		now:        o.now,
		rand:       o.rand,
		log:        o.logger.With("subsystem", "accounts"),
		m:          newMetrics(),
		dummy:      dummy.Public(),
		challenges: make(map[[32]byte]*list.Element),
	}
	if err := s.countStored(); err != nil {
		return nil, err
	}
	if o.reg != nil {
		if err := o.reg.Register(s.m); err != nil {
			return nil, fmt.Errorf("accounts: registering metrics: %w", err)
		}
	}
	return s, nil
}

// countStored sets the gauges from the store.
func (s *Service) countStored() error {
	var suspended, tokens int
	var decodeErr error
	err := s.st.Scan([]byte(store.PrefixAccount), nil, 0, func(_, v []byte) bool {
		r, err := decodeAccount(v)
		if err != nil {
			decodeErr = err
			return false
		}
		if r.suspended {
			suspended++
		}
		return true
	})
	if err = errors.Join(err, decodeErr); err != nil {
		return fmt.Errorf("accounts: counting accounts: %w", err)
	}
	if err := s.st.Scan([]byte(store.PrefixToken), nil, 0, func(_, _ []byte) bool {
		tokens++
		return true
	}); err != nil {
		return fmt.Errorf("accounts: counting tokens: %w", err)
	}
	s.m.suspended.Set(float64(suspended))
	s.m.activeTokens.Set(float64(tokens))
	return nil
}

// validUsername reports whether name follows the username rules.
func validUsername(name string) bool {
	if len(name) < MinUsername || len(name) > MaxUsername {
		return false
	}
	if name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// msTime returns t at the millisecond precision the store keeps, in UTC.
func msTime(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func (s *Service) random32() ([32]byte, error) {
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return b, fmt.Errorf("accounts: reading randomness: %w", err)
	}
	return b, nil
}
