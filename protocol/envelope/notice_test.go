package envelope

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/spec/vectortest"
)

// Spec 03-envelope §8.1: a close notice encodes and parses as an envelope,
// passes the node's header checks, is recognised as a notice after a
// round trip, and carries the stamp of the node that made it.
func TestCloseNotice(t *testing.T) {
	nk, err := keys.GenerateNodeKey(vectortest.Rand("notice node"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := keys.GenerateTicketKeys(vectortest.Rand("notice a"))
	b, _ := keys.GenerateTicketKeys(vectortest.Rand("notice b"))
	now := time.Unix(1_800_000_000, 0)
	n := CloseNotice(keys.RoomID{1}, a.Public().Sign, b.Public().Sign, now)
	if err := CheckHeader(&n.Header, now); err != nil {
		t.Fatalf("CheckHeader(notice) = %v", err)
	}
	if err := StampBatch(nk, now, []*Envelope{n}); err != nil {
		t.Fatal(err)
	}
	enc, err := n.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(enc)
	if err != nil {
		t.Fatalf("Parse(notice) = %v", err)
	}
	if !got.IsCloseNotice() {
		t.Error("a parsed close notice is not recognised")
	}
	if err := got.VerifyStamp(nk.Public()); err != nil {
		t.Errorf("VerifyStamp = %v", err)
	}
	got.Header.Seq = 7
	if got.IsCloseNotice() {
		t.Error("an envelope with sequence 7 is taken for a close notice")
	}
}
