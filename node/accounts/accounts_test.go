package accounts_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

var ctx = context.Background()

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  accounts.Config
		want []string // substrings of the error; none: valid
	}{
		{"defaults", accounts.Config{Audience: "n"}, nil},
		{"all set", accounts.Config{Audience: "n", RegistrationMode: "invite", TokenTTL: time.Hour,
			ChallengeTTL: time.Minute, MaxChallenges: 5, InviteTTL: time.Hour}, nil},
		{"no audience", accounts.Config{}, []string{"audience is required"}},
		{"long audience", accounts.Config{Audience: strings.Repeat("a", accounts.MaxAudience+1)}, []string{"audience is 257 bytes"}},
		{"bad mode", accounts.Config{Audience: "n", RegistrationMode: "Open"}, []string{`registration_mode "Open"`}},
		{"everything wrong at once", accounts.Config{RegistrationMode: "x", TokenTTL: -1, ChallengeTTL: -1,
			InviteTTL: -1, MaxChallenges: -1},
			[]string{"audience", "registration_mode", "token_ttl", "challenge_ttl", "invite_ttl", "max_challenges"}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Validate() = nil, want an error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate() = %q, want it to mention %q", tt.name, err, w)
			}
		}
	}
	if _, err := accounts.New(nil, accounts.Config{}); err == nil {
		t.Error("New(invalid config) = nil error, want one")
	}
	d := accounts.DefaultConfig()
	want := accounts.Config{RegistrationMode: "open", TokenTTL: 24 * time.Hour, ChallengeTTL: 2 * time.Minute,
		MaxChallenges: 100000, InviteTTL: 7 * 24 * time.Hour}
	if d != want {
		t.Errorf("DefaultConfig() = %+v, want %+v", d, want)
	}
}

func TestUsernames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"abc", true},
		{"alice", true},
		{"a.b-c_d9", true},
		{"z" + strings.Repeat("9", 31), true}, // 32
		{"ab", false},                         // too short
		{"", false},
		{"a" + strings.Repeat("b", 32), false}, // 33
		{"Alice", false},                       // upper case is refused, not lowered
		{"alicE", false},
		{"1abc", false}, // must start with a letter
		{"_abc", false},
		{".abc", false},
		{"-abc", false},
		{"al ice", false},
		{" alice", false}, // not trimmed
		{"alice\n", false},
		{"al@ce", false},
		{"alïce", false}, // non-ASCII
		{"аlice", false}, // Cyrillic a
		{"al\x00ce", false},
	}
	e := newEnv(t, accounts.Config{})
	for _, tt := range tests {
		u := newUser(t, tt.name)
		_, err := e.svc.Register(ctx, tt.name, u.id(), "")
		if tt.ok && err != nil {
			t.Errorf("Register(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, accounts.ErrBadUsername) {
			t.Errorf("Register(%q) = %v, want ErrBadUsername", tt.name, err)
		}
		if _, err := e.svc.Challenge(ctx, tt.name); tt.ok == errors.Is(err, accounts.ErrBadUsername) {
			t.Errorf("Challenge(%q) = %v, want ErrBadUsername only for a bad name", tt.name, err)
		}
	}
}

func TestRegisterModes(t *testing.T) {
	tests := []struct {
		mode      string
		useInvite bool // pass a valid invite
		invite    string
		want      error
	}{
		{mode: "", want: nil}, // default open
		{mode: accounts.ModeOpen, want: nil},
		{mode: accounts.ModeOpen, invite: "pi_garbage", want: nil}, // ignored
		{mode: accounts.ModeInvite, useInvite: true, want: nil},
		{mode: accounts.ModeInvite, want: accounts.ErrBadInvite},
		{mode: accounts.ModeInvite, invite: "pi_garbage", want: accounts.ErrBadInvite},
		{mode: accounts.ModeInvite, invite: "pi_" + strings.Repeat("A", 43), want: accounts.ErrBadInvite}, // unknown
		{mode: accounts.ModeClosed, want: accounts.ErrRegistrationClosed},
		{mode: accounts.ModeClosed, useInvite: true, want: accounts.ErrRegistrationClosed},
	}
	for _, tt := range tests {
		e := newEnv(t, accounts.Config{RegistrationMode: tt.mode})
		invite := tt.invite
		if tt.useInvite {
			var err error
			if invite, _, err = e.svc.CreateInvite(ctx); err != nil {
				t.Fatalf("CreateInvite() = %v", err)
			}
		}
		u := newUser(t, "alice")
		acct, err := e.svc.Register(ctx, u.name, u.id(), invite)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("mode %q invite %q: Register() = %v, want %v", tt.mode, invite, err, tt.want)
			continue
		}
		if err != nil {
			if n := e.count(store.PrefixAccount) + e.count(store.PrefixUsername); n != 0 {
				t.Errorf("mode %q: failed Register left %d records, want 0", tt.mode, n)
			}
			continue
		}
		want := accounts.Account{ID: u.id(), Username: "alice", Created: e.clock.Now()}
		if acct != want {
			t.Errorf("mode %q: Register() = %+v, want %+v", tt.mode, acct, want)
		}
		if got, err := e.svc.Get(ctx, u.id()); err != nil || got != want {
			t.Errorf("mode %q: Get() = %+v, %v, want %+v", tt.mode, got, err, want)
		}
	}
}

