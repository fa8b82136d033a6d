package store

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	s             *Store
	commits       prometheus.Counter
	lazyCommits   prometheus.Counter
	commitErrors  prometheus.Counter
	commitSeconds prometheus.Histogram
	fsyncsDesc    *prometheus.Desc
	diskBytesDesc *prometheus.Desc
}

func newMetrics(s *Store) *metrics {
	return &metrics{
		s: s,
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_store_commits_total", Help: "Synced batches committed to the store.",
		}),
		lazyCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_store_lazy_commits_total", Help: "Batches committed without waiting for a sync (idempotent writes such as acknowledgements).",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_store_commit_errors_total", Help: "Batches whose commit failed.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_store_commit_duration_seconds",
			Help:    "Time from commit to durable (synced) write.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		fsyncsDesc: prometheus.NewDesc("parley_store_fsyncs_total",
			"File syncs issued by the store; far fewer than commits under load (group commit).", nil, nil),
		diskBytesDesc: prometheus.NewDesc("parley_store_disk_bytes",
			"Bytes of the store's files on disk.", nil, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.commits.Describe(ch)
	m.lazyCommits.Describe(ch)
	m.commitErrors.Describe(ch)
	m.commitSeconds.Describe(ch)
	ch <- m.fsyncsDesc
	ch <- m.diskBytesDesc
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.commits.Collect(ch)
	m.lazyCommits.Collect(ch)
	m.commitErrors.Collect(ch)
	m.commitSeconds.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.fsyncsDesc, prometheus.CounterValue, float64(m.s.syncs.n.Load()))
	ch <- prometheus.MustNewConstMetric(m.diskBytesDesc, prometheus.GaugeValue, float64(m.s.db.Metrics().DiskSpaceUsage()))
}

// Syncs returns how many file syncs the store has issued.
func (s *Store) Syncs() int64 { return s.syncs.n.Load() }

// syncCounter counts Sync, SyncData and SyncTo calls on the store's files.
type syncCounter struct{ n atomic.Int64 }

type countingFS struct {
	vfs.FS
	c *syncCounter
}

func countSyncs(fs vfs.FS, c *syncCounter) vfs.FS { return countingFS{FS: fs, c: c} }

func (fs countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return countingFile{File: f, c: fs.c}, nil
}

func (fs countingFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, cat))
}

func (fs countingFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, cat, opts...))
}

func (fs countingFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, cat))
}

func (fs countingFS) OpenDir(name string) (vfs.File, error) { return fs.wrap(fs.FS.OpenDir(name)) }

// Unwrap lets pebble see through the wrapper.
func (fs countingFS) Unwrap() vfs.FS { return fs.FS }

type countingFile struct {
	vfs.File
	c *syncCounter
}

func (f countingFile) Sync() error { f.c.n.Add(1); return f.File.Sync() }

func (f countingFile) SyncData() error { f.c.n.Add(1); return f.File.SyncData() }

func (f countingFile) SyncTo(length int64) (bool, error) {
	f.c.n.Add(1)
	return f.File.SyncTo(length)
}
