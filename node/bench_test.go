package node_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/node"
	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/api"
	"github.com/parley-chat/parley/node/nodekey"
	"github.com/parley-chat/parley/node/ratelimit"
	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/room"
)

// benchConcurrency is the issue-3 benchmark's sender (and raw writer) counts.
var benchConcurrency = []int{1, 16, 256}

// benchContent is a 1 KiB message: 1024 bytes of inner plaintext, as in
// node/relay's BenchmarkSend1KiB (a 1040-byte ciphertext).
var benchContent = make([]byte, 1024-envelope.InnerOverhead)

// BenchmarkEndToEnd1KiB is issue 3's benchmark: messages per second and the
// p50/p99 latency from one client's send to the other client's sync, through
// a real node in process (HTTP on loopback, pebble on the real filesystem),
// 1 KiB messages, with 1, 16 and 256 concurrent senders, each in its own
// room with its own receiver. It first measures, in the same run, pebble's
// raw synced-batch write rate with as many concurrent writers (raw-store),
// each write its own synced commit, as the reference.
//
// Each sender seals (room.Seal) and sends its share of b.N messages one
// after another, waiting for each answer; each receiver records when each
// message arrives, and acknowledges what it got. Two transports
// (spec 09 §5, §6): transport=http sends with POST .../messages, receives
// with long-poll GET /v1/sync and acknowledges each batch with POST
// /v1/ack; transport=ws does all three on each client's sync WebSocket
// (receivers acknowledge every 32 messages). Reported for senders=N:
//
//   - msgs/s: messages delivered to the receivers per second;
//   - p50-ms, p99-ms: from just before the send to the receipt;
//   - send-ack-p50-ms, send-ack-p99-ms: how long a send took to be
//     answered (the node answers after the synced write);
//   - fsyncs/msg and msgs/commit: the node store's fsyncs and synced
//     commits, from its metrics, per message (group commit at work);
//   - cpu-us/msg: the process's CPU time (clients, node and benchmark
//     together, user and system) per delivered message, so msgs/s that
//     two cores could give is about 2e6 / cpu-us/msg.
//
// The node and the paired accounts are set up once per senders=N, outside
// the timer, and shared by both transports' rounds; the node stops when
// senders=N ends. Run it with a fixed count so every round is comparable:
//
//	go test -run '^$' -bench EndToEnd -benchtime 20000x ./node
func BenchmarkEndToEnd1KiB(b *testing.B) {
	b.Run("raw-store", func(b *testing.B) {
		for _, writers := range benchConcurrency {
			b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchRawStore(b, writers) })
		}
	})
	for _, senders := range benchConcurrency {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			fx := &e2eFixture{}
			defer func() {
				if err := fx.stop(); err != nil {
					b.Errorf("stopping the node: %v", err)
				}
			}()
			fx.setUp(b, []string{b.TempDir()}, senders)
			b.Run("transport=http", func(b *testing.B) { fx.round(b, httpTransport{}) })
			b.Run("transport=ws", func(b *testing.B) { fx.round(b, &wsTransport{}) })
		})
	}
}

// BenchmarkFederated1KiB is issue 4's benchmark: two nodes in process,
// federated over libp2p on loopback, every sender on the first node and its
// partner on the second, 1 KiB messages: messages per second and p50/p99
// latency from the send to the receipt (over the sync WebSocket, as in
// BenchmarkEndToEnd1KiB's transport=ws, which it shares), with 1, 16 and
// 256 senders. The limits measured in the same run: raw-store (pebble's
// synced-batch writes, as in BenchmarkEndToEnd1KiB) and raw-libp2p (1 KiB
// writes on one libp2p stream between two hosts, TCP, Noise, yamux).
// msgs/commit and fsyncs/msg count both nodes' stores.
//
//	go test -run '^$' -bench Federated -benchtime 5000x ./node
func BenchmarkFederated1KiB(b *testing.B) {
	b.Run("raw-store/writers=256", func(b *testing.B) { benchRawStore(b, 256) })
	b.Run("raw-libp2p", benchRawLibp2p)
	for _, senders := range benchConcurrency {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			fx := &e2eFixture{}
			defer func() {
				if err := fx.stop(); err != nil {
					b.Errorf("stopping the nodes: %v", err)
				}
			}()
			fx.setUp(b, []string{b.TempDir(), b.TempDir()}, senders)
			b.Run("transport=ws", func(b *testing.B) { fx.round(b, &wsTransport{}) })
		})
	}
}

