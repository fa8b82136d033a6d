package reports

import (
	"context"
	"fmt"
	"time"

	"github.com/parley-chat/parley/node/store"
)

// expireChunk is how many reports one step of Expire reads (and at most
// deletes in one write).
const expireChunk = 1024

// expireEvery is how often Run expires resolved reports.
const expireEvery = time.Hour

// Expire deletes the reports resolved before resolvedBefore, with the
// disclosures (and so the plaintext) they hold, and returns how many
// (spec 13-moderation §2.4). Open reports stay, however old: only an
// operator's resolution lets one go. A record that does not decode is left
// for the operator and logged.
func (r *Reports) Expire(ctx context.Context, resolvedBefore time.Time) (int, error) {
	total := 0
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		r.mu.Lock() // Resolve rewrites records: not while deciding on them
		b := r.st.NewBatch()
		n, scanned := 0, 0
		err := r.st.Scan([]byte(store.PrefixReport), after, expireChunk, func(k, v []byte) bool {
			scanned++
			after = append(after[:0], k...)
			s, _, err := decodeStored(k[len(store.PrefixReport):], v)
			if err != nil {
				r.log.Error("a stored report does not decode; kept", "report", fmt.Sprintf("%x", k[len(store.PrefixReport):]), "err", err)
				return true
			}
			if s.IsResolved() && s.Resolved.Before(resolvedBefore) {
				b.Delete(k)
				n++
			}
			return true
		})
		if err == nil && n > 0 {
			err = r.st.Commit(ctx, b)
		} else {
			b.Close()
		}
		r.mu.Unlock()
		if err != nil {
			return total, fmt.Errorf("reports: expiring: %w", err)
		}
		total += n
		r.m.expired.Add(float64(n))
		if scanned < expireChunk {
			return total, nil
		}
	}
}

// Run deletes, every hour until ctx ends, the reports resolved more than
// retention ago (Expire). It returns nil when ctx ends.
func (r *Reports) Run(ctx context.Context, retention time.Duration) error {
	t := time.NewTicker(expireEvery)
	defer t.Stop()
	for {
		n, err := r.Expire(ctx, r.now().Add(-retention))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.log.Error("expiring resolved reports", "err", err)
		case n > 0:
			r.log.Info("expired resolved reports", "reports", n, "retention", retention.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
