package moderation

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
)

// Signals are an account's spam signals (spec 13-moderation §4): facts
// about its pairings, never about content, and the score they add up to.
type Signals struct {
	// Rooms is the number of rooms created within Config.SignalWindow.
	Rooms int
	// RoomsLastHour is the number of rooms created within the last hour:
	// the pairing churn.
	RoomsLastHour int
	// Closed is the number of those rooms that are closed.
	Closed int
	// MedianSeconds is the median length of the closed rooms, in seconds.
	MedianSeconds float64
	// ShortConversations is the share (0 to 1) of closed rooms that lasted
	// less than Config.ShortConversation.
	ShortConversations float64
	// QuickExits is the share (0 to 1) of closed rooms that the partner
	// left within Config.ShortPairing.
	QuickExits float64
	// Messages is the number of messages the node counted in the rooms
	// (in memory since the node started), and Counted the number of rooms
	// with a count.
	Messages, Counted int
	// Reporters is the number of distinct reporters that count now.
	Reporters int
	// Score is the spam score, 0 to 1: the mean of four parts, each 0 to
	// 1: churn (RoomsLastHour / Config.ChurnHigh, at most 1),
	// ShortConversations, QuickExits, and reports (Reporters /
	// Config.ThrottleReporters, at most 1; 0 if that threshold is off).
	Score float64
	// Acts reports whether the score may act: Rooms is at least
	// Config.ScoreMinRooms.
	Acts bool
}

// Signals computes acct's spam signals now.
func (md *Moderation) Signals(ctx context.Context, acct keys.AccountID) (Signals, error) {
	recs, err := md.rooms.ForAccount(ctx, acct)
	if err != nil {
		return Signals{}, err
	}
	md.mu.Lock()
	ids, err := md.countingReports(acct)
	counts := make(map[keys.RoomID]uint32)
	for _, r := range recs {
		if n, ok := md.counts[r.ID]; ok {
			counts[r.ID] = n
		}
	}
	md.mu.Unlock()
	if err != nil {
		return Signals{}, err
	}
	now := md.now()
	from, hour := now.Add(-md.cfg.SignalWindow), now.Add(-time.Hour)
	var s Signals
	s.Reporters = len(ids)
	var lengths []time.Duration
	short, quick := 0, 0
	for _, r := range recs {
		if !r.Created.After(from) {
			continue
		}
		s.Rooms++
		if r.Created.After(hour) {
			s.RoomsLastHour++
		}
		if n, ok := counts[r.ID]; ok {
			s.Messages += int(n)
			s.Counted++
		}
		if !r.IsClosed() {
			continue
		}
		s.Closed++
		d := r.Closed.Sub(r.Created)
		lengths = append(lengths, d)
		if d < md.cfg.ShortConversation {
			short++
		}
		if _, partner, ok := r.SideOf(acct); ok && r.ClosedBy == partner.Ticket.Sign && d < md.cfg.ShortPairing {
			quick++
		}
	}
	if s.Closed > 0 {
		s.ShortConversations = float64(short) / float64(s.Closed)
		s.QuickExits = float64(quick) / float64(s.Closed)
		s.MedianSeconds = median(lengths).Seconds()
	}
	churn := min(float64(s.RoomsLastHour)/float64(md.cfg.ChurnHigh), 1)
	reports := 0.0
	if md.cfg.ThrottleReporters > 0 {
		reports = min(float64(s.Reporters)/float64(md.cfg.ThrottleReporters), 1)
	}
	s.Score = (churn + s.ShortConversations + s.QuickExits + reports) / 4
	s.Acts = s.Rooms >= md.cfg.ScoreMinRooms
	return s, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// CheckSignals computes acct's signals, records the score in the
// parley_moderation_spam_score histogram and, if the score may act and
// reaches Config.ScoreSuspend or Config.ScoreThrottle, suspends or
// throttles the account (once: an account already suspended or throttled
// is left as it is). The node calls it when one of the account's rooms
// closes.
func (md *Moderation) CheckSignals(ctx context.Context, acct keys.AccountID) (Signals, []Action, error) {
	s, err := md.Signals(ctx, acct)
	if err != nil {
		return s, nil, err
	}
	md.m.score.Observe(s.Score)
	if !s.Acts {
		return s, nil, nil
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	ids, err := md.countingReports(acct)
	if err != nil {
		return s, nil, err
	}
	reason := "spam score " + formatScore(s.Score)
	var out []Action
	if md.cfg.ScoreSuspend > 0 && s.Score >= md.cfg.ScoreSuspend {
		acts, err := md.autoSuspend(ctx, acct, reason, ids)
		if err != nil {
			return s, out, err
		}
		out = append(out, acts...)
	}
	if md.cfg.ScoreThrottle > 0 && s.Score >= md.cfg.ScoreThrottle {
		acts, err := md.autoThrottle(ctx, acct, reason, ids)
		if err != nil {
			return s, out, err
		}
		out = append(out, acts...)
	}
	return s, out, nil
}

func formatScore(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }
