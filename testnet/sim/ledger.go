package sim

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// ledger records every message a simulated user sends and every one a user
// receives, by a token unique to the message (in its text), so that the end
// of a run can check that every acknowledged message arrived exactly once.
type ledger struct {
	mu        sync.Mutex
	msgs      map[string]*msgEntry
	latencies []time.Duration                 // of first deliveries of acknowledged messages
	left      map[string]map[string]time.Time // room -> user -> when they started leaving
	dups      int
	strangers int // received tokens nobody sent
	acked     int
	delivered int // first deliveries

	firstSent     time.Time // the first send
	lastDelivered time.Time // the last first delivery
}

type msgEntry struct {
	from      string // the sender's name
	room      string
	sent      time.Time // when Send was called
	acked     bool
	stamped   time.Time // the node's stamp time, once acknowledged
	delivered int
}

func newLedger() *ledger {
	return &ledger{msgs: map[string]*msgEntry{}, left: map[string]map[string]time.Time{}}
}

// sending records an attempt before Send is called.
func (l *ledger) sending(token, from, room string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs[token] = &msgEntry{from: from, room: room, sent: now}
	if l.firstSent.IsZero() || now.Before(l.firstSent) {
		l.firstSent = now
	}
}

// ack records the node's acknowledgment of token.
func (l *ledger) ack(token string, stamped time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.msgs[token]; e != nil && !e.acked {
		e.acked, e.stamped = true, stamped
		l.acked++
		if e.delivered > 0 { // arrived before Send returned
			l.delivered++
		}
	}
}

// received records a delivery of token to user at now.
func (l *ledger) received(token string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.msgs[token]
	if e == nil {
		l.strangers++
		return
	}
	e.delivered++
	if e.delivered == 1 && now.After(l.lastDelivered) {
		l.lastDelivered = now
	}
	switch {
	case e.delivered > 1:
		l.dups++
	case e.acked:
		l.delivered++
		l.latencies = append(l.latencies, now.Sub(e.sent))
	default:
		l.latencies = append(l.latencies, now.Sub(e.sent))
	}
}

// leaving records that user is about to leave room: an acknowledged
// message to user stamped after this is not owed (the room closes; spec 12
// refuses envelopes stamped at or after the close).
func (l *ledger) leaving(user, room string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.left[room] == nil {
		l.left[room] = map[string]time.Time{}
	}
	if _, ok := l.left[room][user]; !ok {
		l.left[room][user] = now
	}
}

// owedLocked says whether e must be delivered exactly once.
func (l *ledger) owedLocked(e *msgEntry) bool {
	if !e.acked {
		return false
	}
	for user, t := range l.left[e.room] {
		if user != e.from && !e.stamped.Before(t) {
			return false // the recipient had left
		}
	}
	return true
}

// outstanding counts owed messages not delivered yet.
func (l *ledger) outstanding() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.msgs {
		if e.delivered == 0 && l.owedLocked(e) {
			n++
		}
	}
	return n
}

// Verdict is the end-of-run check.
type Verdict struct {
	Acked      int // messages the nodes acknowledged
	Owed       int // of those, the ones whose recipient was still in the room
	Delivered  int // owed messages delivered exactly once
	Missing    int // owed messages never delivered
	Duplicates int // deliveries beyond the first, of any message
	Strangers  int // received messages no simulated user sent
	Excused    int // acknowledged after the recipient left, not delivered
	// MissingSample names up to ten missing messages (sender/number, room).
	MissingSample []string
}

// OK reports whether every owed message arrived exactly once.
func (v Verdict) OK() bool { return v.Missing == 0 && v.Duplicates == 0 && v.Strangers == 0 }

func (v Verdict) String() string {
	word := "PASS"
	if !v.OK() {
		word = "FAIL"
	}
	return fmt.Sprintf("%s: %d acknowledged, %d owed, %d delivered exactly once, %d missing, %d duplicated, %d unknown; %d excused (the recipient had left)",
		word, v.Acked, v.Owed, v.Delivered, v.Missing, v.Duplicates, v.Strangers, v.Excused)
}

func (l *ledger) verdict() Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := Verdict{Acked: l.acked, Duplicates: l.dups, Strangers: l.strangers}
	for tok, e := range l.msgs {
		if !e.acked {
			continue
		}
		if !l.owedLocked(e) {
			if e.delivered == 0 {
				v.Excused++
			}
			continue
		}
		v.Owed++
		switch e.delivered {
		case 0:
			v.Missing++
			if len(v.MissingSample) < 10 {
				v.MissingSample = append(v.MissingSample, fmt.Sprintf("%s (room %s, stamped %s)", tok, e.room, e.stamped.Format("15:04:05.000")))
			}
		case 1:
			v.Delivered++
		}
	}
	return v
}

// counts returns acknowledged and first-delivered totals and the p50 and
// p99 delivery latency.
func (l *ledger) counts() (acked, delivered int, p50, p99 time.Duration) {
	l.mu.Lock()
	lat := slices.Clone(l.latencies)
	acked, delivered = l.acked, l.delivered
	l.mu.Unlock()
	return acked, delivered, percentile(lat, 0.50), percentile(lat, 0.99)
}

// rate is the first deliveries of acknowledged messages per second, from
// the first send to the last first delivery (0 before any).
func (l *ledger) rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	span := l.lastDelivered.Sub(l.firstSent)
	if l.delivered == 0 || span <= 0 {
		return 0
	}
	return float64(l.delivered) / span.Seconds()
}

// percentile is the nearest-rank percentile of d (0 when empty).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d))*p+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}
