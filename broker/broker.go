// Package broker is Ferry's message broker: it serves the RocketMQ 4.x
// remoting protocol, and the HTTP API through the server package httpapi
// mounts on it (WithHTTP, httpviews.go), over the shared commitlog and its
// consume queues, keeps topic, group and offset metadata in pebble, tracks
// producers and consumers, holds long-polling pulls, and registers itself
// with the name servers.
//
// # Data directory
//
//	<data_dir>/commitlog/      segments, checkpoint, LOCK (package commitlog)
//	<data_dir>/consumequeue/   per-queue index files (package consumequeue)
//	<data_dir>/meta/           pebble: topics, groups, consumer offsets (applied
//	                           from metadata records in the commitlog, metalog.go)
//
// # Goroutines
//
// Owned by the Broker and stopped by Shutdown: the remoting accept loop
// (and the server's per-connection goroutines), the HTTP server the
// WithHTTP mount started, the name server registration loop, the
// housekeeping loop (client expiry, offset flush, retention). Held pulls have no goroutine: the consume queue's
// dispatcher answers them (hold.go). The commitlog's flusher and the
// consume queue's dispatcher are owned by those stores.
//
// # Lock order
//
// No broker lock is held while calling into another component's lock,
// except topicTable.mu → metaStore (pebble) and offsetTable.mu → pebble.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/internal/zslog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Broker is one Ferry broker.
type Broker struct {
	cfg       Config
	log       zerolog.Logger
	fs        vfs.FS
	startedAt time.Time
	delays    []time.Duration

	clog *commitlog.Log
	src  *commitSource // the log as dispatch sees it (replication.go)
	repl *replication
	// pendingMetaSnapshot: a replica's data directory from before metadata
	// records, snapshotted into the log when it first becomes master.
	pendingMetaSnapshot bool
	cq                  *consumequeue.Store
	meta                *metaStore
	metaLog             *metaLog // metadata records: writer and applier (metalog.go)
	topics              *topicTable
	groups              *groupTable
	offsets             *offsetTable
	clients             *clientRegistry
	locks               *lockTable
	metrics             *metrics
	sender              *sender      // what every path writes goes through it (sender.go)
	reader              *queueReader // what consumers read (queuereader.go)

	retryReaders *retryReaders // groups whose consumers pull their retry queue
	topicDrops   topicDrops    // topics the master deleted, to remove here (replica_topics.go)

	timerIdx *delay.TimerIndex
	delaySvc *delay.Service
	keys     *keyIndex
	idem     *idempotentProducers // idempotent producers (idempotent.go)
	dedup    *dedupWindows        // topics' dedup windows (dedup.go)
	txn      *txnService          // transactional messages (transaction.go)

	conf *runtimeConfig // cfg plus run-time changes (runtimeconfig.go): read it with c()

	mux           *remoting.Mux
	client        *clientHandlers // requests of producers and consumers (handlers.go)
	server        *remoting.Server
	acl           *acl.Watcher // nil: ACL off (security.go)
	audit         *acl.Audit
	tls           *tls.Config // nil: plain TCP
	nsTLS         *tls.Config
	clusterSecret string
	ln            net.Listener
	nsClient      *remoting.Client
	httpMount     HTTPMount  // nil: no HTTP port (httpviews.go)
	http          HTTPServer // nil: no HTTP port

	leases   *leaseTable    // HTTP receive leases (api_consume.go)
	holds    *heldPulls     // pulls and HTTP reads held by long polling (hold.go)
	stats    *statsRing     // the last 15 minutes of counters, for the console (stats.go)
	messages *messageReader // stored messages read for the HTTP API and lookups (reader.go)

	storeHost netip.AddrPort // advertised ip:port, also STOREHOST of records
	addr      string         // storeHost as text

	accepting atomic.Bool // sends accepted (false while shutting down)
	drained   atomic.Bool // an operator drained the broker
	ready     atomic.Bool
	disk      *diskGuard // the disk-full state (health.go)

	registrar   *registrar // the name server registration (register.go)
	admin       *Admin     // the administration API (admin.go)
	stop        chan struct{}
	wg          sync.WaitGroup
	shutdown    sync.Once
	shutdownErr error
}

// Option adjusts a Broker at construction.
type Option func(*Broker)

// WithLogger sets the logger (default: disabled).
func WithLogger(l zerolog.Logger) Option { return func(b *Broker) { b.log = l } }

// WithFS sets the filesystem (tests use pebble's in-memory FS).
func WithFS(fs vfs.FS) Option { return func(b *Broker) { b.fs = fs } }

