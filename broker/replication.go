package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/controller/controlclient"
	"github.com/ferrymq/ferry/replica"
)

// Replication: a broker group of one master and its slaves (DESIGN.md §6).
//
// With replication_port set, the broker heartbeats to the control plane
// run by the name servers (package controller, through controlclient)
// every third of the lease and takes the role each answer gives it:
//
//   - master: serves replica.Sender streams on the replication port,
//     counts the slaves' ACKs, keeps the in-sync set through alter_in_sync
//     (a slave that has not caught up with the log's end for
//     replica_lag_max leaves it; one that has, and holds the commit point,
//     joins), and computes the commit point: the offset every member of
//     the in-sync set holds (counted over the old and the proposed set
//     together while a change is in flight). It registers its routes as
//     broker id 0 and acknowledges writes only while its lease is valid.
//   - slave: runs a replica.Receiver towards the master's replication
//     address, refuses local writes (commitlog.SetAppendGuard) with a "not
//     master" error, serves pulls and registers as its replica id.
//
// The commit point bounds all dispatch, on the master and on the slaves
// (which learn it from the master's COMMIT frames): the consume queues and
// every dispatch listener read the log through commitSource, whose
// VisibleOffset never passes it. A failover therefore never takes back a
// message a consumer has seen.
//
// acks=all sends are not answered by a waiting goroutine: the answer is
// built when the append returns and parked on the offset it waits for
// (pendingAcks, a heap by offset); the code that advances the commit point
// sends every parked answer it covers, and fails them all once the lease
// has lapsed (within the pump's tick). Appends advance it on the appending
// goroutine (followLog), ACKs on the stream's reading goroutine: no
// goroutine is woken on the way to the answer but the stream's.
//
// The replica's address in the control plane is its replication address
// (advertised host, replication port; or replication_advertise).

// ErrNotMaster refuses a write on a replica that is not its group's
// master (or a master whose lease lapsed).
var ErrNotMaster = errors.New("broker: not master")

// ErrNotEnoughReplicas refuses an acks=all send while the in-sync set is
// smaller than min_insync_replicas.
var ErrNotEnoughReplicas = errors.New("broker: not enough in-sync replicas")

// Replication roles (ReplicationStatus.Role).
const (
	RoleStandalone = "standalone"
	RoleMaster     = controller.RoleMaster
	RoleSlave      = controller.RoleSlave
)

// defaultReplicaLagMax is replica_lag_max's default.
const defaultReplicaLagMax = 5 * time.Second

// replSenderIdle is the sender's idle interval: slaves see the master
// alive (and the commit point) at least this often.
const replSenderIdle = 100 * time.Millisecond

// slaveProgress is what the master knows of one slave.
type slaveProgress struct {
	written, flushed int64
	lastAck          time.Time
	// caughtUp is when the slave last held everything the master had
	// written by its previous ACK (Kafka's lastCaughtUpTime).
	caughtUp time.Time
	prevEnd  int64
	prevAt   time.Time
}

// replication is the broker's replication state (nil fields when off).
type replication struct {
	b   *Broker
	on  bool
	cc  *controlclient.Client
	src *commitSource

	mu          sync.Mutex
	role        string // RoleMaster, RoleSlave, or "" before the first answer
	epoch       int64
	masterID    int64
	masterAddr  string
	inSync      []int64
	proposed    []int64 // an in-sync set proposed and not yet answered (nil: none)
	lease       controller.BrokerLease
	leaseMillis int64
	slaves      map[int64]*slaveProgress
	parked      pendingAcks
	addrs       map[int64]string // replicas' replication addresses, from the control plane
	history     replica.History
	lastReply   time.Time
	receiver    *replica.Receiver
	slaveCommit int64 // on a slave: the master's last COMMIT
	lastErr     string
	// term grows with every change of role: work started for one term
	// (the deliverers waiting for dispatch) checks it is still current,
	// and termDone (closed and replaced at each change) tells it at once.
	term     uint64
	termDone chan struct{}
	// On a slave: the master's log end as it last reported it to the
	// control plane, when this slave last held it, and the catch-up in
	// progress (nil when none).
	masterEnd     int64
	slaveCaughtUp time.Time
	catchUp       *catchUp
	// farEnd is masterEnd for the pull path's quick test (0 on a master).
	farEnd atomic.Int64
	// eosEnd is the log's end when this broker last became master: its
	// idempotent and dedup sends wait until the log below it is applied
	// (producerStateReady). 0 before.
	eosEnd atomic.Int64

	masterEpoch atomic.Int64 // the epoch while master, -1 otherwise (replica.Master)
	commit      atomic.Int64
	elections   prometheus.Counter
	// Pull answers that send the consumer to another replica
	// (suggestBroker): to a slave, from the master; to the master, from a
	// slave.
	redirects         *prometheus.CounterVec
	toSlave, toMaster prometheus.Counter

	// delayMu serialises starting and stopping the master-only work (the
	// delay and timer deliverers).
	delayMu sync.Mutex

	ln        net.Listener
	replAddr  string
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	alterBusy atomic.Bool
}

