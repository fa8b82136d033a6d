package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Text forms of the secrets this package hands out.
const (
	tokenPrefix  = "pt_"
	invitePrefix = "pi_"
)

var b64 = base64.RawURLEncoding

// loginVersion is the version byte of LoginMessage.
const loginVersion = 1

// LoginMessage returns the canonical bytes a login signature covers, under
// the label wire.LabelAccountLogin: u8 1 | string16 audience | string16
// username | fixed[32] nonce (spec 09 §3). audience and username must be
// shorter than 64 KiB.
func LoginMessage(audience, username string, nonce [32]byte) []byte {
	e := wire.NewEncoder(1 + 2 + len(audience) + 2 + len(username) + 32)
	e.U8(loginVersion)
	e.String16(audience)
	e.String16(username)
	e.Fixed(nonce[:])
	return e.Bytes()
}

// Challenge is a login challenge: the client signs LoginMessage(Audience,
// username, Nonce) before Expires.
type Challenge struct {
	Nonce    [32]byte
	Audience string
	Expires  time.Time
}

// Session is a logged-in session. Token is a secret: hand it to the client
// once; never log it.
type Session struct {
	Token   string
	Account Account
	Expires time.Time
}

// pending is an outstanding challenge.
type pending struct {
	nonce    [32]byte
	username string
	expires  time.Time
}

// Challenge returns a fresh login challenge for username, whether or not
// an account has it. A username that breaks the rules (which no account can
// have) is ErrBadUsername.
func (s *Service) Challenge(ctx context.Context, username string) (Challenge, error) {
	if err := ctx.Err(); err != nil {
		return Challenge{}, err
	}
	if !validUsername(username) {
		return Challenge{}, ErrBadUsername
	}
	nonce, err := s.random32()
	if err != nil {
		return Challenge{}, err
	}
	now := s.now()
	p := &pending{nonce: nonce, username: username, expires: now.Add(s.cfg.ChallengeTTL)}

	s.chMu.Lock()
	defer s.chMu.Unlock()
	s.dropExpiredLocked(now)
	for s.chOrder.Len() >= s.cfg.MaxChallenges {
		old := s.chOrder.Remove(s.chOrder.Front()).(*pending)
		delete(s.challenges, old.nonce)
		s.m.challengesDropped.Inc()
	}
	if _, dup := s.challenges[nonce]; dup { // only a broken randomness source repeats
		return Challenge{}, errors.New("accounts: randomness source repeated a nonce")
	}
	s.challenges[nonce] = s.chOrder.PushBack(p)
	s.m.challenges.Set(float64(s.chOrder.Len()))
	return Challenge{Nonce: nonce, Audience: s.cfg.Audience, Expires: p.expires}, nil
}

// dropExpiredLocked forgets the challenges that expired by now. Challenges
// are queued in the order they expire. s.chMu is held.
func (s *Service) dropExpiredLocked(now time.Time) {
	for e := s.chOrder.Front(); e != nil; e = s.chOrder.Front() {
		p := e.Value.(*pending)
		if now.Before(p.expires) {
			break
		}
		s.chOrder.Remove(e)
		delete(s.challenges, p.nonce)
	}
}

// takeChallenge removes the challenge with nonce and returns it, if any.
func (s *Service) takeChallenge(nonce [32]byte) (*pending, bool) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	e, ok := s.challenges[nonce]
	if !ok {
		return nil, false
	}
	s.chOrder.Remove(e)
	delete(s.challenges, nonce)
	s.m.challenges.Set(float64(s.chOrder.Len()))
	return e.Value.(*pending), true
}

