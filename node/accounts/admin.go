package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
)

// Get returns the account id, or ErrNotFound.
func (s *Service) Get(ctx context.Context, id keys.AccountID) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	rec, err := s.getAccount(id)
	if err != nil {
		return Account{}, err
	}
	return rec.account(id), nil
}

func (s *Service) getAccount(id keys.AccountID) (accountRecord, error) {
	v, err := s.st.Get(store.Key(store.PrefixAccount, id[:]))
	if errors.Is(err, store.ErrNotFound) {
		return accountRecord{}, ErrNotFound
	}
	if err != nil {
		return accountRecord{}, fmt.Errorf("accounts: reading account: %w", err)
	}
	return decodeAccount(v)
}

// ByUsername returns the account with username name, or ErrNotFound. A
// name that breaks the username rules is ErrBadUsername.
func (s *Service) ByUsername(ctx context.Context, name string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	if !validUsername(name) {
		return Account{}, ErrBadUsername
	}
	id, ok, err := s.idByUsername(name)
	if err != nil {
		return Account{}, err
	}
	if !ok {
		return Account{}, ErrNotFound
	}
	return s.Get(ctx, id)
}

// List returns up to limit accounts in ID order, starting after the
// account ID after (the zero ID: from the first). A limit outside 1 to
// MaxList means MaxList. To page, pass the last ID of one page as after of
// the next.
func (s *Service) List(ctx context.Context, after keys.AccountID, limit int) ([]Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 || limit > MaxList {
		limit = MaxList
	}
	prefix := []byte(store.PrefixAccount)
	var out []Account
	var decodeErr error
	err := s.st.Scan(prefix, store.Key(store.PrefixAccount, after[:]), limit, func(k, v []byte) bool {
		rec, err := decodeAccount(v)
		if err != nil {
			decodeErr = err
			return false
		}
		var id keys.AccountID
		copy(id[:], k[len(prefix):])
		out = append(out, rec.account(id))
		return true
	})
	if err = errors.Join(err, decodeErr); err != nil {
		return nil, fmt.Errorf("accounts: listing: %w", err)
	}
	return out, nil
}

// Suspend marks the account id suspended, with reason (at most MaxReason
// bytes of UTF-8; it replaces an earlier reason). Its sessions stay valid:
// a suspended account may log in and read, and the callers refuse its
// actions. Unknown id: ErrNotFound.
func (s *Service) Suspend(ctx context.Context, id keys.AccountID, reason string) error {
	if !validReason(reason) {
		return ErrBadReason
	}
	return s.setSuspended(ctx, id, true, reason)
}

// Unsuspend lifts the account's suspension and clears its reason. Unknown
// id: ErrNotFound.
func (s *Service) Unsuspend(ctx context.Context, id keys.AccountID) error {
	return s.setSuspended(ctx, id, false, "")
}

func (s *Service) setSuspended(ctx context.Context, id keys.AccountID, suspended bool, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	rec, err := s.getAccount(id)
	if err != nil {
		return err
	}
	was := rec.suspended
	rec.suspended, rec.reason = suspended, reason
	b := s.st.NewBatch()
	b.Set(store.Key(store.PrefixAccount, id[:]), rec.encode())
	if err := s.st.Commit(ctx, b); err != nil {
		return fmt.Errorf("accounts: storing account: %w", err)
	}
	switch {
	case suspended && !was:
		s.m.suspended.Inc()
	case !suspended && was:
		s.m.suspended.Dec()
	}
	if suspended {
		s.log.Info("account suspended", "account", id.String())
	} else {
		s.log.Info("account unsuspended", "account", id.String())
	}
	return nil
}
