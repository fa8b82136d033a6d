package moderation_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/moderation"
	"github.com/parley-chat/parley/node/rooms"
	"github.com/parley-chat/parley/protocol/keys"
)

// pair stores a room of acct created at created that lasted d, closed by
// the partner if partnerLeft (else by acct), with msgs messages counted.
func (w *world) pair(t *testing.T, acct keys.AccountID, i int, created time.Time, d time.Duration, partnerLeft bool, msgs int) {
	t.Helper()
	var id keys.RoomID
	id[0], id[1], id[2] = acct[0], byte(i), byte(i>>8)
	mine, theirs := keys.TicketPublic{}, keys.TicketPublic{}
	mine.Sign[0], mine.DH[0] = 1, 1
	mine.Sign[1], mine.DH[1] = byte(i), byte(i)
	theirs.Sign[0], theirs.DH[0] = 2, 2
	rec := rooms.Record{ID: id, Created: created, Sides: [2]rooms.Side{
		{Ticket: mine, Home: keys.NodeID{1}, Account: acct, Local: true},
		{Ticket: theirs, Home: keys.NodeID{2}},
	}}
	if d > 0 {
		rec.Closed, rec.ClosedBy = created.Add(d), mine.Sign
		if partnerLeft {
			rec.ClosedBy = theirs.Sign
		}
	}
	b := w.st.NewBatch()
	if err := w.rooms.Put(b, rec); err != nil {
		t.Fatal(err)
	}
	if err := w.st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for range msgs {
		w.md.CountMessage(id)
	}
}

// spec 13-moderation §4: a scripted spammer (many short pairings that the
// partners leave at once, the same few messages) is throttled by its score;
// a user with long conversations is not.
func TestSignals(t *testing.T) {
	w := setup(t, moderation.Config{})
	ctx := context.Background()
	spammer, normal := keys.AccountID{0x51}, keys.AccountID{0x52}
	now := t0.Add(24 * time.Hour)
	w.clock.Set(now)
	for i := range 30 {
		w.pair(t, spammer, i, now.Add(-time.Duration(30-i)*90*time.Second), 8*time.Second, true, 1)
	}
	for i := range 12 {
		w.pair(t, normal, i, now.Add(-time.Duration(12-i)*time.Hour), 40*time.Minute, i%2 == 0, 60)
	}
	s, acts, err := w.md.CheckSignals(ctx, spammer)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rooms != 30 || s.Closed != 30 || s.QuickExits != 1 || s.ShortConversations != 1 || s.MedianSeconds != 8 || s.Messages != 30 || !s.Acts {
		t.Errorf("spammer's signals = %+v", s)
	}
	if s.Score < 0.7 || len(acts) != 1 || acts[0].Kind != moderation.KindThrottle {
		t.Errorf("spammer: score %.2f, actions %+v, want a throttle", s.Score, acts)
	}
	s, acts, err = w.md.CheckSignals(ctx, normal)
	if err != nil {
		t.Fatal(err)
	}
	if s.Score > 0.1 || len(acts) != 0 || s.QuickExits != 0 || s.MedianSeconds != 2400 {
		t.Errorf("normal user: signals %+v, actions %+v, want no action", s, acts)
	}
	if _, ok := w.md.Throttled(normal); ok {
		t.Error("the normal user is throttled")
	}
	// A second check does not throttle again.
	if _, acts, _ := w.md.CheckSignals(ctx, spammer); len(acts) != 0 {
		t.Errorf("second CheckSignals took %+v", acts)
	}
}
