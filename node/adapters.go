package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/node/accounts"
	"github.com/parley-chat/parley/node/api"
	"github.com/parley-chat/parley/protocol/keys"
)

// The adapters below present the subsystems to node/api through the small
// interfaces api declares, translating types and wrapping the subsystems'
// errors with api's sentinels (api maps those to status codes; anything
// unwrapped is a 500 whose cause is logged, never sent).

// mapErr wraps err with the first api sentinel whose subsystem error it
// matches.
func mapErr(err error, table map[error]error) error {
	if err == nil {
		return nil
	}
	for from, to := range table {
		if errors.Is(err, from) {
			return fmt.Errorf("%w: %w", to, err)
		}
	}
	return err
}

var accountErrors = map[error]error{
	accounts.ErrBadUsername:        api.ErrBadRequest,
	accounts.ErrBadKey:             api.ErrBadRequest,
	accounts.ErrUsernameTaken:      api.ErrUsernameTaken,
	accounts.ErrKeyTaken:           api.ErrKeyTaken,
	accounts.ErrBadInvite:          api.ErrBadInvite,
	accounts.ErrRegistrationClosed: api.ErrRegistrationClosed,
	accounts.ErrBadLogin:           api.ErrUnauthenticated,
	accounts.ErrUnauthenticated:    api.ErrUnauthenticated,
	accounts.ErrNotFound:           api.ErrUnauthenticated,
}

type accountsAdapter struct {
	s    *accounts.Service
	node keys.NodeID
}

var _ api.Accounts = accountsAdapter{}

func apiAccount(a accounts.Account) api.Account {
	return api.Account{ID: a.ID, Username: a.Username, Created: a.Created, Suspended: a.Suspended}
}

func (a accountsAdapter) Register(ctx context.Context, username string, id keys.AccountID, invite string) (api.Account, error) {
	acct, err := a.s.Register(ctx, username, id, invite)
	return apiAccount(acct), mapErr(err, accountErrors)
}

func (a accountsAdapter) Challenge(ctx context.Context, username string) (api.Challenge, error) {
	c, err := a.s.Challenge(ctx, username)
	if err != nil {
		return api.Challenge{}, mapErr(err, accountErrors)
	}
	return api.Challenge{Nonce: c.Nonce, Audience: a.node, Expires: c.Expires}, nil
}

func (a accountsAdapter) Login(ctx context.Context, username string, nonce [32]byte, sig keys.Signature) (api.Session, error) {
	s, err := a.s.Login(ctx, username, nonce, sig)
	if err != nil {
		return api.Session{}, mapErr(err, accountErrors)
	}
	return api.Session{Token: s.Token, Expires: s.Expires, Account: apiAccount(s.Account)}, nil
}

func (a accountsAdapter) Authenticate(ctx context.Context, token string) (api.Account, error) {
	acct, err := a.s.Authenticate(ctx, token)
	return apiAccount(acct), mapErr(err, accountErrors)
}

func (a accountsAdapter) Revoke(ctx context.Context, token string) error {
	return mapErr(a.s.Revoke(ctx, token), accountErrors)
}