// New validates cfg and opens the broker's stores, recovering them if the
// last stop was unclean. Start begins serving.
func New(cfg Config, opts ...Option) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:          cfg,
		log:          zerolog.Nop(),
		fs:           vfs.Default,
		startedAt:    time.Now(),
		clients:      newClientRegistry(),
		locks:        newLockTable(),
		retryReaders: newRetryReaders(),
		topicDrops:   topicDrops{bell: make(chan struct{}, 1)},
		stop:         make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	b.conf = newRuntimeConfig(cfg, b.log)
	b.delays, _ = ParseDelayLevels(cfg.DelayLevels)
	b.metrics = newMetrics(b)
	if err := b.openStores(); err != nil {
		b.closeStores()
		return nil, err
	}
	b.sender = &sender{cfg: b.c, log: b.log, clog: b.clog, topics: b.topics, groups: b.groups, metrics: b.metrics,
		delayLevels: len(b.delays), storeHost: func() netip.AddrPort { return b.storeHost },
		writable: b.writable, checkTopic: b.checkSendTopic}
	b.repl = newReplication(b)
	b.reader = &queueReader{cfg: b.c, log: b.log, clog: b.clog, cq: b.cq, metrics: b.metrics, suggest: b.repl.suggestBroker}
	b.admin = newAdmin(b)
	b.holds.pullOnce = b.reader.pullOnce
	b.leases.minOffset, b.leases.sendBack, b.leases.checkWritable = b.reader.minOffset, b.sender.sendBackMessage, b.sender.checkWritable
	b.messages = &messageReader{clog: b.clog, cq: b.cq, topics: b.topics, keys: b.keys, queues: b.reader}
	b.idem.repl, b.dedup.repl = b.repl, b.repl
	b.idem.send, b.txn.send = b.sender, b.sender
	b.mux = remoting.NewMux()
	b.client = &clientHandlers{b: b}
	b.routes()
	if err := b.openACL(); err != nil {
		b.closeStores()
		return nil, err
	}
	return b, nil
}

func (b *Broker) openStores() error {
	flush, _ := commitlog.ParseFlushMode(b.cfg.Flush)
	// Durably: a crash must not take back the data directory's own entry
	// after acknowledged sends were synced under it.
	if err := commitlog.MkdirAllDurable(b.fs, b.cfg.DataDir); err != nil {
		return fmt.Errorf("broker: create data dir %s: %w", b.cfg.DataDir, err)
	}
	var err error
	b.clog, err = commitlog.Open(commitlog.Options{
		FS:             b.fs,
		Dir:            b.fs.PathJoin(b.cfg.DataDir, "commitlog"),
		SegmentSize:    b.cfg.SegmentSize,
		Flush:          flush,
		FlushInterval:  b.cfg.FlushInterval.D(),
		SyncTimeout:    b.cfg.SyncTimeout.D(),
		MaxMessageSize: b.cfg.MaxMessageSize,
		Logger:         b.log,
	})
	if err != nil {
		return err
	}
	b.src = newCommitSource(b.clog, b.cfg.Replicated())
	if b.meta, err = openMeta(b.fs, b.fs.PathJoin(b.cfg.DataDir, "meta"), b.log); err != nil {
		return err
	}
	// Metadata travels in the log (metalog.go): bring the store up to the
	// log before the tables are loaded from it.
	needSnapshot := false
	if b.metaLog, needSnapshot, err = openMetaLog(b.clog, b.meta.db, len(b.delays), b.log); err != nil {
		return err
	}
	b.metaLog.host = func() netip.AddrPort { return b.storeHost }
	if b.topics, err = loadTopics(b.meta, time.Now().UnixMilli()); err != nil {
		return err
	}
	if b.groups, err = loadGroups(b.meta); err != nil {
		return err
	}
	if b.offsets, err = loadOffsets(b.meta); err != nil {
		return err
	}
	b.topics.mlog, b.groups.mlog, b.offsets.mlog = b.metaLog, b.metaLog, b.metaLog
	b.registrar = newRegistrar(b)
	b.metaLog.topics, b.metaLog.groups, b.metaLog.offsets = b.topics, b.groups, b.offsets
	b.metaLog.onTopic = b.onReplicatedTopicChange
	b.dedup = &dedupWindows{topics: b.topics, meta: b.meta, clog: b.clog, metrics: b.metrics, log: b.log, host: b.metaLog.host}
	b.idem = newIdempotentProducers(b.dedup, b.metaLog, b.c)
	b.metaLog.onProducerEpoch = b.idem.raiseEpoch // eos_replica.go
	if b.timerIdx, err = delay.NewTimerIndex(b.meta.db, protocol.TimerTopic, b.clog.WrittenOffset()); err != nil {
		return err
	}
	if b.keys, err = newKeyIndex(b.meta.db); err != nil {
		return err
	}
	b.holds = newHeldPulls(b.c, b.stop)
	b.cq, err = consumequeue.Open(consumequeue.Options{
		FS:        b.fs,
		Dir:       b.fs.PathJoin(b.cfg.DataDir, "consumequeue"),
		Source:    b.src,
		Logger:    b.log,
		Listeners: []consumequeue.Listener{b.timerIdx, b.keys, b.metaLog, b.idem.applier},
		OnNotify:  b.holds.wakeHeld,
	})
	if err != nil {
		return err
	}
	b.holds.queues = b.cq
	b.stats = &statsRing{metrics: b.metrics, offsets: b.offsets, groups: b.groups, topicConf: b.topics, cq: b.cq, clients: b.clients}
	b.leases = &leaseTable{offsets: b.offsets, groups: b.groups, topics: b.topics, cq: b.cq, clog: b.clog, holds: b.holds, metrics: b.metrics, log: b.log, cfg: b.c,
		now: time.Now, stop: b.stop, wg: &b.wg}
	// A consume queue may know of more entries than the log's offset table
	// (its checkpoint predates deleted segments): never reuse an offset.
	for _, topic := range b.cq.Topics() {
		for _, q := range b.cq.Queues(topic) {
			b.clog.RaiseQueueOffset(topic, q, b.cq.MaxOffset(topic, q))
		}
	}
	if b.cfg.Replicated() {
		// A replica writes metadata only as master, and its metadata
		// records apply only once the group commits them: becomeMaster
		// does this then.
		b.pendingMetaSnapshot = needSnapshot
	} else if err := b.ensureMetadata(needSnapshot); err != nil {
		return err
	}
	// From here on metadata changes are refused while the disk is full.
	b.disk = newDiskGuard(b)
	b.meta.full = b.disk.fullNow
	if err := b.idem.load(); err != nil {
		return err
	}
	b.txn = &txnService{clog: b.clog, cq: b.cq, meta: b.meta, topics: b.topics, clients: b.clients, log: b.log, cfg: b.c,
		host: b.metaLog.host, writable: b.writable}
	if err := b.txn.open(b.metrics.reg); err != nil {
		return err
	}
	b.topics.changed = b.registrar.wait
	if err := b.loadReceiptKey(); err != nil {
		return err
	}
	return b.conf.open(b.meta)
}