func TestRegisterConflicts(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice := newUser(t, "alice")
	e.register(alice)
	other := newUser(t, "bob")
	tests := []struct {
		name string
		id   keys.AccountID
		want error
	}{
		{"alice", other.id(), accounts.ErrUsernameTaken},
		{"alice", alice.id(), accounts.ErrUsernameTaken},
		{"bob", alice.id(), accounts.ErrKeyTaken},
		{"bob", keys.AccountID{}, accounts.ErrBadKey},
	}
	for _, tt := range tests {
		if _, err := e.svc.Register(ctx, tt.name, tt.id, ""); !errors.Is(err, tt.want) {
			t.Errorf("Register(%q, %v) = %v, want %v", tt.name, tt.id, err, tt.want)
		}
	}
	if got := e.count(store.PrefixAccount); got != 1 {
		t.Errorf("accounts stored = %d, want 1", got)
	}
}

func TestRegisterRace(t *testing.T) {
	// Many goroutines register the same username with different keys:
	// exactly one wins.
	e := newEnv(t, accounts.Config{})
	const n = 8
	users := make([]user, n)
	for i := range users {
		users[i] = newUser(t, "carol")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range users {
		wg.Go(func() { _, errs[i] = e.svc.Register(ctx, users[i].name, users[i].id(), "") })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, accounts.ErrUsernameTaken):
			t.Errorf("Register #%d = %v, want nil or ErrUsernameTaken", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("successful registrations = %d, want 1", ok)
	}
}

func TestInviteSingleUseAndExpiry(t *testing.T) {
	e := newEnv(t, accounts.Config{RegistrationMode: accounts.ModeInvite, InviteTTL: time.Hour})
	inv, expires, err := e.svc.CreateInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().Add(time.Hour); !expires.Equal(want) {
		t.Errorf("CreateInvite() expires = %v, want %v", expires, want)
	}
	alice, bob, carol := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	inv0, _, err := e.svc.CreateInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Register(ctx, alice.name, alice.id(), inv0); err != nil {
		t.Fatal(err)
	}

	// A failed registration (name taken) does not consume the invite.
	if _, err := e.svc.Register(ctx, "alice", bob.id(), inv); !errors.Is(err, accounts.ErrUsernameTaken) {
		t.Fatalf("Register(taken name, invite) = %v, want ErrUsernameTaken", err)
	}
	if _, err := e.svc.Register(ctx, bob.name, bob.id(), inv); err != nil {
		t.Fatalf("Register(bob, invite) = %v, want nil", err)
	}
	// Used.
	if _, err := e.svc.Register(ctx, carol.name, carol.id(), inv); !errors.Is(err, accounts.ErrBadInvite) {
		t.Errorf("Register(carol, used invite) = %v, want ErrBadInvite", err)
	}
	// A bad invite is refused before the username is checked.
	if _, err := e.svc.Register(ctx, "alice", carol.id(), inv); !errors.Is(err, accounts.ErrBadInvite) {
		t.Errorf("Register(taken name, used invite) = %v, want ErrBadInvite", err)
	}

	// Expiry: valid until one millisecond before, not at the instant.
	inv2, _, err := e.svc.CreateInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv3, _, err := e.svc.CreateInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour - time.Millisecond)
	if _, err := e.svc.Register(ctx, carol.name, carol.id(), inv2); err != nil {
		t.Errorf("Register(invite just before expiry) = %v, want nil", err)
	}
	e.clock.Advance(time.Millisecond)
	dave := newUser(t, "dave")
	if _, err := e.svc.Register(ctx, dave.name, dave.id(), inv3); !errors.Is(err, accounts.ErrBadInvite) {
		t.Errorf("Register(expired invite) = %v, want ErrBadInvite", err)
	}
	// A session token is no invite.
	s := e.login(alice)
	if _, err := e.svc.Register(ctx, dave.name, dave.id(), s.Token); !errors.Is(err, accounts.ErrBadInvite) {
		t.Errorf("Register(session token as invite) = %v, want ErrBadInvite", err)
	}
}

