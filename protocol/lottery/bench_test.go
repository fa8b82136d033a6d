package lottery_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// benchNetwork issues size tickets spread over nodes, stamped in batches of
// at most 1,000 per node.
func benchNetwork(b *testing.B, nodes, size int) *network {
	b.Helper()
	r := rng("bench")
	n := newNetwork(b, r, 1, nodes)
	per := size / nodes
	for i := range nodes {
		for done := 0; done < per; done += 1000 {
			n.issue(b, r, i, min(1000, per-done), nil, nil)
		}
	}
	return n
}

func benchMatch(b *testing.B, size int) {
	ts := bareTickets(rng("bench match"), size)
	s := 0
	for b.Loop() {
		s++
		if pairs, _ := lottery.Match(seedN(s), ts); len(pairs) != size/2 {
			b.Fatalf("Match = %d pairs, want %d", len(pairs), size/2)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(size), "ns/ticket")
}

// BenchmarkMatch10k matches 10,000 pre-built tickets.
func BenchmarkMatch10k(b *testing.B) { benchMatch(b, 10_000) }

// BenchmarkMatch100k matches 100,000 pre-built tickets.
func BenchmarkMatch100k(b *testing.B) { benchMatch(b, 100_000) }

// BenchmarkDraw10k draws a whole epoch: 10 nodes' commits and reveals and
// 10,000 tickets stamped in batches of 1,000, every stamp verified (one
// signature check per batch).
func BenchmarkDraw10k(b *testing.B) {
	in := benchNetwork(b, 10, 10_000).inputs()
	for b.Loop() {
		res, err := lottery.Draw(in)
		if err != nil || len(res.Pairs) != 5000 {
			b.Fatalf("Draw = %v", err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10_000, "ns/ticket")
}

// BenchmarkTicketVerify verifies one ticket's stamp alone (batch of 1,000:
// a 10-hash Merkle path and one signature).
func BenchmarkTicketVerify(b *testing.B) {
	tk := benchNetwork(b, 1, 1000).tickets[42]
	for b.Loop() {
		if err := tk.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the raw primitive under TicketVerify, for
// comparison.
func BenchmarkEd25519Verify(b *testing.B) {
	k, err := keys.GenerateNodeKey(rng("bench raw"))
	if err != nil {
		b.Fatal(err)
	}
	pub := k.Public()
	msg := make([]byte, 128)
	sig := ed25519.Sign(ed25519.NewKeyFromSeed(k.Seed()), msg)
	for b.Loop() {
		if !ed25519.Verify(pub[:], msg, sig) {
			b.Fatal("bad signature")
		}
	}
}