// ensureMetadata stores the system topics and, for a data directory from
// before metadata records (snapshot), puts what the store holds into the
// log once.
func (b *Broker) ensureMetadata(snapshot bool) error {
	if err := b.ensureSystemTopics(); err != nil {
		return err
	}
	if snapshot {
		if err := b.metaLog.snapshot(); err != nil {
			return fmt.Errorf("broker: write the first metadata snapshot: %w", err)
		}
		b.log.Info().Msg("metadata: the store's metadata is now in the commitlog")
	}
	return nil
}

func (b *Broker) ensureSystemTopics() error {
	perm := int32(protocol.PermRead | protocol.PermWrite)
	if _, err := b.topics.ensure(TopicConfig{TopicName: protocol.AutoCreateTopicTemplate, ReadQueueNums: b.cfg.DefaultTopicQueueNums,
		WriteQueueNums: b.cfg.DefaultTopicQueueNums, Perm: perm | protocol.PermInherit}); err != nil {
		return err
	}
	n := int32(len(b.delays))
	if tc, ok := b.topics.get(protocol.ScheduleTopic); ok && tc.ReadQueueNums < n {
		// The delay table grew: give the new levels their queues.
		tc.ReadQueueNums, tc.WriteQueueNums = n, n
		if err := b.topics.put(tc); err != nil {
			return err
		}
	}
	if _, err := b.topics.ensure(TopicConfig{TopicName: protocol.ScheduleTopic, ReadQueueNums: n, WriteQueueNums: n, Perm: perm}); err != nil {
		return err
	}
	_, err := b.topics.ensure(TopicConfig{TopicName: protocol.TimerTopic, ReadQueueNums: 1, WriteQueueNums: 1, Perm: perm})
	return err
}