// rawLibp2p connects two libp2p hosts on loopback (TCP, Noise, yamux),
// the benchmarks' raw transport limit. open opens a stream of proto from
// the first to the second, which reads each stream to its end and then
// sends the byte count on got.
func rawLibp2p(b *testing.B, proto protocol.ID) (open func() network.Stream, got <-chan int64) {
	newHost := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = h.Close() })
		return h
	}
	src, dst := newHost(), newHost()
	counts := make(chan int64, 1)
	dst.SetStreamHandler(proto, func(s network.Stream) {
		n, _ := io.Copy(io.Discard, s)
		counts <- n
		_ = s.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	if err := src.Connect(ctx, peer.AddrInfo{ID: dst.ID(), Addrs: dst.Addrs()}); err != nil {
		b.Fatal(err)
	}
	return func() network.Stream {
		s, err := src.NewStream(ctx, dst.ID(), proto)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}, counts
}

// benchRawLibp2p writes b.N 1 KiB messages on one libp2p stream between two
// hosts on loopback and waits until the reader has them all.
func benchRawLibp2p(b *testing.B) {
	open, got := rawLibp2p(b, "/parley-bench/raw/1")
	s := open()
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for range b.N {
		if _, err := s.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	n := <-got
	b.StopTimer()
	if n != int64(b.N*len(msg)) {
		b.Fatalf("the reader got %d bytes, want %d", n, b.N*len(msg))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// share is worker i's part of n items split across workers.
func share(n, workers, i int) int {
	c := n / workers
	if i < n%workers {
		c++
	}
	return c
}

// benchRawStore commits b.N synced one-write batches of 1 KiB from writers
// goroutines into a fresh store on the real filesystem.
func benchRawStore(b *testing.B, writers int) {
	s, err := store.Open(store.Config{Dir: b.TempDir()}, store.WithFS(vfs.Default))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	}()
	val := make([]byte, 1024)
	var seq atomic.Uint64
	syncs := s.Syncs()
	b.SetBytes(int64(len(val)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range writers {
		n := share(b.N, writers, w)
		wg.Go(func() {
			key := []byte("bench/\x00\x00\x00\x00\x00\x00\x00\x00")
			for range n {
				binary.BigEndian.PutUint64(key[len("bench/"):], seq.Add(1))
				batch := s.NewBatch()
				batch.Set(key, val)
				if err := s.Commit(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64(s.Syncs()-syncs)/float64(b.N), "fsyncs/write")
}

// e2eFixture is one or two running nodes with paired accounts. setUp fills
// it in step by step, so stop can clean up after a setUp that failed half
// way.
type e2eFixture struct {
	nodes []*benchNode
	trs   []*http.Transport
	pairs []*e2ePair
}

// benchNode is a node of the fixture.
type benchNode struct {
	n      *node.Node
	url    string
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error // Run's result
}

// e2ePair is one room: from sends, to receives.
type e2ePair struct {
	from, to *client.Client
	room     *room.Room // the sender's side
	pos      uint64     // the receiver's sync position
}

// e2eUser is an account during setup.
type e2eUser struct {
	sender bool // on the first node, the side that sends
	c      *client.Client
	ticket keys.TicketKeys
	info   *client.Room
	pos    uint64
}

// setUp starts a node in each of dirs (the second bootstraps from the
// first) and pairs 2 × senders accounts: the senders on the first node,
// their partners on the last. With two nodes each pair shares an interest
// tag no one else has, so every room spans the two nodes.
func (fx *e2eFixture) setUp(b *testing.B, dirs []string, senders int) {
	b.Helper()
	for _, dir := range dirs {
		cfg := node.DefaultConfig()
		cfg.DataDir = dir
		cfg.Client.Listen, cfg.Operator.Listen = "127.0.0.1:0", "127.0.0.1:0"
		cfg.P2P.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
		if len(fx.nodes) > 0 {
			cfg.P2P.Bootstrap = fx.nodes[0].n.P2PAddrs()
		}
		cfg.Pairing.EpochLength = 200 * time.Millisecond
		// Every client is on 127.0.0.1 and sends as fast as it can: no
		// limiter may throttle the benchmark.
		unlimited := api.Rate{PerSecond: 1e9, Burst: 1 << 30}
		cfg.API.AccountRate, cfg.API.IPRate = unlimited, unlimited
		cfg.Federation.PeerRate, cfg.Federation.PeerBurst = 1e6, 1<<20
		cfg.Limits.Messages = ratelimit.Limit{Rate: 1e6, Burst: 1 << 20}
		if _, err := nodekey.Create(cfg.KeyFile(), nil); err != nil {
			b.Fatal(err)
		}
		if err := admin.CreateToken(cfg.AdminTokenFile(), nil); err != nil {
			b.Fatal(err)
		}
		bn := &benchNode{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
		n, err := node.New(cfg, node.WithRegistry(bn.reg))
		if err != nil {
			b.Fatal(err)
		}
		bn.n = n
		var ctx context.Context
		ctx, bn.cancel = context.WithCancel(context.Background())
		fx.nodes = append(fx.nodes, bn)
		go func() { bn.done <- n.Run(ctx) }()
		addrCtx, addrCancel := context.WithTimeout(ctx, 10*time.Second)
		addr, _, err := n.Addrs(addrCtx)
		addrCancel()
		if err != nil {
			b.Fatal(err)
		}
		bn.url = "http://" + addr
	}

	// One transport per client, as separate client programs have: a single
	// shared transport's lock was the benchmark's own bottleneck at 256
	// senders (mutex profile: net/http.Transport). stop closes them.
	newClient := func() *http.Client {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 4
		fx.trs = append(fx.trs, tr)
		return &http.Client{Transport: tr}
	}

	setupCtx, setupCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer setupCancel()
	users := make([]*e2eUser, 2*senders)
	hcs := make([]*http.Client, len(users))
	for i := range hcs {
		hcs[i] = newClient()
	}
	if err := forEach(len(users), 8, func(i int) error {
		home, interest := fx.nodes[0], ""
		if i%2 == 1 {
			home = fx.nodes[len(fx.nodes)-1]
		}
		if len(fx.nodes) > 1 {
			interest = fmt.Sprintf("pair %d", i/2)
		}
		u, err := newE2EUser(setupCtx, home.url, hcs[i], fmt.Sprintf("bench%04d", i), interest)
		users[i] = u
		u.sender = i%2 == 0
		return err
	}); err != nil {
		b.Fatal(err)
	}
	// Everyone waits for a partner; the lottery decides who meets whom.
	if err := forEach(len(users), len(users), func(i int) error { return users[i].waitPaired(setupCtx) }); err != nil {
		b.Fatal(err)
	}
	byRoom := make(map[keys.RoomID][]*e2eUser, senders)
	for _, u := range users {
		byRoom[u.info.ID] = append(byRoom[u.info.ID], u)
	}
	for id, us := range byRoom {
		if len(us) != 2 {
			b.Fatalf("room %v has %d of the benchmark's accounts, want 2", id, len(us))
		}
		if us[1].sender {
			us[0], us[1] = us[1], us[0]
		}
		if len(fx.nodes) > 1 && (!us[0].sender || us[1].sender) {
			// The draw prefers a shared interest but does not promise it
			// (a partner's ticket may land in the next epoch): this room
			// is on one node, so it takes no part. round reports pairs.
			continue
		}
		r, err := room.Derive(us[0].ticket, us[0].info.Partner.Public())
		if err != nil || r.ID() != id {
			b.Fatalf("room.Derive = %v, %v, want room %v", r, err, id)
		}
		fx.pairs = append(fx.pairs, &e2ePair{from: us[0].c, to: us[1].c, room: r, pos: us[1].pos})
	}
}

func newE2EUser(ctx context.Context, url string, hc *http.Client, name, interest string) (*e2eUser, error) {
	k, err := keys.GenerateAccountKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	u := &e2eUser{c: client.New(url, client.WithHTTPClient(hc))}
	if _, err := u.c.Register(ctx, name, k.Public(), ""); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	if _, err := u.c.Login(ctx, name, k); err != nil {
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	if u.ticket, err = keys.GenerateTicketKeys(rand.Reader); err != nil {
		return nil, err
	}
	req := client.PairRequest{Ticket: u.ticket.Public()}
	if interest != "" {
		if req.Interests, err = client.InterestTags([]string{interest}); err != nil {
			return nil, err
		}
	}
	if _, err := u.c.Pair(ctx, req); err != nil {
		return nil, fmt.Errorf("pair %s: %w", name, err)
	}
	return u, nil
}

// waitPaired long-polls sync until the paired event arrives, and
// acknowledges it.
func (u *e2eUser) waitPaired(ctx context.Context) error {
	for u.info == nil {
		res, err := u.c.Sync(ctx, u.pos, 100, 5*time.Second)
		if err != nil {
			return err
		}
		for _, ev := range res.Events {
			if ev.Kind == client.EventPaired {
				u.info = ev.RoomInfo
			}
		}
		u.pos = res.Next
	}
	return u.c.Ack(ctx, u.pos)
}

// forEach runs fn(0..n-1) on up to par goroutines and returns the errors.
func forEach(n, par int, fn func(i int) error) error {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		mu   sync.Mutex
		errs []error
	)
	for range min(n, par) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// benchTransport is how a round's clients send and receive: HTTP requests
// (POST .../messages, long-poll GET /v1/sync, POST /v1/ack) or the sync
// WebSocket (sends, pushed events and acks on one socket per client).
type benchTransport interface {
	// open prepares the pairs' connections, outside the timer.
	open(ctx context.Context, pairs []*e2ePair) error
	send(ctx context.Context, i int, p *e2ePair, txid string, env *envelope.Envelope) error
	// receive waits for events of pair i's receiver after p.pos, and
	// advances p.pos past them.
	receive(ctx context.Context, i int, p *e2ePair) ([]client.SyncEvent, error)
	// ack acknowledges what receive returned, at once or, when not
	// final, when the transport batches acks.
	ack(ctx context.Context, i int, p *e2ePair, final bool) error
	close()
}

type httpTransport struct{}

func (httpTransport) open(context.Context, []*e2ePair) error { return nil }
func (httpTransport) close()                                 {}

func (httpTransport) send(ctx context.Context, _ int, p *e2ePair, txid string, env *envelope.Envelope) error {
	_, err := p.from.Send(ctx, p.room.ID(), txid, env)
	return err
}

func (httpTransport) receive(ctx context.Context, _ int, p *e2ePair) ([]client.SyncEvent, error) {
	res, err := p.to.Sync(ctx, p.pos, 1000, 5*time.Second)
	if err != nil {
		return nil, err
	}
	p.pos = res.Next
	return res.Events, nil
}

func (httpTransport) ack(ctx context.Context, _ int, p *e2ePair, _ bool) error {
	return p.to.Ack(ctx, p.pos)
}

// wsTransport gives each client one sync WebSocket; receivers acknowledge
// every wsAckEvery events and at the end.
type wsTransport struct {
	from, to []*client.SyncStream
	unacked  []int
}

const wsAckEvery = 32

func (t *wsTransport) open(ctx context.Context, pairs []*e2ePair) error {
	t.from = make([]*client.SyncStream, len(pairs))
	t.to = make([]*client.SyncStream, len(pairs))
	t.unacked = make([]int, len(pairs))
	return forEach(len(pairs), 8, func(i int) (err error) {
		// The senders' mailboxes are empty after setUp.
		if t.from[i], err = pairs[i].from.SyncWS(ctx, 0); err != nil {
			return err
		}
		t.to[i], err = pairs[i].to.SyncWS(ctx, pairs[i].pos)
		return err
	})
}

func (t *wsTransport) close() {
	for _, ss := range [][]*client.SyncStream{t.from, t.to} {
		for _, s := range ss {
			if s != nil {
				_ = s.Close()
			}
		}
	}
}

func (t *wsTransport) send(ctx context.Context, i int, p *e2ePair, txid string, env *envelope.Envelope) error {
	_, err := t.from[i].Send(ctx, p.room.ID(), txid, env)
	return err
}

func (t *wsTransport) receive(ctx context.Context, i int, p *e2ePair) ([]client.SyncEvent, error) {
	ev, err := t.to[i].Next(ctx)
	if err != nil {
		return nil, err
	}
	p.pos = ev.Pos
	t.unacked[i]++
	return []client.SyncEvent{ev}, nil
}

func (t *wsTransport) ack(ctx context.Context, i int, p *e2ePair, final bool) error {
	if t.unacked[i] == 0 || (!final && t.unacked[i] < wsAckEvery) {
		return nil
	}
	t.unacked[i] = 0
	return t.to[i].Ack(ctx, p.pos)
}

// round sends b.N messages split across the pairs through tr and waits
// until every receiver has received all of its pair's.
func (fx *e2eFixture) round(b *testing.B, tr benchTransport) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var failed atomic.Bool
	fail := func(err error) {
		if !failed.Swap(true) { // the first error; the rest follow from it
			b.Error(err)
		}
		cancel() // unblock the others' long-polls and sends
	}
	pairs := fx.pairs
	// The clients' goroutines carry the label side=client (and those they
	// start inherit it), so a CPU profile tells the node's share from the
	// clients': go tool pprof -tagignore side=client (the node alone).
	var openErr error
	pprof.Do(ctx, clientLabels, func(ctx context.Context) { openErr = tr.open(ctx, pairs) })
	if openErr != nil {
		b.Fatal(openErr)
	}
	defer tr.close()
	sendLat := make([][]time.Duration, len(pairs))
	e2eLat := make([][]time.Duration, len(pairs))
	fsyncs0, commits0 := fx.counter("parley_store_fsyncs_total"), fx.counter("parley_store_commits_total")
	cpu0 := processCPU()
	b.SetBytes(int64(len(benchContent)))
	b.ResetTimer()
	base := time.Now()
	var wg sync.WaitGroup
	for i, p := range pairs {
		n := share(b.N, len(pairs), i)
		if n == 0 {
			continue
		}
		// starts[k] is when message k of this round was handed to Send,
		// as an offset from base; seq0 is the room sequence of message 0.
		starts := make([]atomic.Int64, n)
		seq0 := p.room.NextSendSeq()
		wg.Go(func() {
			pprof.Do(ctx, clientLabels, func(context.Context) {
				lat := make([]time.Duration, 0, n)
				defer func() { sendLat[i] = lat }()
				for range n {
					env, err := p.room.Seal(envelope.ContentText, benchContent, time.Now(), rand.Reader)
					if err != nil {
						fail(err)
						return
					}
					seq := env.Header.Seq
					t := time.Since(base)
					starts[seq-seq0].Store(int64(t))
					if err := tr.send(ctx, i, p, "m"+strconv.FormatUint(seq, 10), env); err != nil {
						fail(fmt.Errorf("send(seq %d) = %w", seq, err))
						return
					}
					lat = append(lat, time.Since(base)-t)
				}
			})
		})
		wg.Go(func() {
			pprof.Do(ctx, clientLabels, func(context.Context) {
				lat := make([]time.Duration, 0, n)
				defer func() { e2eLat[i] = lat }()
				seen := make([]bool, n)
				for len(lat) < n {
					evs, err := tr.receive(ctx, i, p)
					at := time.Since(base)
					if err != nil {
						fail(fmt.Errorf("receive(after %d) = %w, with %d of %d messages received", p.pos, err, len(lat), n))
						return
					}
					for _, ev := range evs {
						if ev.Kind != client.EventMessage || ev.Room != p.room.ID() {
							continue
						}
						env, err := envelope.Parse(ev.Envelope)
						if err != nil {
							fail(err)
							return
						}
						k := env.Header.Seq - seq0
						if env.Header.Seq < seq0 || k >= uint64(n) || seen[k] {
							fail(fmt.Errorf("received seq %d, want each of %d..%d once", env.Header.Seq, seq0, seq0+uint64(n)-1))
							return
						}
						seen[k] = true
						lat = append(lat, at-time.Duration(starts[k].Load()))
					}
					if len(evs) > 0 {
						if err := tr.ack(ctx, i, p, len(lat) == n); err != nil {
							fail(fmt.Errorf("ack(%d) = %w", p.pos, err))
							return
						}
					}
				}
			})
		})
	}
	wg.Wait()
	elapsed := time.Since(base)
	cpu := processCPU() - cpu0
	b.StopTimer()

	delivered := slices.Concat(e2eLat...)
	acked := slices.Concat(sendLat...)
	if len(delivered) == 0 {
		return
	}
	b.ReportMetric(float64(len(delivered))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(percentileMs(delivered, 0.50), "p50-ms")
	b.ReportMetric(percentileMs(delivered, 0.99), "p99-ms")
	b.ReportMetric(percentileMs(acked, 0.50), "send-ack-p50-ms")
	b.ReportMetric(percentileMs(acked, 0.99), "send-ack-p99-ms")
	fsyncs, commits := fx.counter("parley_store_fsyncs_total")-fsyncs0, fx.counter("parley_store_commits_total")-commits0
	b.ReportMetric(fsyncs/float64(len(delivered)), "fsyncs/msg")
	if commits > 0 {
		b.ReportMetric(float64(len(delivered))/commits, "msgs/commit")
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(delivered)), "cpu-us/msg")
	b.ReportMetric(float64(len(pairs)), "pairs")
}

// clientLabels marks the benchmark's client goroutines in CPU profiles.
var clientLabels = pprof.Labels("side", "client")

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentileMs sorts d and returns its p-quantile in milliseconds.
func percentileMs(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return float64(d[int(p*float64(len(d)-1))]) / float64(time.Millisecond)
}

// counter reads a counter from the nodes' registries, summed (0 if it is
// missing).
// Each synced commit of the store counts, the benchmark's own setup
// included, so read it before and after the timed part.
func (fx *e2eFixture) counter(name string) float64 {
	sum := 0.0
	for _, bn := range fx.nodes {
		mfs, err := bn.reg.Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) == 1 {
				sum += mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
	}
	return sum
}

// stop shuts the nodes down, last first, waits for their Run to return, and
// closes the clients' connections. Nodes setUp never started are skipped.
func (fx *e2eFixture) stop() error {
	var errs []error
	for i := len(fx.nodes) - 1; i >= 0; i-- {
		bn := fx.nodes[i]
		bn.cancel()
		errs = append(errs, <-bn.done)
	}
	for _, tr := range fx.trs {
		tr.CloseIdleConnections()
	}
	return errors.Join(errs...)
}