// Login checks sig, the account's signature over the challenge with nonce
// (see the package doc), and starts a session. The challenge is used up
// whatever the outcome. Every failure is ErrBadLogin; only a store failure
// is another error. A suspended account can log in: the returned account
// has Suspended set, for the caller to refuse actions.
func (s *Service) Login(ctx context.Context, username string, nonce [32]byte, sig keys.Signature) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	if !validUsername(username) {
		// No challenge was issued for it; nothing to take or to hide.
		s.m.logins.WithLabelValues("failed").Inc()
		return Session{}, ErrBadLogin
	}
	now := s.now()
	p, found := s.takeChallenge(nonce)
	challengeOK := found && p.username == username && now.Before(p.expires)

	// Look the account up and check a signature whatever the challenge
	// said, against a dummy key for an unknown user, so the work done does
	// not tell which check failed.
	id, known, err := s.idByUsername(username)
	if err != nil {
		return Session{}, err
	}
	key := s.dummy
	if known {
		key = id
	}
	sigOK := key.Verify(wire.LabelAccountLogin, sig, LoginMessage(s.cfg.Audience, username, nonce))
	if !challengeOK || !known || !sigOK {
		s.m.logins.WithLabelValues("failed").Inc()
		s.log.Debug("login failed", "challenge_ok", challengeOK)
		return Session{}, ErrBadLogin
	}
	acct, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) { // username index without account: treat as unknown
		s.m.logins.WithLabelValues("failed").Inc()
		s.log.Warn("username index names a missing account", "account", id.String())
		return Session{}, ErrBadLogin
	}
	if err != nil {
		return Session{}, err
	}
	token, expires, err := s.newToken(ctx, id, now)
	if err != nil {
		return Session{}, err
	}
	s.m.logins.WithLabelValues("ok").Inc()
	s.log.Debug("login", "account", id.String(), "suspended", acct.Suspended)
	return Session{Token: token, Account: acct, Expires: expires}, nil
}

// idByUsername returns the account ID registered under username.
func (s *Service) idByUsername(username string) (keys.AccountID, bool, error) {
	var id keys.AccountID
	v, err := s.st.Get(store.Key(store.PrefixUsername, []byte(username)))
	if errors.Is(err, store.ErrNotFound) {
		return id, false, nil
	}
	if err != nil {
		return id, false, fmt.Errorf("accounts: reading username: %w", err)
	}
	if len(v) != len(id) {
		return id, false, fmt.Errorf("accounts: corrupt username record: %d bytes", len(v))
	}
	copy(id[:], v)
	return id, true, nil
}

// newToken stores a new session token for id and returns its text form.
func (s *Service) newToken(ctx context.Context, id keys.AccountID, now time.Time) (string, time.Time, error) {
	raw, err := s.random32()
	if err != nil {
		return "", time.Time{}, err
	}
	h := sha256.Sum256(raw[:])
	rec := tokenRecord{account: id, created: msTime(now), expires: msTime(now.Add(s.cfg.TokenTTL))}
	b := s.st.NewBatch()
	b.Set(store.Key(store.PrefixToken, h[:]), rec.encode())
	b.Set(store.Key(store.PrefixAccountTokens, id[:], h[:]), nil)
	if err := s.st.Commit(ctx, b); err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: storing token: %w", err)
	}
	s.m.activeTokens.Inc()
	return tokenPrefix + b64.EncodeToString(raw[:]), rec.expires, nil
}

// parseSecret returns the 32 bytes of a "<prefix><base64url>" secret.
func parseSecret(prefix, text string) ([32]byte, bool) {
	var raw [32]byte
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok || len(rest) != b64.EncodedLen(len(raw)) {
		return raw, false
	}
	n, err := b64.Strict().Decode(raw[:], []byte(rest))
	return raw, err == nil && n == len(raw)
}

// hashSecret returns the SHA-256 under which a secret is stored.
func hashSecret(raw [32]byte) [32]byte { return sha256.Sum256(raw[:]) }

// Authenticate returns the account a session token belongs to. A
// malformed, unknown, expired or revoked token is ErrUnauthenticated; an
// expired one is deleted on the way.
func (s *Service) Authenticate(ctx context.Context, token string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	raw, ok := parseSecret(tokenPrefix, token)
	if !ok {
		return Account{}, ErrUnauthenticated
	}
	h := hashSecret(raw)
	rec, found, err := s.getToken(h)
	if err != nil {
		return Account{}, err
	}
	if !found {
		return Account{}, ErrUnauthenticated
	}
	if !s.now().Before(rec.expires) {
		if _, err := s.deleteTokens(ctx, []tokenRef{{h, rec.account}}); err != nil {
			s.log.Warn("deleting expired token", "err", err)
		}
		return Account{}, ErrUnauthenticated
	}
	acct, err := s.Get(ctx, rec.account)
	if errors.Is(err, ErrNotFound) {
		return Account{}, ErrUnauthenticated
	}
	return acct, err
}

