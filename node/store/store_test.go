package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parley-chat/parley/node/store"
)

func open(t testing.TB, fs vfs.FS, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := store.Open(store.Config{Dir: "/data"}, append([]store.Option{store.WithFS(fs)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t testing.TB, s *store.Store, kv ...string) {
	t.Helper()
	b := s.NewBatch()
	for i := 0; i < len(kv); i += 2 {
		b.Set([]byte(kv[i]), []byte(kv[i+1]))
	}
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func TestGetSetScan(t *testing.T) {
	s := open(t, vfs.NewMem())
	defer s.Close()
	put(t, s, "m/a/1", "one", "m/a/2", "two", "m/a/3", "three", "m/b/1", "other", "n", "x")
	if v, err := s.Get([]byte("m/a/2")); err != nil || string(v) != "two" {
		t.Fatalf("Get(m/a/2) = %q, %v, want two", v, err)
	}
	if _, err := s.Get([]byte("m/a/9")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
	var got []string
	err := s.Scan([]byte("m/a/"), []byte("m/a/1"), 0, func(k, v []byte) bool {
		got = append(got, string(k)+"="+string(v))
		return true
	})
	if err != nil || strings.Join(got, ",") != "m/a/2=two,m/a/3=three" {
		t.Fatalf("Scan(m/a/ after 1) = %v, %v", got, err)
	}
	got = nil
	_ = s.Scan([]byte("m/"), nil, 2, func(k, v []byte) bool { got = append(got, string(k)); return true })
	if strings.Join(got, ",") != "m/a/1,m/a/2" {
		t.Fatalf("Scan(m/, limit 2) = %v", got)
	}
	b := s.NewBatch()
	b.DeleteRange([]byte("m/a/"), store.PrefixEnd([]byte("m/a/")))
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has([]byte("m/a/1")); ok {
		t.Fatal("DeleteRange left m/a/1")
	}
	if ok, _ := s.Has([]byte("m/b/1")); !ok {
		t.Fatal("DeleteRange removed m/b/1")
	}
}

func TestCommitHonoursCancelledContext(t *testing.T) {
	s := open(t, vfs.NewMem())
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := s.NewBatch()
	b.Set([]byte("k"), []byte("v"))
	if err := s.Commit(ctx, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit(cancelled) = %v, want context.Canceled", err)
	}
	if ok, _ := s.Has([]byte("k")); ok {
		t.Fatal("a cancelled commit wrote")
	}
}

func TestPrefixEnd(t *testing.T) {
	cases := []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
	}
	for _, c := range cases {
		if got := store.PrefixEnd(c.in); string(got) != string(c.want) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", c.in, got, c.want)
		}
	}
}

func TestConfigValidateReportsAll(t *testing.T) {
	err := store.Config{CacheBytes: -1, MemTableBytes: 10}.Validate()
	for _, want := range []string{"dir is required", "cache_bytes", "memtable_bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// slowSyncFS is an in-memory filesystem whose syncs take as long as a
// disk's, so that commits queue behind them as they do on a real device.
type slowSyncFS struct{ vfs.FS }

type slowSyncFile struct{ vfs.File }

func (f slowSyncFile) Sync() error {
	time.Sleep(time.Millisecond) // simulated device latency, not synchronisation
	return f.File.Sync()
}

func (f slowSyncFile) SyncData() error { return f.Sync() }

func (f slowSyncFile) SyncTo(n int64) (bool, error) { return true, f.Sync() }

func (fs slowSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return slowSyncFile{f}, nil
}

func (fs slowSyncFS) ReuseForWrite(o, n string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(o, n, c)
	if err != nil {
		return nil, err
	}
	return slowSyncFile{f}, nil
}

// Concurrent commits share syncs: far fewer fsyncs than commits.
func TestGroupCommit(t *testing.T) {
	s := open(t, slowSyncFS{vfs.NewMem()})
	defer s.Close()
	before := s.Syncs()
	const writers, each = 64, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				put(t, s, fmt.Sprintf("k/%d/%d", w, i), "v")
			}
		}()
	}
	wg.Wait()
	syncs := s.Syncs() - before
	if syncs <= 0 || syncs >= writers*each/2 {
		t.Fatalf("%d commits took %d syncs, want between 1 and %d (group commit)", writers*each, syncs, writers*each/2)
	}
	t.Logf("%d commits, %d syncs", writers*each, syncs)
}

// Crash at random moments while writers commit: after reopening, every
// commit that returned is there (nothing acknowledged is lost).
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 5; round++ {
		fs := vfs.NewCrashableMem()
		s := open(t, fs)
		var acked sync.Map
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := fmt.Sprintf("k/%d/%06d", w, i)
					b := s.NewBatch()
					b.Set([]byte(k), []byte("value "+k))
					if err := s.Commit(context.Background(), b); err != nil {
						t.Error(err)
						return
					}
					acked.Store(k, true)
					n.Add(1)
				}
			}()
		}
		for n.Load() < int64(200+round*100) {
			// Let the writers run until enough commits are acknowledged.
			runtimeGosched()
		}
		// Snapshot the acknowledged set, then the crash image: everything
		// acknowledged before the clone must be in it.
		var want []string
		acked.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rng})
		close(stop)
		wg.Wait()
		_ = s.Close()

		s2 := open(t, crashed)
		for _, k := range want {
			v, err := s2.Get([]byte(k))
			if err != nil || string(v) != "value "+k {
				t.Fatalf("round %d: acknowledged %s lost after crash: %q, %v", round, k, v, err)
			}
		}
		_ = s2.Close()
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := open(t, vfs.NewMem(), store.WithRegisterer(reg))
	defer s.Close()
	put(t, s, "a", "b")
	put(t, s, "c", "d")
	if got := counterValue(reg, "parley_store_commits_total"); got != 2 {
		t.Fatalf("parley_store_commits_total = %v, want 2", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("metric lint: %v %v", problems, err)
	}
	if n, err := testutil.GatherAndCount(reg, "parley_store_fsyncs_total", "parley_store_commit_duration_seconds"); err != nil || n != 2 {
		t.Fatalf("GatherAndCount = %d, %v", n, err)
	}
}
