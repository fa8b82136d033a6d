package accounts

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// The stored records and their encodings (layout in the package doc).

const recordVersion = 1

const flagSuspended = 1 << 0

// accountRecord is the value under acct/<id>.
type accountRecord struct {
	username  string
	created   time.Time
	suspended bool
	reason    string
}

func (r accountRecord) encode() []byte {
	e := wire.NewEncoder(1 + 2 + len(r.username) + 8 + 1 + 2 + len(r.reason))
	e.U8(recordVersion)
	e.String16(r.username)
	e.I64(r.created.UnixMilli())
	var flags uint8
	if r.suspended {
		flags |= flagSuspended
	}
	e.U8(flags)
	e.String16(r.reason)
	return e.Bytes()
}

func decodeAccount(b []byte) (accountRecord, error) {
	d := wire.NewDecoder("account record", b)
	d.Version(recordVersion)
	var r accountRecord
	r.username = d.Field("username").String16(MaxUsername)
	r.created = time.UnixMilli(d.Field("created").I64()).UTC()
	flags := d.Field("flags").U8()
	if flags&^flagSuspended != 0 {
		d.Fail("unknown flags %#x", flags)
	}
	r.suspended = flags&flagSuspended != 0
	r.reason = d.Field("suspend_reason").String16(MaxReason)
	if err := d.Finish(); err != nil {
		return accountRecord{}, fmt.Errorf("accounts: corrupt record: %w", err)
	}
	return r, nil
}

func (r accountRecord) account(id keys.AccountID) Account {
	return Account{ID: id, Username: r.username, Created: r.created, Suspended: r.suspended, SuspendReason: r.reason}
}

// tokenRecord is the value under tok/<hash>.
type tokenRecord struct {
	account keys.AccountID
	created time.Time
	expires time.Time
}

func (r tokenRecord) encode() []byte {
	e := wire.NewEncoder(1 + 32 + 8 + 8)
	e.U8(recordVersion)
	e.Fixed(r.account[:])
	e.I64(r.created.UnixMilli())
	e.I64(r.expires.UnixMilli())
	return e.Bytes()
}

func decodeToken(b []byte) (tokenRecord, error) {
	d := wire.NewDecoder("token record", b)
	d.Version(recordVersion)
	var r tokenRecord
	d.Field("account").Fixed(r.account[:])
	r.created = time.UnixMilli(d.Field("created").I64()).UTC()
	r.expires = time.UnixMilli(d.Field("expires").I64()).UTC()
	if err := d.Finish(); err != nil {
		return tokenRecord{}, fmt.Errorf("accounts: corrupt record: %w", err)
	}
	return r, nil
}

// inviteRecord is the value under inv/<hash>.
type inviteRecord struct {
	created time.Time
	expires time.Time
	usedBy  keys.AccountID // zero: unused
	used    time.Time      // zero time stored as 0
}

func (r inviteRecord) isUsed() bool { return r.usedBy != keys.AccountID{} }

func (r inviteRecord) encode() []byte {
	e := wire.NewEncoder(1 + 8 + 8 + 32 + 8)
	e.U8(recordVersion)
	e.I64(r.created.UnixMilli())
	e.I64(r.expires.UnixMilli())
	e.Fixed(r.usedBy[:])
	var used int64
	if r.isUsed() {
		used = r.used.UnixMilli()
	}
	e.I64(used)
	return e.Bytes()
}

func decodeInvite(b []byte) (inviteRecord, error) {
	d := wire.NewDecoder("invite record", b)
	d.Version(recordVersion)
	var r inviteRecord
	r.created = time.UnixMilli(d.Field("created").I64()).UTC()
	r.expires = time.UnixMilli(d.Field("expires").I64()).UTC()
	d.Field("used_by").Fixed(r.usedBy[:])
	if used := d.Field("used").I64(); r.isUsed() {
		r.used = time.UnixMilli(used).UTC()
	}
	if err := d.Finish(); err != nil {
		return inviteRecord{}, fmt.Errorf("accounts: corrupt record: %w", err)
	}
	return r, nil
}

// validReason reports whether reason may be stored as a suspension reason.
func validReason(reason string) bool {
	return len(reason) <= MaxReason && utf8.ValidString(reason)
}
