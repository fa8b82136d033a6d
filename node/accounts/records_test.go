package accounts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

func TestRecordsRoundTrip(t *testing.T) {
	at := time.UnixMilli(1767225600123).UTC()
	id := keys.AccountID{1, 2, 3}
	accts := []accountRecord{
		{username: "alice", created: at},
		{username: "bob", created: at, suspended: true, reason: strings.Repeat("r", MaxReason)},
	}
	for _, r := range accts {
		if got, err := decodeAccount(r.encode()); err != nil || got != r {
			t.Errorf("decodeAccount(encode(%+v)) = %+v, %v", r, got, err)
		}
	}
	tok := tokenRecord{account: id, created: at, expires: at.Add(time.Hour)}
	if got, err := decodeToken(tok.encode()); err != nil || got != tok {
		t.Errorf("decodeToken(encode(%+v)) = %+v, %v", tok, got, err)
	}
	for _, r := range []inviteRecord{
		{created: at, expires: at.Add(time.Hour)},
		{created: at, expires: at.Add(time.Hour), usedBy: id, used: at.Add(time.Minute)},
	} {
		if got, err := decodeInvite(r.encode()); err != nil || got != r {
			t.Errorf("decodeInvite(encode(%+v)) = %+v, %v", r, got, err)
		}
	}
}

func TestRecordsCorrupt(t *testing.T) {
	good := accountRecord{username: "alice", created: time.UnixMilli(5).UTC()}.encode()
	withVersion := func(v byte) []byte { b := append([]byte(nil), good...); b[0] = v; return b }
	withFlags := append([]byte(nil), good...)
	withFlags[1+2+5+8] = 0x02
	tests := []struct {
		name   string
		decode func([]byte) error
		in     []byte
	}{
		{"empty account", func(b []byte) error { _, err := decodeAccount(b); return err }, nil},
		{"truncated account", func(b []byte) error { _, err := decodeAccount(b); return err }, good[:len(good)-1]},
		{"trailing bytes", func(b []byte) error { _, err := decodeAccount(b); return err }, append(append([]byte(nil), good...), 0)},
		{"version 2", func(b []byte) error { _, err := decodeAccount(b); return err }, withVersion(2)},
		{"unknown flag", func(b []byte) error { _, err := decodeAccount(b); return err }, withFlags},
		{"short token", func(b []byte) error { _, err := decodeToken(b); return err }, []byte{1, 0}},
		{"short invite", func(b []byte) error { _, err := decodeInvite(b); return err }, []byte{1}},
	}
	for _, tt := range tests {
		if err := tt.decode(tt.in); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: decode = %v, want wire.ErrMalformed", tt.name, err)
		}
	}
}
