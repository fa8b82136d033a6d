package lotterynet_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/internal/poll"
	"github.com/parley-chat/parley/node/lotterynet"
	"github.com/parley-chat/parley/node/pairing"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/lottery"
)

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNetworkEpoch (issue 5): 10 in-process nodes on loopback, 2s
// epochs (the default phases), 1,000 fresh users per node asking in each
// of 3 consecutive epochs, at a steady pace over the epoch's first 4/5:
// 10,000 tickets per epoch. The users' ticket
// keys are made before the measurement (that is the clients' work). It
// reports the tickets drawn per epoch, the share of users paired in the
// epoch they asked in and within 2 epochs (waited at most one more), the
// p99 of the epochs waited, the pairs confirmed between two nodes and
// their share of all pairs, and the process CPU time per node per epoch
// (all 10 nodes and the requests share one process, so this is an upper
// bound of one node's cost). b.N is ignored: one run is 3 epochs and 3
// more to settle (about 14 s).
func BenchmarkNetworkEpoch(b *testing.B) {
	const (
		nodeCount = 10
		perNode   = 1000
		epochs    = 3
		askers    = 8 // concurrent clients per node
	)
	cfg := lotterynet.Config{EpochLength: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var nodes []*node
	for range nodeCount {
		nodes = append(nodes, newNodeWith(ctx, b, cfg))
	}
	connectAll(b, peersOf(nodes))
	meshed(b, peersOf(nodes))
	run(b, nodes)

	// The clients' keys, made beforehand: [epoch][node][user].
	tks := make([][][]keys.TicketPublic, epochs)
	for k := range tks {
		tks[k] = make([][]keys.TicketPublic, nodeCount)
		for i := range tks[k] {
			tks[k][i] = make([]keys.TicketPublic, perNode)
			for j := range tks[k][i] {
				tk, err := keys.GenerateTicketKeys(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				tks[k][i][j] = tk.Public()
			}
		}
	}

	e0 := epochOf(cfg, time.Now()) + 1
	poll.Until(b, "the first measured epoch starts", func() bool { return epochOf(cfg, time.Now()) >= e0 })
	cpu0 := cpuTime()
	for k := range uint64(epochs) {
		if k > 0 {
			poll.Until(b, "the next epoch starts", func() bool { return epochOf(cfg, time.Now()) >= e0+k })
		}
		// The users of an epoch ask at a steady pace over its first 4/5
		// (clients do not all ask at one instant).
		begin := epochStart(cfg, e0+k)
		var wg sync.WaitGroup
		for i, n := range nodes {
			for a := range askers {
				wg.Go(func() {
					for j := a; j < perNode; j += askers {
						if d := time.Until(begin.Add(time.Duration(j) * cfg.EpochLength * 4 / 5 / perNode)); d > 0 {
							time.Sleep(d) // pacing the load, not synchronising
						}
						var acct keys.AccountID
						acct[0], acct[1], acct[6] = byte(i), byte(k), 0xac // never the zero account
						binary.BigEndian.PutUint32(acct[2:], uint32(j))
						if _, err := n.lt.RequestTicket(ctx, acct, pairing.TicketRequest{Keys: tks[k][i][j]}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
		}
		wg.Wait()
		if late := epochOf(cfg, time.Now()); late != e0+k {
			b.Logf("requests of epoch %d finished in epoch %d", e0+k, late)
		}
	}
	last := e0 + epochs - 1
	// Let the last epochs' tickets (and those that roll over) be drawn.
	poll.Until(b, "the measured epochs are processed", func() bool { return epochOf(cfg, time.Now()) >= last+3 })
	cpu := cpuTime() - cpu0
	b.StopTimer()

	drawn, crossPairs, samePairs := 0, 0, 0
	for e := e0; e <= last+1; e++ {
		if e <= last {
			// The draw of the first node that drew the epoch.
			for i, n := range nodes {
				rep, err := n.lt.Audit(ctx, e)
				if err != nil {
					b.Logf("node %d: Audit(%d) = %v", i, e, err)
					continue
				}
				drawn += 2*len(rep.Result.Pairs) + len(rep.Result.Unmatched)
				break
			}
		}
		// Pairs confirmed, each counted once (both home nodes store it).
		seen := map[lottery.Pair]bool{}
		for _, n := range nodes {
			in, pairs, err := n.lt.EpochInputs(ctx, e)
			if err != nil {
				continue
			}
			home := map[[32]byte]keys.NodeID{}
			for _, t := range in.Tickets {
				home[t.ID()] = t.Home
			}
			for _, p := range pairs {
				if seen[p] {
					continue
				}
				seen[p] = true
				if home[p.A] != home[p.B] {
					crossPairs++
				} else {
					samePairs++
				}
			}
		}
	}
	// What became of the gossip, summed over the nodes.
	results := map[string]float64{}
	for _, n := range nodes {
		mfs, err := n.reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			if name := mf.GetName(); name == "parley_lottery_net_messages_total" || name == "parley_lottery_net_confirms_total" {
				for _, m := range mf.GetMetric() {
					if v := m.GetCounter().GetValue(); v > 0 {
						results[m.GetLabel()[0].GetValue()+"/"+m.GetLabel()[1].GetValue()] += v
					}
				}
			}
		}
	}
	b.Logf("gossip and confirmations (all nodes): %v", results)
	// Epochs waited, from every node's histogram.
	var total, atOnce, within1 float64
	for _, n := range nodes {
		mfs, err := n.reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "parley_pairing_wait_epochs" {
				continue
			}
			h := mf.GetMetric()[0].GetHistogram()
			total += float64(h.GetSampleCount())
			for _, bk := range h.GetBucket() {
				switch bk.GetUpperBound() {
				case 0:
					atOnce += float64(bk.GetCumulativeCount())
				case 1:
					within1 += float64(bk.GetCumulativeCount())
				}
			}
		}
	}
	asked := float64(nodeCount * perNode * epochs)
	p99 := "> 1"
	switch {
	case atOnce >= 0.99*asked:
		p99 = "0"
	case within1 >= 0.99*asked:
		p99 = "1"
	}
	crossShare := 0.0
	if crossPairs+samePairs > 0 {
		crossShare = float64(crossPairs) / float64(crossPairs+samePairs)
	}
	b.ReportMetric(float64(drawn)/epochs, "tickets/epoch")
	b.ReportMetric(atOnce/asked, "paired-at-once")
	b.ReportMetric(within1/asked, "paired-within-2-epochs")
	b.ReportMetric(float64(crossPairs), "cross-node-pairs")
	b.ReportMetric(crossShare, "cross-node-share")
	b.ReportMetric(float64(cpu.Milliseconds())/nodeCount/epochs, "cpu-ms/node/epoch")
	b.Logf("%d nodes, %d tickets asked per epoch: %.0f drawn per epoch, %.4f paired in their epoch, %.4f within 2 epochs, %.4f in all; p99 epochs waited %s; %d cross-node pairs and %d same-node pairs confirmed (%.3f cross-node); CPU %v in all, %.0f ms per node per epoch",
		nodeCount, nodeCount*perNode, float64(drawn)/epochs, atOnce/asked, within1/asked, total/asked, p99,
		crossPairs, samePairs, crossShare, cpu, float64(cpu.Milliseconds())/nodeCount/epochs)
}