func (b *Broker) closeStores() {
	if b.cq != nil {
		if err := b.cq.Close(); err != nil {
			b.log.Error().Err(err).Msg("close consume queues")
		}
	}
	if b.offsets != nil {
		if err := b.offsets.flush(); err != nil {
			b.log.Error().Err(err).Msg("flush consumer offsets")
		}
	}
	if b.meta != nil && b.idem != nil && b.idem.tab != nil {
		if err := b.idem.snapshot(time.Now()); err != nil {
			b.log.Error().Err(err).Msg("save producer state")
		}
	}
	if b.meta != nil {
		if err := b.meta.close(); err != nil {
			b.log.Error().Err(err).Msg("close metadata store")
		}
	}
	if b.clog != nil {
		if err := b.clog.Close(); err != nil && !errors.Is(err, commitlog.ErrClosed) {
			b.log.Error().Err(err).Msg("close commitlog")
		}
	}
}

// Start listens on the configured ports and starts serving, registering
// with the name servers and housekeeping.
func (b *Broker) Start() error {
	ln, err := b.listen(net.JoinHostPort(b.cfg.ListenHost, strconv.Itoa(b.cfg.Port)))
	if err != nil {
		return fmt.Errorf("broker: listen: %w", err)
	}
	b.ln = ln
	port := ln.Addr().(*net.TCPAddr).Port
	b.storeHost = netip.AddrPortFrom(advertiseAddr(b.cfg.AdvertiseHost, b.cfg.ListenHost), uint16(port))
	b.addr = b.storeHost.String()
	b.server = remoting.NewServer(b.remotingHandler(), remoting.ServerConfig{Logger: zslog.New(b.log), MaxFrameSize: b.cfg.MaxMessageSize + 1<<20,
		IdleTimeout: b.cfg.IdleTimeout.D(), ReadTimeout: b.cfg.ReadTimeout.D(),
		MaxConns: b.cfg.MaxConnections, MaxConnsPerAddr: b.cfg.MaxConnectionsPerAddr})
	b.nsClient = remoting.NewClient(remoting.ClientConfig{Logger: zslog.New(b.log), Credentials: b.nsCredentials(), TLS: b.nsTLS})
	if b.httpMount != nil && b.cfg.HTTPPort >= 0 {
		if b.http, err = b.httpMount(b.httpViews()); err != nil {
			b.http = nil
			ln.Close()
			return fmt.Errorf("broker: %w", err)
		}
	}
	if err := b.openDelay(); err != nil {
		ln.Close()
		if b.http != nil {
			b.http.Shutdown()
		}
		return err
	}
	if err := b.repl.start(); err != nil {
		ln.Close()
		if b.http != nil {
			b.http.Shutdown()
		}
		return err
	}
	if !b.cfg.Replicated() {
		b.delaySvc.Start()
	}
	b.accepting.Store(true)
	b.wg.Add(5)
	go func() {
		defer b.wg.Done()
		if err := b.server.Serve(ln); err != nil && !errors.Is(err, remoting.ErrServerClosed) {
			b.log.Error().Err(err).Msg("remoting server stopped")
		}
	}()
	// Ready means routable: clients that look the broker up right after
	// find it.
	b.registrar.start(b.addr, b.nsClient)
	go func() { defer b.wg.Done(); b.registrar.loop() }()
	go b.housekeeping()
	go func() { defer b.wg.Done(); b.idem.snapshots(b.stop) }()
	go func() { defer b.wg.Done(); b.txn.checks(b.stop) }()
	b.ready.Store(true)
	ev := b.log.Info().Str("addr", b.addr).Str("listen", ln.Addr().String()).Str("flush", b.cfg.Flush).
		Str("data_dir", b.cfg.DataDir).Int64("startup_ms", time.Since(b.startedAt).Milliseconds())
	if b.http != nil {
		ev = ev.Str("http", b.http.Addr())
	}
	ev.Msg("broker ready")
	return nil
}

// Addr is the advertised address clients use ("ip:port").
func (b *Broker) Addr() string { return b.addr }

// HTTPAddr is the bound HTTP address, or "" without HTTP (no WithHTTP,
// or http_port -1).
func (b *Broker) HTTPAddr() string {
	if b.http == nil {
		return ""
	}
	return b.http.Addr()
}

// Config returns the configuration in force.
func (b *Broker) Config() Config { return *b.c() }

// c returns the configuration in force (run-time changes included).
func (b *Broker) c() *Config { return b.conf.load() }

