package store_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/node/store"
)

// BenchmarkSyncedWrite1KiB measures durable 1 KiB writes per second on the
// real filesystem with 1, 16 and 256 concurrent writers, each write its own
// synced commit: the raw rate the node's message path is compared against.
func BenchmarkSyncedWrite1KiB(b *testing.B) {
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := store.Open(store.Config{Dir: b.TempDir()}, store.WithFS(vfs.Default))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			val := make([]byte, 1024)
			var seq atomic.Uint64
			syncs := s.Syncs()
			b.SetBytes(1024)
			b.SetParallelism((writers + 1) / 2) // RunParallel runs parallelism*GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := make([]byte, 10)
				for pb.Next() {
					key[0], key[1] = 'b', '/'
					binary.BigEndian.PutUint64(key[2:], seq.Add(1))
					batch := s.NewBatch()
					batch.Set(key, val)
					if err := s.Commit(context.Background(), batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			b.ReportMetric(float64(s.Syncs()-syncs)/float64(b.N), "fsyncs/write")
		})
	}
}