// commitSource is the log as the consume queues see it: visible only up
// to the commit point when replication is on.
type commitSource struct {
	*commitlog.Log
	replicated bool
	limit      atomic.Int64 // -1: no limit
	bells      commitlog.Bells
}

var _ consumequeue.Source = (*commitSource)(nil)

// VisibleOffset is the log's visible end, capped at the commit point.
func (s *commitSource) VisibleOffset() int64 {
	v := s.Log.VisibleOffset()
	if l := s.limit.Load(); l >= 0 && l < v {
		return l
	}
	return v
}

// Watch signals when the log's visible end or the commit point advance.
func (s *commitSource) Watch() (<-chan struct{}, func()) {
	if !s.replicated {
		return s.Log.Watch()
	}
	ch := make(chan struct{}, 1)
	stop := s.WatchFunc(func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch, stop
}

// WatchFunc has fn called on the goroutine that advanced the visible end
// or the commit point, right after it did: without it the consume queues
// would follow only the log's appends, and a commit point moved by a
// slave's ACK would wait for the next append or flush tick to be
// dispatched.
func (s *commitSource) WatchFunc(fn func()) func() {
	stopLog := s.Log.WatchFunc(fn)
	if !s.replicated {
		return stopLog
	}
	stopBells := s.bells.WatchFunc(fn)
	return func() { stopLog(); stopBells() }
}

func newCommitSource(l *commitlog.Log, replicated bool) *commitSource {
	s := &commitSource{Log: l, replicated: replicated}
	s.limit.Store(-1)
	if replicated {
		s.limit.Store(0)
	}
	return s
}

// newReplication prepares the replication state; the stores are open.
func newReplication(b *Broker) *replication {
	r := &replication{b: b, on: b.cfg.Replicated(), src: b.src, slaves: map[int64]*slaveProgress{}}
	r.masterEpoch.Store(-1)
	r.elections = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_replication_elections_total",
		Help: "Times this broker became its group's master."})
	r.redirects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_replication_pull_redirects_total",
		Help: "Pull answers carrying messages that send the consumer's next pull of the queue to another replica (suggestWhichBrokerId): " +
			"to a slave from the master, for a consumer more than slave_read_behind_bytes behind; to the master from a slave, once it is closer."},
		[]string{"to"})
	r.toSlave, r.toMaster = r.redirects.WithLabelValues("slave"), r.redirects.WithLabelValues("master")
	if !r.on {
		return r
	}
	// What was dispatched before was committed then.
	r.commit.Store(b.cq.DispatchedOffset())
	r.src.limit.Store(r.commit.Load())
	b.clog.SetAppendGuard(r.appendGuard)
	// Until the control plane names it master, the replica's consumer
	// offsets come from the log alone (FollowMetadata).
	b.offsets.follow.Store(true)
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	b.metrics.reg.MustRegister(r.elections, r.redirects,
		gauge("ferry_replication_in_sync_replicas", "Members of the in-sync set (the master included), as this broker knows it.",
			func() float64 { return float64(len(r.Status().InSync)) }),
		gauge("ferry_replication_lag_bytes", "Bytes the furthest-behind slave lacks (on the master), or this slave lacks (on a slave).",
			func() float64 { return float64(r.Status().LagBytes) }),
		gauge("ferry_replication_lag_seconds", "Seconds since the furthest-behind slave last held the master's end, or since this slave did.",
			func() float64 { return r.Status().LagSeconds }),
		gauge("ferry_replication_catchup_remaining_bytes", "On a slave catching up (out of the in-sync set and behind, or 1 MiB or more behind): bytes of the master's log it still lacks; 0 otherwise.",
			func() float64 {
				if c := r.Status().CatchUp; c != nil {
					return float64(c.RemainingBytes)
				}
				return 0
			}),
		gauge("ferry_replication_commit_offset", "The commit point: the commitlog offset every in-sync replica holds.",
			func() float64 { return float64(r.commit.Load()) }),
		gauge("ferry_replication_is_master", "1 while this broker is its group's master with a valid lease.",
			func() float64 {
				if r.isWritableMaster() {
					return 1
				}
				return 0
			}),
	)
	return r
}

// appendGuard refuses local appends unless this broker is a master.
func (r *replication) appendGuard() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role == RoleMaster {
		return nil
	}
	return r.notMasterLocked()
}

