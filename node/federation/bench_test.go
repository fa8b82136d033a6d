package federation_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/node/internal/storetest"
)

// BenchmarkDrain measures the delivery path alone (spec 12-delivery §5),
// without clients or the client API: A's outbox holds b.N envelopes of
// 1 KiB for B, queued while B was down, in 64 rooms; B starts and the
// benchmark times until A's outbox is empty. The stores are in memory, so
// this is the path's CPU, not the disk. It reports msgs/s, the process's
// CPU per message and envelopes per Batch.
//
//	go test -run '^$' -bench Drain -benchtime 20000x ./node/federation
func BenchmarkDrain(b *testing.B) {
	const rooms = 64
	text := string(make([]byte, 1024))
	bKey := newKey(b)
	bDisk := storetest.New(b, nil)
	nb := start(b, bKey, bDisk, nodeOpts{cfg: testCfg()})
	na := start(b, newKey(b), nil, nodeOpts{cfg: testCfg()})
	na.knows(nb)
	pairs := make([]*member, rooms)
	for i := range pairs {
		pairs[i], _ = pairAcross(b, na, nb, byte(i))
	}
	nb.stop()
	for i := range b.N {
		send(b, pairs[i%rooms], fmt.Sprint(i), text)
	}
	b.SetBytes(1024)
	cpu0 := processCPU()
	b.ResetTimer()
	nb = start(b, bKey, bDisk, nodeOpts{cfg: testCfg()})
	na.knows(nb)
	deadline := time.Now().Add(10 * time.Minute)
	for na.ob.Depth(nb.id) > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d envelopes left after 10 minutes", na.ob.Depth(nb.id))
		}
		time.Sleep(time.Millisecond) // a benchmark's wait, not an assertion
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/msg")
	// B writes only Acks: 21 bytes each with its prefix, and 2 per result.
	env := metric(b, nb.reg, "parley_federation_envelopes_received_total", "stored")
	acks := (metric(b, nb.reg, "parley_federation_sent_bytes_total") - 2*env) / 21
	if acks > 0 {
		b.ReportMetric(env/acks, "env/batch")
	}
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
