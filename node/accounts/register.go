package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

// Register creates an account with username and the identity key id. In
// invite mode invite must be an unused, unexpired invite, which the same
// write consumes; in open mode invite is ignored (and not consumed).
//
// Errors: ErrRegistrationClosed, ErrBadUsername, ErrBadKey, ErrBadInvite,
// ErrUsernameTaken, ErrKeyTaken, checked in that order (a bad invite is
// refused before saying whether the username is taken).
func (s *Service) Register(ctx context.Context, username string, id keys.AccountID, invite string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	acct, result, err := s.register(ctx, username, id, invite)
	if result != "" {
		s.m.registrations.WithLabelValues(result).Inc()
	}
	if err != nil {
		return Account{}, err
	}
	s.log.Info("account registered", "account", id.String(), "username", username)
	return acct, nil
}

// register does Register's work and returns the metric result ("" for a
// store failure, which is not counted).
func (s *Service) register(ctx context.Context, username string, id keys.AccountID, invite string) (Account, string, error) {
	switch {
	case s.cfg.RegistrationMode == ModeClosed:
		return Account{}, "closed", ErrRegistrationClosed
	case !validUsername(username):
		return Account{}, "invalid", ErrBadUsername
	case id == keys.AccountID{}:
		return Account{}, "invalid", ErrBadKey
	}

	s.regMu.Lock()
	defer s.regMu.Unlock()
	now := s.now()
	var inviteKey, inviteVal []byte // the consumed invite, written with the account

	if s.cfg.RegistrationMode == ModeInvite {
		raw, ok := parseSecret(invitePrefix, invite)
		if !ok {
			return Account{}, "bad_invite", ErrBadInvite
		}
		h := hashSecret(raw)
		ik := store.Key(store.PrefixInvite, h[:])
		v, err := s.st.Get(ik)
		if errors.Is(err, store.ErrNotFound) {
			return Account{}, "bad_invite", ErrBadInvite
		}
		if err != nil {
			return Account{}, "", fmt.Errorf("accounts: reading invite: %w", err)
		}
		rec, err := decodeInvite(v)
		if err != nil {
			return Account{}, "", err
		}
		if rec.isUsed() || !now.Before(rec.expires) {
			return Account{}, "bad_invite", ErrBadInvite
		}
		rec.usedBy, rec.used = id, msTime(now)
		inviteKey, inviteVal = ik, rec.encode()
	}

	uk := store.Key(store.PrefixUsername, []byte(username))
	ak := store.Key(store.PrefixAccount, id[:])
	if taken, err := s.st.Has(uk); err != nil {
		return Account{}, "", fmt.Errorf("accounts: reading username: %w", err)
	} else if taken {
		return Account{}, "taken", ErrUsernameTaken
	}
	if taken, err := s.st.Has(ak); err != nil {
		return Account{}, "", fmt.Errorf("accounts: reading account: %w", err)
	} else if taken {
		return Account{}, "taken", ErrKeyTaken
	}
	rec := accountRecord{username: username, created: msTime(now)}
	b := s.st.NewBatch()
	if inviteKey != nil {
		b.Set(inviteKey, inviteVal)
	}
	b.Set(ak, rec.encode())
	b.Set(uk, id[:])
	if err := s.st.Commit(ctx, b); err != nil {
		return Account{}, "", fmt.Errorf("accounts: storing account: %w", err)
	}
	return rec.account(id), "ok", nil
}

// CreateInvite creates an invite token, valid for InviteTTL, for one
// registration in invite mode (an admin action). The token is a secret:
// hand it to the invitee; the node keeps only its hash.
func (s *Service) CreateInvite(ctx context.Context) (token string, expires time.Time, err error) {
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	raw, err := s.random32()
	if err != nil {
		return "", time.Time{}, err
	}
	h := hashSecret(raw)
	now := s.now()
	rec := inviteRecord{created: msTime(now), expires: msTime(now.Add(s.cfg.InviteTTL))}
	b := s.st.NewBatch()
	b.Set(store.Key(store.PrefixInvite, h[:]), rec.encode())
	if err := s.st.Commit(ctx, b); err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: storing invite: %w", err)
	}
	s.log.Info("invite created", "expires", rec.expires)
	return invitePrefix + b64.EncodeToString(raw[:]), rec.expires, nil
}

// purgeInvites deletes the invites that expired by now.
func (s *Service) purgeInvites(ctx context.Context, now time.Time) (int, error) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	var expired [][]byte
	var decodeErr error
	err := s.st.Scan([]byte(store.PrefixInvite), nil, 0, func(k, v []byte) bool {
		rec, err := decodeInvite(v)
		if err != nil {
			decodeErr = err
			return false
		}
		if !now.Before(rec.expires) {
			expired = append(expired, append([]byte(nil), k...))
		}
		return true
	})
	if err = errors.Join(err, decodeErr); err != nil {
		return 0, fmt.Errorf("accounts: purging invites: %w", err)
	}
	if len(expired) == 0 {
		return 0, nil
	}
	b := s.st.NewBatch()
	for _, k := range expired {
		b.Delete(k)
	}
	if err := s.st.Commit(ctx, b); err != nil {
		return 0, fmt.Errorf("accounts: purging invites: %w", err)
	}
	return len(expired), nil
}
