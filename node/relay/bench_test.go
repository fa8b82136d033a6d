package relay_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/node/relay"
	"github.com/parley-chat/parley/protocol/envelope"
)

// BenchmarkSend1KiB measures the node's send path on the real filesystem:
// Send from its checks to the durable, synced write into the recipient's
// mailbox, with 1, 16 and 256 concurrent senders, each in its own room and
// sending one message after another. Messages have 988 bytes of content,
// which pads to a 1 KiB inner plaintext (a 1040-byte ciphertext). Compare
// with node/store's BenchmarkSyncedWrite1KiB, the raw synced-write rate.
//
// Reported: msgs/s, the p50 and p99 latency of Send in milliseconds, and
// fsyncs per message. Envelopes are sealed before the timer starts: sealing
// is the clients' work, not the node's.
func BenchmarkSend1KiB(b *testing.B) {
	content := make([]byte, 1024-envelope.InnerOverhead)
	for _, senders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			f := newFixture(b, relay.Config{}, vfs.Default)
			work := make([][]*envelope.Envelope, senders)
			ps := make([]*pair, senders)
			for i := range senders {
				ps[i] = f.pair(b, account(byte(i), 1), account(byte(i), 2))
				n := b.N / senders
				if i < b.N%senders {
					n++
				}
				for range n {
					env, err := ps[i].a.room.Seal(envelope.ContentText, content, f.now, rand.Reader)
					if err != nil {
						b.Fatal(err)
					}
					work[i] = append(work[i], env)
				}
			}
			f.start(b)
			lat := make([][]time.Duration, senders)
			syncs := f.st.Syncs()
			b.SetBytes(int64(len(content)))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i := range senders {
				wg.Go(func() {
					d := make([]time.Duration, 0, len(work[i]))
					for j, env := range work[i] {
						t := time.Now()
						if _, err := f.relay.Send(context.Background(), ps[i].a.acct, fmt.Sprint(j), env); err != nil {
							b.Error(err)
							return
						}
						d = append(d, time.Since(t))
					}
					lat[i] = d
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			pct := func(p float64) float64 {
				if len(all) == 0 {
					return 0
				}
				return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(f.st.Syncs()-syncs)/float64(b.N), "fsyncs/msg")
		})
	}
}