func (s *Service) getToken(h [32]byte) (tokenRecord, bool, error) {
	v, err := s.st.Get(store.Key(store.PrefixToken, h[:]))
	if errors.Is(err, store.ErrNotFound) {
		return tokenRecord{}, false, nil
	}
	if err != nil {
		return tokenRecord{}, false, fmt.Errorf("accounts: reading token: %w", err)
	}
	rec, err := decodeToken(v)
	return rec, err == nil, err
}

// Revoke ends the session of token. A malformed, unknown, expired or
// already revoked token is not an error: there is no session left to end.
func (s *Service) Revoke(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	raw, ok := parseSecret(tokenPrefix, token)
	if !ok {
		return nil
	}
	h := hashSecret(raw)
	rec, found, err := s.getToken(h)
	if err != nil || !found {
		return err
	}
	_, err = s.deleteTokens(ctx, []tokenRef{{h, rec.account}})
	return err
}

// RevokeAll ends every session of the account id and returns how many
// there were.
func (s *Service) RevokeAll(ctx context.Context, id keys.AccountID) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	prefix := store.Key(store.PrefixAccountTokens, id[:])
	var refs []tokenRef
	err := s.st.Scan(prefix, nil, 0, func(k, _ []byte) bool {
		var ref tokenRef
		ref.account = id
		copy(ref.hash[:], k[len(prefix):])
		refs = append(refs, ref)
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("accounts: listing tokens: %w", err)
	}
	n, err := s.deleteTokens(ctx, refs)
	if err == nil {
		s.log.Info("all sessions revoked", "account", id.String(), "count", n)
	}
	return n, err
}

// tokenRef names a stored token by both of its keys.
type tokenRef struct {
	hash    [32]byte
	account keys.AccountID
}

// deleteTokens deletes the tokens that still exist among refs, in one
// batch, and returns how many it deleted.
func (s *Service) deleteTokens(ctx context.Context, refs []tokenRef) (int, error) {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	b := s.st.NewBatch()
	n := 0
	for _, r := range refs {
		tk := store.Key(store.PrefixToken, r.hash[:])
		ok, err := s.st.Has(tk)
		if err != nil {
			b.Close()
			return 0, fmt.Errorf("accounts: reading token: %w", err)
		}
		// The index entry goes either way; it may be all that is left.
		b.Delete(store.Key(store.PrefixAccountTokens, r.account[:], r.hash[:]))
		if ok {
			b.Delete(tk)
			n++
		}
	}
	if b.Len() == 0 {
		b.Close()
		return 0, nil
	}
	if err := s.st.Commit(ctx, b); err != nil {
		return 0, fmt.Errorf("accounts: deleting tokens: %w", err)
	}
	s.m.activeTokens.Sub(float64(n))
	return n, nil
}

// purgePage is how many records PurgeExpired deletes per batch.
const purgePage = 512

// PurgeExpired deletes every expired session token and every expired
// invite (used or not) and returns how many records it deleted. The node
// calls it now and then; tokens expire without it, but their records stay.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	now := s.now()
	total := 0
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var refs []tokenRef
		var decodeErr error
		scanned := 0
		err := s.st.Scan([]byte(store.PrefixToken), after, purgePage, func(k, v []byte) bool {
			scanned++
			after = append(after[:0], k...)
			rec, err := decodeToken(v)
			if err != nil {
				decodeErr = err
				return false
			}
			if !now.Before(rec.expires) {
				var r tokenRef
				copy(r.hash[:], k[len(store.PrefixToken):])
				r.account = rec.account
				refs = append(refs, r)
			}
			return true
		})
		if err = errors.Join(err, decodeErr); err != nil {
			return total, fmt.Errorf("accounts: purging tokens: %w", err)
		}
		n, err := s.deleteTokens(ctx, refs)
		total += n
		if err != nil {
			return total, err
		}
		if scanned < purgePage {
			break
		}
	}
	n, err := s.purgeInvites(ctx, now)
	total += n
	if total > 0 {
		s.log.Info("purged expired records", "count", total)
	}
	return total, err
}