func (r *replication) notMasterLocked() error {
	switch {
	case r.role == RoleSlave && r.masterAddr != "":
		return fmt.Errorf("%w: this broker is a slave (replica %d) of %s in epoch %d; the master replicates from %s",
			ErrNotMaster, r.b.cfg.ReplicaID, r.b.cfg.BrokerName, r.epoch, r.masterAddr)
	case r.role == RoleSlave:
		return fmt.Errorf("%w: this broker is a slave (replica %d) of %s, which has no master now",
			ErrNotMaster, r.b.cfg.ReplicaID, r.b.cfg.BrokerName)
	case r.role == "":
		return fmt.Errorf("%w: replica %d of %s has not yet heard its role from the control plane",
			ErrNotMaster, r.b.cfg.ReplicaID, r.b.cfg.BrokerName)
	}
	return nil
}

// writable says why this replica takes no writes now ("" when it does).
func (r *replication) writable() string {
	if !r.on {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.notMasterLocked(); err != nil {
		return err.Error()
	}
	if !r.lease.LeaseValid(time.Now()) {
		return fmt.Sprintf("%v: the master's lease with the control plane lapsed (epoch %d); writes wait until it is renewed", ErrNotMaster, r.epoch)
	}
	return ""
}

func (r *replication) isWritableMaster() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.role == RoleMaster && r.lease.LeaseValid(time.Now())
}

// brokerID is the id this broker registers its routes under.
func (r *replication) brokerID() int64 {
	if !r.on {
		return r.b.cfg.BrokerID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role == RoleMaster {
		return 0
	}
	return r.b.cfg.ReplicaID
}

// isSlave reports whether this broker serves as a slave now.
func (r *replication) isSlave() bool {
	if !r.on {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.role != RoleMaster
}

// start opens the replication port and begins heartbeating.
func (r *replication) start() error {
	if !r.on {
		return nil
	}
	if len(r.b.cfg.NamesrvAddrs) == 0 {
		return errors.New("broker: replication needs the name servers that run the control plane (namesrv_addrs)")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(r.b.cfg.ListenHost, strconv.Itoa(r.b.cfg.ReplicationPort)))
	if err != nil {
		return fmt.Errorf("broker: replication port: %w", err)
	}
	r.ln = ln
	port := ln.Addr().(*net.TCPAddr).Port
	r.replAddr = net.JoinHostPort(r.b.storeHost.Addr().String(), strconv.Itoa(port))
	if a := r.b.cfg.ReplicationAdvertise; a != "" {
		r.replAddr = a
	}
	r.cc = controlclient.New(r.b.nsClient, r.b.cfg.NamesrvAddrs, 2*time.Second)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	sender, err := replica.NewSender(replica.SenderConfig{
		Cluster: r.b.cfg.ClusterName, BrokerName: r.b.cfg.BrokerName, SegmentSize: r.b.clog.Options().SegmentSize,
		Idle: replSenderIdle, OnAck: r.onAck, Commit: r.commit.Load, CommitWatch: r.src.bells.Watch,
		Logger: r.b.log.With().Str("component", "replication").Logger(),
	}, r.b.clog, (*replMaster)(r))
	if err != nil {
		ln.Close()
		return err
	}
	r.wg.Add(4)
	go r.accept(sender)
	go r.heartbeatLoop()
	go r.pump()
	go r.inSyncLoop()
	r.b.log.Info().Str("replication", r.replAddr).Int64("replica_id", r.b.cfg.ReplicaID).Msg("replication port open")
	return nil
}

// stop ends every replication goroutine and stream.
func (r *replication) stop() {
	if !r.on || r.cancel == nil {
		return
	}
	r.cancel()
	r.ln.Close()
	r.mu.Lock()
	rcv := r.receiver
	r.receiver = nil
	r.masterEpoch.Store(-1)
	r.failParkedLocked("the broker is shutting down")
	r.nextTermLocked()
	r.mu.Unlock()
	if rcv != nil {
		rcv.Close()
	}
	r.wg.Wait()
	r.stopMasterWork()
}

// replMaster is the sender's view of the master.
type replMaster replication

func (m *replMaster) Epoch() int64 { return m.masterEpoch.Load() }

func (m *replMaster) History() replica.History {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.history
}

func (r *replication) accept(s *replica.Sender) {
	defer r.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		conn, err := r.ln.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			if err := replAuthServe(conn, r.b.clusterSecret); err != nil { // replication_auth.go
				conn.Close()
				r.b.log.Warn().Err(err).Str("peer", conn.RemoteAddr().String()).Msg("replication connection refused")
				return
			}
			if err := s.Serve(r.ctx, conn); err != nil && r.ctx.Err() == nil {
				r.b.log.Debug().Err(err).Str("slave", conn.RemoteAddr().String()).Msg("replication stream ended")
			}
		}()
	}
}