// Shutdown stops gracefully: stop accepting sends, let in-flight requests
// answer, unregister from the name servers, flush the log, persist
// offsets and close the stores. ctx bounds the graceful part.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.shutdown.Do(func() {
		b.accepting.Store(false)
		b.ready.Store(false)
		close(b.stop)
		b.holds.releaseHeld()
		if b.server != nil {
			if err := b.server.Shutdown(ctx); err != nil {
				b.log.Warn().Err(err).Msg("remoting server did not drain in time")
			}
		}
		b.registrar.unregister(ctx)
		if b.repl != nil {
			b.repl.stop()
		}
		if b.http != nil {
			b.http.Shutdown()
		}
		b.wg.Wait()
		if b.delaySvc != nil {
			if err := b.delaySvc.Close(); err != nil {
				b.log.Error().Err(err).Msg("save delay progress")
			}
		}
		if b.nsClient != nil {
			b.nsClient.Close()
		}
		if b.clog != nil {
			if err := b.clog.Sync(); err != nil && !errors.Is(err, commitlog.ErrClosed) {
				b.shutdownErr = err
			}
		}
		b.closeStores()
		b.closeACL()
		b.log.Info().Msg("broker stopped")
	})
	return b.shutdownErr
}

// housekeeping expires silent clients, flushes consumer offsets and
// deletes expired segments.
func (b *Broker) housekeeping() {
	defer b.wg.Done()
	offsetTick := time.NewTicker(b.cfg.OffsetFlushInterval.D())
	defer offsetTick.Stop()
	scan := time.NewTicker(10 * time.Second)
	defer scan.Stop()
	disk := time.NewTicker(time.Second)
	defer disk.Stop()
	expire := time.NewTicker(time.Minute)
	defer expire.Stop()
	b.stats.sample(time.Now())
	for {
		select {
		case <-b.stop:
			return
		case <-offsetTick.C:
			if err := b.offsets.flush(); err != nil {
				b.log.Error().Err(err).Msg("flush consumer offsets")
			}
		case now := <-scan.C:
			for _, g := range b.clients.expire(now.Add(-b.cfg.ClientExpiry.D())) {
				b.client.notifyGroupChanged(g)
			}
			b.stats.sample(now)
		case <-disk.C:
			b.disk.check()
		case <-b.topicDrops.bell:
			b.dropDeletedTopics()
		case now := <-expire.C:
			b.retention(now)
		}
	}
}

// writable says why sends are refused, or "" when they are accepted.
func (b *Broker) writable() string {
	switch {
	case !b.accepting.Load():
		return "broker is shutting down"
	case b.drained.Load():
		return protocol.DrainedReason
	case b.disk.fullNow():
		return b.disk.reason()
	case b.clog.Err() != nil:
		return b.clog.Err().Error()
	}
	if b.repl != nil {
		return b.repl.writable()
	}
	return ""
}

// retention deletes commitlog segments last written before
// FileReservedTime ago — never the active one, nor one holding a pending
// scheduled message — and trims the consume queues to match. A metadata
// snapshot is written first unless one lies at or after the cut.
func (b *Broker) retention(now time.Time) {
	keep := b.cfg.FileReservedTime.D()
	if keep <= 0 {
		return
	}
	segs := b.clog.Segments()
	cut := int64(-1)
	for i, s := range segs[:max(len(segs)-1, 0)] {
		if s.ModTime.IsZero() || now.Sub(s.ModTime) < keep {
			break
		}
		cut = segs[i+1].Base
	}
	if cut < 0 {
		return
	}
	if b.delaySvc != nil {
		oldest, err := b.delaySvc.OldestNeeded()
		if err != nil {
			b.log.Warn().Err(err).Msg("retention: cannot tell which segments pending delayed messages need; keeping them")
			return
		}
		cut = min(cut, oldest)
	}
	if cut <= b.clog.MinOffset() {
		return
	}
	// The kept log must still hold all metadata (metalog.go).
	if err := b.metaLog.beforeRetention(cut); err != nil {
		b.log.Error().Err(err).Msg("retention: cannot write a metadata snapshot; keeping the segments")
		return
	}
	n, err := b.clog.DeleteSegmentsBefore(cut)
	if err != nil {
		b.log.Error().Err(err).Msg("retention: delete segments")
	}
	if n == 0 {
		return
	}
	files, err := b.cq.TrimBefore(b.clog.MinOffset())
	if err != nil {
		b.log.Error().Err(err).Msg("retention: trim consume queues")
	}
	// The key index goes with the log, an hour at a time: up to the hour
	// of the oldest message kept.
	if rec, _, err := b.clog.ReadRecord(b.clog.MinOffset(), nil); err != nil {
		b.log.Warn().Err(err).Msg("retention: cannot read the oldest message kept; the key index is not pruned")
	} else if err := b.keys.prune(rec.StoreTimestamp); err != nil {
		b.log.Error().Err(err).Msg("retention: prune the key index")
	}
	b.log.Info().Int("segments", n).Int("queue_files", files).Int64("min_offset", b.clog.MinOffset()).Msg("retention: expired data deleted")
}