func TestLoginHappyPath(t *testing.T) {
	e := newEnv(t, accounts.Config{TokenTTL: time.Hour})
	alice := newUser(t, "alice")
	acct := e.register(alice)
	c := e.challenge("alice")
	if c.Audience != audience {
		t.Errorf("Challenge().Audience = %q, want %q", c.Audience, audience)
	}
	if want := e.clock.Now().Add(2 * time.Minute); !c.Expires.Equal(want) {
		t.Errorf("Challenge().Expires = %v, want %v", c.Expires, want)
	}
	e.clock.Advance(time.Minute)
	s, err := e.svc.Login(ctx, "alice", c.Nonce, alice.sign(audience, c.Nonce))
	if err != nil {
		t.Fatalf("Login() = %v", err)
	}
	if s.Account != acct {
		t.Errorf("Login().Account = %+v, want %+v", s.Account, acct)
	}
	if want := e.clock.Now().Add(time.Hour); !s.Expires.Equal(want) {
		t.Errorf("Login().Expires = %v, want %v", s.Expires, want)
	}
	rest, ok := strings.CutPrefix(s.Token, "pt_")
	if raw, err := base64.RawURLEncoding.DecodeString(rest); !ok || err != nil || len(raw) != 32 {
		t.Errorf("Login().Token = %q, want pt_ and 32 bytes in base64url", s.Token)
	}
	got, err := e.svc.Authenticate(ctx, s.Token)
	if err != nil || got != acct {
		t.Errorf("Authenticate() = %+v, %v, want %+v", got, err, acct)
	}
	// Two logins give two independent sessions.
	s2 := e.login(alice)
	if s2.Token == s.Token {
		t.Error("two logins returned the same token")
	}
}

func TestChallengeDoesNotRevealAccounts(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	e.register(newUser(t, "alice"))
	known := e.challenge("alice")
	unknown := e.challenge("nobody")
	if known.Audience != unknown.Audience || !known.Expires.Equal(unknown.Expires) || known.Nonce == unknown.Nonce {
		t.Errorf("Challenge(known) = %+v, Challenge(unknown) = %+v, want the same shape with fresh nonces", known, unknown)
	}
}

