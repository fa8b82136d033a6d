package reports_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/reports"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/wire"
)

func TestGet(t *testing.T) {
	w := setup(t)
	r := reports.New(w.st, w.rs, func() time.Time { return w.now })
	ctx := context.Background()
	rc, err := r.Submit(ctx, w.acctA, w.disclosure(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, rc.ID)
	if err != nil || got.ID != rc.ID || got.Reporter != w.acctA || !got.Received.Equal(w.now) || string(got.Disclosure.Items[0].Plaintext) != "you are awful" {
		t.Fatalf("Get(%x) = %+v, %v, want the stored report", rc.ID, got, err)
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		id   [32]byte
		want error
	}{
		{"unknown", ctx, [32]byte{1}, reports.ErrNoReport},
		{"canceled", canceled(), rc.ID, context.Canceled},
	} {
		if _, err := r.Get(tc.ctx, tc.id); !errors.Is(err, tc.want) {
			t.Errorf("Get(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// Reports stored by the first version (u8 1, reporter, received,
// disclosure) still read.
func TestGetVersion1(t *testing.T) {
	w := setup(t)
	d := w.disclosure(t)
	enc, _ := d.MarshalBinary()
	e := wire.NewEncoder(0)
	e.U8(1)
	e.Fixed(w.acctA[:])
	e.I64(w.now.UnixMilli())
	e.Bytes32(enc)
	id := [32]byte{7}
	b := w.st.NewBatch()
	b.Set(store.Key(store.PrefixReport, id[:]), e.Bytes())
	if err := w.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got, err := reports.New(w.st, w.rs, nil).Get(context.Background(), id)
	if err != nil || got.Reporter != w.acctA || got.IsResolved() || got.AccusedLocal || len(got.Disclosure.Items) != 1 {
		t.Fatalf("Get(v1 record) = %+v, %v", got, err)
	}
}