func TestLoginFailures(t *testing.T) {
	// Every failure is ErrBadLogin, whatever failed.
	type attempt struct {
		username string
		nonce    [32]byte
		sig      keys.Signature
	}
	tests := []struct {
		name  string
		setup func(e *env, alice, bob user) attempt
	}{
		{"wrong key", func(e *env, alice, bob user) attempt {
			c := e.challenge("alice")
			mallory := newUser(t, "alice")
			return attempt{"alice", c.Nonce, mallory.sign(audience, c.Nonce)}
		}},
		{"replayed nonce", func(e *env, alice, _ user) attempt {
			c := e.challenge("alice")
			sig := alice.sign(audience, c.Nonce)
			if _, err := e.svc.Login(ctx, "alice", c.Nonce, sig); err != nil {
				t.Fatalf("first Login() = %v", err)
			}
			return attempt{"alice", c.Nonce, sig}
		}},
		{"nonce used by a failed attempt", func(e *env, alice, _ user) attempt {
			c := e.challenge("alice")
			if _, err := e.svc.Login(ctx, "alice", c.Nonce, keys.Signature{}); !errors.Is(err, accounts.ErrBadLogin) {
				t.Fatalf("Login(zero signature) = %v, want ErrBadLogin", err)
			}
			return attempt{"alice", c.Nonce, alice.sign(audience, c.Nonce)}
		}},
		{"expired nonce", func(e *env, alice, _ user) attempt {
			c := e.challenge("alice")
			e.clock.Advance(2 * time.Minute)
			return attempt{"alice", c.Nonce, alice.sign(audience, c.Nonce)}
		}},
		{"nonce issued for another user", func(e *env, alice, bob user) attempt {
			c := e.challenge("bob")
			return attempt{"alice", c.Nonce, alice.sign(audience, c.Nonce)}
		}},
		{"nonce never issued", func(_ *env, alice, _ user) attempt {
			var nonce [32]byte
			nonce[0] = 1
			return attempt{"alice", nonce, alice.sign(audience, nonce)}
		}},
		{"signature under another label", func(e *env, alice, _ user) attempt {
			c := e.challenge("alice")
			sig := alice.key.Sign(wire.LabelNodeRecord, accounts.LoginMessage(audience, "alice", c.Nonce))
			return attempt{"alice", c.Nonce, sig}
		}},
		{"signature for another node", func(e *env, alice, _ user) attempt {
			c := e.challenge("alice")
			return attempt{"alice", c.Nonce, alice.sign("12D3KooWOtherNode", c.Nonce)}
		}},
		{"signature over another username", func(e *env, alice, bob user) attempt {
			c := e.challenge("alice")
			return attempt{"alice", c.Nonce, alice.key.Sign(wire.LabelAccountLogin, accounts.LoginMessage(audience, "bob", c.Nonce))}
		}},
		{"unknown user", func(e *env, _, _ user) attempt {
			ghost := newUser(t, "ghost")
			c := e.challenge("ghost")
			return attempt{"ghost", c.Nonce, ghost.sign(audience, c.Nonce)}
		}},
		{"bad username", func(e *env, alice, _ user) attempt {
			c := e.challenge("alice")
			return attempt{"Alice", c.Nonce, alice.sign(audience, c.Nonce)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, accounts.Config{})
			alice, bob := newUser(t, "alice"), newUser(t, "bob")
			e.register(alice)
			e.register(bob)
			before := e.metric("parley_accounts_logins_total", "failed")
			a := tt.setup(e, alice, bob)
			s, err := e.svc.Login(ctx, a.username, a.nonce, a.sig)
			if !errors.Is(err, accounts.ErrBadLogin) || err.Error() != accounts.ErrBadLogin.Error() {
				t.Errorf("Login() = %+v, %v, want exactly ErrBadLogin", s, err)
			}
			if s.Token != "" {
				t.Errorf("failed Login() returned a token")
			}
			after := e.metric("parley_accounts_logins_total", "failed")
			if after <= before {
				t.Errorf("logins_total{result=failed} = %v, want above %v", after, before)
			}
		})
	}
}

func TestSuspendedCanLogIn(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice := newUser(t, "alice")
	e.register(alice)
	if err := e.svc.Suspend(ctx, alice.id(), "spam"); err != nil {
		t.Fatal(err)
	}
	s := e.login(alice)
	if !s.Account.Suspended || s.Account.SuspendReason != "spam" {
		t.Errorf("Login(suspended).Account = %+v, want Suspended with reason", s.Account)
	}
	a, err := e.svc.Authenticate(ctx, s.Token)
	if err != nil || !a.Suspended {
		t.Errorf("Authenticate(suspended) = %+v, %v, want the account with Suspended", a, err)
	}
}

func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, accounts.Config{TokenTTL: time.Hour})
	alice := newUser(t, "alice")
	e.register(alice)
	s := e.login(alice)
	e.clock.Advance(time.Hour - time.Millisecond)
	if _, err := e.svc.Authenticate(ctx, s.Token); err != nil {
		t.Errorf("Authenticate(just before expiry) = %v, want nil", err)
	}
	e.clock.Advance(time.Millisecond)
	if _, err := e.svc.Authenticate(ctx, s.Token); !errors.Is(err, accounts.ErrUnauthenticated) {
		t.Errorf("Authenticate(expired) = %v, want ErrUnauthenticated", err)
	}
	// Deleted lazily, with its index entry.
	if n := e.count(store.PrefixToken) + e.count(store.PrefixAccountTokens); n != 0 {
		t.Errorf("records left after an expired token was presented = %d, want 0", n)
	}
	if got := e.metric("parley_accounts_active_tokens", ""); got != 0 {
		t.Errorf("parley_accounts_active_tokens = %v, want 0", got)
	}
}

func TestAuthenticateMalformed(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice := newUser(t, "alice")
	e.register(alice)
	good := e.login(alice).Token
	body := strings.TrimPrefix(good, "pt_")
	tests := []string{
		"",
		"pt_",
		"pt_" + body[:42],
		"pt_" + body + "A",
		"PT_" + body,
		"pi_" + body,
		body,
		"pt_" + strings.Repeat("A", 43), // well formed, unknown
		"pt_" + body[:42] + "=",
		"pt_" + strings.Repeat("*", 43),
		"Bearer " + good,
		good + "\n",
		" " + good,
		strings.Repeat("x", 1<<16),
	}
	for _, tok := range tests {
		if _, err := e.svc.Authenticate(ctx, tok); !errors.Is(err, accounts.ErrUnauthenticated) {
			t.Errorf("Authenticate(%.50q) = %v, want ErrUnauthenticated", tok, err)
		}
		if err := e.svc.Revoke(ctx, tok); err != nil {
			t.Errorf("Revoke(%.50q) = %v, want nil", tok, err)
		}
	}
	if _, err := e.svc.Authenticate(ctx, good); err != nil {
		t.Errorf("Authenticate(good) after the bad ones = %v, want nil", err)
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice := newUser(t, "alice")
	e.register(alice)
	s1, s2 := e.login(alice), e.login(alice)
	if err := e.svc.Revoke(ctx, s1.Token); err != nil {
		t.Fatalf("Revoke() = %v", err)
	}
	if _, err := e.svc.Authenticate(ctx, s1.Token); !errors.Is(err, accounts.ErrUnauthenticated) {
		t.Errorf("Authenticate(revoked) = %v, want ErrUnauthenticated", err)
	}
	if _, err := e.svc.Authenticate(ctx, s2.Token); err != nil {
		t.Errorf("Authenticate(other session) = %v, want nil", err)
	}
	if err := e.svc.Revoke(ctx, s1.Token); err != nil {
		t.Errorf("Revoke(again) = %v, want nil", err)
	}
	if got, want := e.count(store.PrefixAccountTokens), 1; got != want {
		t.Errorf("token index entries = %d, want %d", got, want)
	}
}

func TestRevokeAll(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	e.register(alice)
	e.register(bob)
	as := []accounts.Session{e.login(alice), e.login(alice), e.login(alice)}
	bs := e.login(bob)
	n, err := e.svc.RevokeAll(ctx, alice.id())
	if err != nil || n != 3 {
		t.Fatalf("RevokeAll(alice) = %d, %v, want 3, nil", n, err)
	}
	for i, s := range as {
		if _, err := e.svc.Authenticate(ctx, s.Token); !errors.Is(err, accounts.ErrUnauthenticated) {
			t.Errorf("Authenticate(alice session %d) = %v, want ErrUnauthenticated", i, err)
		}
	}
	if _, err := e.svc.Authenticate(ctx, bs.Token); err != nil {
		t.Errorf("Authenticate(bob) = %v, want nil", err)
	}
	if n, err := e.svc.RevokeAll(ctx, alice.id()); err != nil || n != 0 {
		t.Errorf("RevokeAll(alice) again = %d, %v, want 0, nil", n, err)
	}
	// Alice can log in again.
	if _, err := e.svc.Authenticate(ctx, e.login(alice).Token); err != nil {
		t.Errorf("Authenticate(new alice session) = %v, want nil", err)
	}
}

func TestPurgeExpired(t *testing.T) {
	e := newEnv(t, accounts.Config{TokenTTL: time.Hour, InviteTTL: 2 * time.Hour})
	alice := newUser(t, "alice")
	e.register(alice)
	for range 3 {
		e.login(alice)
	}
	if _, _, err := e.svc.CreateInvite(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Minute)
	late := e.login(alice)
	if n, err := e.svc.PurgeExpired(ctx); err != nil || n != 0 {
		t.Errorf("PurgeExpired() before any expiry = %d, %v, want 0, nil", n, err)
	}
	e.clock.Advance(30 * time.Minute) // the first three expire
	if n, err := e.svc.PurgeExpired(ctx); err != nil || n != 3 {
		t.Errorf("PurgeExpired() = %d, %v, want 3, nil", n, err)
	}
	if got := e.count(store.PrefixToken) + e.count(store.PrefixAccountTokens); got != 2 {
		t.Errorf("token records left = %d, want 2", got)
	}
	if _, err := e.svc.Authenticate(ctx, late.Token); err != nil {
		t.Errorf("Authenticate(unexpired) after purge = %v, want nil", err)
	}
	e.clock.Advance(time.Hour) // the last token and the invite expire
	if n, err := e.svc.PurgeExpired(ctx); err != nil || n != 2 {
		t.Errorf("PurgeExpired() = %d, %v, want 2, nil", n, err)
	}
	for _, p := range []string{store.PrefixToken, store.PrefixAccountTokens, store.PrefixInvite} {
		if got := e.count(p); got != 0 {
			t.Errorf("records under %s after purge = %d, want 0", p, got)
		}
	}
}

func TestPurgeExpiredManyPages(t *testing.T) {
	e := newEnv(t, accounts.Config{TokenTTL: time.Hour})
	alice := newUser(t, "alice")
	e.register(alice)
	const n = 1200 // more than one purge page
	for range n {
		e.login(alice)
	}
	e.clock.Advance(time.Hour)
	if got, err := e.svc.PurgeExpired(ctx); err != nil || got != n {
		t.Errorf("PurgeExpired() = %d, %v, want %d, nil", got, err, n)
	}
	if got := e.count(store.PrefixToken); got != 0 {
		t.Errorf("tokens left = %d, want 0", got)
	}
}

func TestSuspendPersistsAcrossReopen(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	e.register(alice)
	e.register(bob)
	session := e.login(bob)
	if err := e.svc.Suspend(ctx, alice.id(), "sent spam"); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	a, err := e.svc.Get(ctx, alice.id())
	if err != nil || !a.Suspended || a.SuspendReason != "sent spam" {
		t.Errorf("Get(alice) after reopen = %+v, %v, want suspended for %q", a, err, "sent spam")
	}
	if got := e.metric("parley_accounts_suspended", ""); got != 1 {
		t.Errorf("parley_accounts_suspended after reopen = %v, want 1", got)
	}
	if got := e.metric("parley_accounts_active_tokens", ""); got != 1 {
		t.Errorf("parley_accounts_active_tokens after reopen = %v, want 1", got)
	}
	if _, err := e.svc.Authenticate(ctx, session.Token); err != nil {
		t.Errorf("Authenticate() after reopen = %v, want nil", err)
	}
	if err := e.svc.Unsuspend(ctx, alice.id()); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	a, err = e.svc.Get(ctx, alice.id())
	if err != nil || a.Suspended || a.SuspendReason != "" {
		t.Errorf("Get(alice) after unsuspend and reopen = %+v, %v, want not suspended", a, err)
	}
	if got := e.metric("parley_accounts_suspended", ""); got != 0 {
		t.Errorf("parley_accounts_suspended = %v, want 0", got)
	}
}

func TestSuspendErrors(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice := newUser(t, "alice")
	e.register(alice)
	tests := []struct {
		name   string
		id     keys.AccountID
		reason string
		want   error
	}{
		{"unknown", newUser(t, "x").id(), "r", accounts.ErrNotFound},
		{"long reason", alice.id(), strings.Repeat("r", accounts.MaxReason+1), accounts.ErrBadReason},
		{"not utf-8", alice.id(), "bad \xff", accounts.ErrBadReason},
		{"longest reason", alice.id(), strings.Repeat("r", accounts.MaxReason), nil},
		{"again, new reason", alice.id(), "", nil},
	}
	for _, tt := range tests {
		if err := e.svc.Suspend(ctx, tt.id, tt.reason); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: Suspend() = %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := e.svc.Unsuspend(ctx, newUser(t, "x").id()); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("Unsuspend(unknown) = %v, want ErrNotFound", err)
	}
	if got := e.metric("parley_accounts_suspended", ""); got != 1 {
		t.Errorf("parley_accounts_suspended after suspending one account twice = %v, want 1", got)
	}
}

func TestChallengeBound(t *testing.T) {
	e := newEnv(t, accounts.Config{MaxChallenges: 3, ChallengeTTL: time.Minute})
	alice := newUser(t, "alice")
	e.register(alice)
	var cs []accounts.Challenge
	for range 5 {
		cs = append(cs, e.challenge("alice"))
	}
	if got := e.metric("parley_accounts_challenges", ""); got != 3 {
		t.Errorf("parley_accounts_challenges = %v, want 3", got)
	}
	if got := e.metric("parley_accounts_challenges_dropped_total", ""); got != 2 {
		t.Errorf("parley_accounts_challenges_dropped_total = %v, want 2", got)
	}
	for i, c := range cs {
		_, err := e.svc.Login(ctx, "alice", c.Nonce, alice.sign(audience, c.Nonce))
		if dropped := i < 2; dropped != errors.Is(err, accounts.ErrBadLogin) {
			t.Errorf("Login(challenge %d) = %v, want failure only for the two oldest", i, err)
		}
	}
	// Expired challenges make room without being counted as dropped.
	for range 3 {
		e.challenge("alice")
	}
	e.clock.Advance(time.Minute)
	for range 3 {
		e.challenge("alice")
	}
	if got := e.metric("parley_accounts_challenges_dropped_total", ""); got != 2 {
		t.Errorf("parley_accounts_challenges_dropped_total after expiry = %v, want still 2", got)
	}
}

func TestSecretsNeverStoredInClear(t *testing.T) {
	e := newEnv(t, accounts.Config{RegistrationMode: accounts.ModeInvite})
	var secrets [][]byte
	addSecret := func(text, prefix string) {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, prefix))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, []byte(text), raw, []byte(strings.TrimPrefix(text, prefix)))
	}
	for i := range 4 {
		inv, _, err := e.svc.CreateInvite(ctx)
		if err != nil {
			t.Fatal(err)
		}
		addSecret(inv, "pi_")
		if i%2 == 1 {
			continue // leave some invites unused
		}
		u := newUser(t, fmt.Sprint("user", i))
		if _, err := e.svc.Register(ctx, u.name, u.id(), inv); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			addSecret(e.login(u).Token, "pt_")
		}
	}
	// Every key and value in the store.
	records := 0
	err := e.st.Scan(nil, nil, 0, func(k, v []byte) bool {
		records++
		for _, s := range secrets {
			if bytes.Contains(k, s) || bytes.Contains(v, s) {
				t.Errorf("store record %q holds a secret", k)
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*2 + 4 + 2*6; records < want { // accounts, invites, tokens
		t.Errorf("store scan saw %d records, want at least %d", records, want)
	}
	// And every file of the database: the write-ahead log, tables, manifest.
	files, err := e.fs.List("/d")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		f, err := e.fs.Open("/d/" + name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("file %s holds a secret", name)
			}
		}
	}
}

func TestAdminLookups(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	var users []user
	for i := range 5 {
		u := newUser(t, fmt.Sprint("user", i))
		e.register(u)
		users = append(users, u)
	}
	a, err := e.svc.ByUsername(ctx, "user3")
	if err != nil || a.ID != users[3].id() {
		t.Errorf("ByUsername(user3) = %+v, %v, want %v", a, err, users[3].id())
	}
	if _, err := e.svc.ByUsername(ctx, "nobody"); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("ByUsername(nobody) = %v, want ErrNotFound", err)
	}
	if _, err := e.svc.ByUsername(ctx, "No"); !errors.Is(err, accounts.ErrBadUsername) {
		t.Errorf("ByUsername(No) = %v, want ErrBadUsername", err)
	}
	if _, err := e.svc.Get(ctx, newUser(t, "x").id()); !errors.Is(err, accounts.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}

	// Pages of two, in ID order, cover every account once.
	var got []keys.AccountID
	var after keys.AccountID
	for page := 0; ; page++ {
		list, err := e.svc.List(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 2 {
			t.Fatalf("List(limit 2) returned %d", len(list))
		}
		if len(list) == 0 {
			break
		}
		for _, a := range list {
			got = append(got, a.ID)
		}
		after = list[len(list)-1].ID
	}
	if len(got) != 5 {
		t.Fatalf("List pages returned %d accounts, want 5", len(got))
	}
	for i := 1; i < len(got); i++ {
		if bytes.Compare(got[i-1][:], got[i][:]) >= 0 {
			t.Errorf("List not in ID order at %d", i)
		}
	}
	for _, limit := range []int{0, -1, accounts.MaxList + 1} {
		if list, err := e.svc.List(ctx, keys.AccountID{}, limit); err != nil || len(list) != 5 {
			t.Errorf("List(limit %d) = %d accounts, %v, want 5", limit, len(list), err)
		}
	}
}

func TestLoginMessageLayout(t *testing.T) {
	// spec 09 §3: u8 1 || string16 audience || string16 username || fixed[32] nonce.
	var nonce [32]byte
	for i := range nonce {
		nonce[i] = byte(i)
	}
	got := hex.EncodeToString(accounts.LoginMessage("node", "bob", nonce))
	want := "01" + "0004" + hex.EncodeToString([]byte("node")) + "0003" + hex.EncodeToString([]byte("bob")) +
		hex.EncodeToString(nonce[:])
	if got != want {
		t.Errorf("LoginMessage() = %s, want %s", got, want)
	}
}

func TestRandomnessFailure(t *testing.T) {
	e := newEnv(t, accounts.Config{}, accounts.WithRand(failingReader{}))
	if _, err := e.svc.Challenge(ctx, "alice"); err == nil {
		t.Error("Challenge() with failing randomness = nil error, want one")
	}
	if _, _, err := e.svc.CreateInvite(ctx); err == nil {
		t.Error("CreateInvite() with failing randomness = nil error, want one")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestCanceledContext(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	alice := newUser(t, "alice")
	e.register(alice)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.svc.Register(cctx, "bob", newUser(t, "bob").id(), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Register(canceled) = %v, want context.Canceled", err)
	}
	if _, err := e.svc.Challenge(cctx, "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("Challenge(canceled) = %v, want context.Canceled", err)
	}
	if _, err := e.svc.PurgeExpired(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("PurgeExpired(canceled) = %v, want context.Canceled", err)
	}
}

func TestConcurrentSessions(t *testing.T) {
	e := newEnv(t, accounts.Config{})
	var users []user
	for i := range 4 {
		u := newUser(t, fmt.Sprint("user", i))
		e.register(u)
		users = append(users, u)
	}
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() {
			for range 10 {
				c, err := e.svc.Challenge(ctx, u.name)
				if err != nil {
					t.Error(err)
					return
				}
				s, err := e.svc.Login(ctx, u.name, c.Nonce, u.sign(audience, c.Nonce))
				if err != nil {
					t.Error(err)
					return
				}
				if a, err := e.svc.Authenticate(ctx, s.Token); err != nil || a.ID != u.id() {
					t.Errorf("Authenticate() = %v, %v, want %v", a.ID, err, u.id())
				}
				if err := e.svc.Revoke(ctx, s.Token); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := e.metric("parley_accounts_active_tokens", ""); got != 0 {
		t.Errorf("parley_accounts_active_tokens = %v, want 0", got)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, accounts.Config{RegistrationMode: accounts.ModeInvite, TokenTTL: time.Hour})
	inv, _, err := e.svc.CreateInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	if _, err := e.svc.Register(ctx, alice.name, alice.id(), inv); err != nil {
		t.Fatal(err)
	}
	inv2, _, err := e.svc.CreateInvite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("%s = %v, want %v", what, err, want)
		}
	}
	_, err = e.svc.Register(ctx, bob.name, bob.id(), inv)
	check("Register(used invite)", err, accounts.ErrBadInvite)
	_, err = e.svc.Register(ctx, "B", bob.id(), inv)
	check("Register(bad name)", err, accounts.ErrBadUsername)
	_, err = e.svc.Register(ctx, "alice", bob.id(), "")
	check("Register(no invite)", err, accounts.ErrBadInvite)
	_, err = e.svc.Register(ctx, "alice", bob.id(), inv2)
	check("Register(taken name)", err, accounts.ErrUsernameTaken)
	s := e.login(alice)
	e.login(alice)
	_, err = e.svc.Login(ctx, "alice", [32]byte{}, keys.Signature{})
	check("Login(bad signature)", err, accounts.ErrBadLogin)
	check("Revoke()", e.svc.Revoke(ctx, s.Token), nil)
	check("Suspend()", e.svc.Suspend(ctx, alice.id(), ""), nil)
	e.challenge("alice")

	want := `
# HELP parley_accounts_active_tokens Session tokens stored, including expired ones not yet purged.
# TYPE parley_accounts_active_tokens gauge
parley_accounts_active_tokens 1
# HELP parley_accounts_challenges Login challenges held in memory, including expired ones not yet dropped.
# TYPE parley_accounts_challenges gauge
parley_accounts_challenges 1
# HELP parley_accounts_challenges_dropped_total Unexpired login challenges dropped because max_challenges were outstanding.
# TYPE parley_accounts_challenges_dropped_total counter
parley_accounts_challenges_dropped_total 0
# HELP parley_accounts_logins_total Login attempts by result: ok or failed.
# TYPE parley_accounts_logins_total counter
parley_accounts_logins_total{result="failed"} 1
parley_accounts_logins_total{result="ok"} 2
# HELP parley_accounts_registrations_total Registration attempts by result: ok, taken, bad_invite, closed or invalid.
# TYPE parley_accounts_registrations_total counter
parley_accounts_registrations_total{result="bad_invite"} 2
parley_accounts_registrations_total{result="closed"} 0
parley_accounts_registrations_total{result="invalid"} 1
parley_accounts_registrations_total{result="ok"} 1
parley_accounts_registrations_total{result="taken"} 1
# HELP parley_accounts_suspended Accounts suspended.
# TYPE parley_accounts_suspended gauge
parley_accounts_suspended 1
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("GatherAndLint() = %v, %v, want no problems", problems, err)
	}
}
