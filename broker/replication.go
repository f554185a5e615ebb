package broker

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/controller/controlclient"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
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
// has lapsed (within the pump's tick).
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

// parkedAck is an acks=all answer waiting for the commit point.
type parkedAck struct {
	end  int64
	conn *remoting.Conn
	resp *remoting.Command
	req  *remoting.Command
}

type pendingAcks []parkedAck

func (p pendingAcks) Len() int           { return len(p) }
func (p pendingAcks) Less(i, j int) bool { return p[i].end < p[j].end }
func (p pendingAcks) Swap(i, j int)      { p[i], p[j] = p[j], p[i] }
func (p *pendingAcks) Push(x any)        { *p = append(*p, x.(parkedAck)) }
func (p *pendingAcks) Pop() any {
	old := *p
	x := old[len(old)-1]
	old[len(old)-1] = parkedAck{}
	*p = old[:len(old)-1]
	return x
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

	masterEpoch atomic.Int64 // the epoch while master, -1 otherwise (replica.Master)
	commit      atomic.Int64
	elections   prometheus.Counter

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

// Watch signals when the log's visible end or the commit point advance
// (replication's pump rings for both).
func (s *commitSource) Watch() (<-chan struct{}, func()) {
	if !s.replicated {
		return s.Log.Watch()
	}
	return s.bells.Watch()
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
	b.metrics.reg.MustRegister(r.elections,
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

// checkAcks refuses a send to topic that cannot be acknowledged as its
// ack mode asks.
func (r *replication) checkAcks(topic string) error {
	if !r.on || r.b.cfg.AcksFor(topic) != AcksAll {
		return nil
	}
	min := max(r.b.cfg.MinInSyncReplicas, 1)
	r.mu.Lock()
	n := len(r.inSync)
	r.mu.Unlock()
	if n < min {
		return fmt.Errorf("%w: the in-sync set of %s has %d replica(s), min_insync_replicas is %d; acks=all sends are refused until enough slaves catch up",
			ErrNotEnoughReplicas, r.b.cfg.BrokerName, n, min)
	}
	return nil
}

// reply sends resp for a send whose messages end at end: at once unless
// topic's ack mode is all and the commit point is not there yet, in which
// case it is parked until it is.
func (r *replication) reply(c *remoting.Conn, req, resp *remoting.Command, topic string, end int64) {
	if !r.on || resp.Code != protocol.RespSuccess || r.b.cfg.AcksFor(topic) != AcksAll {
		_ = c.Reply(resp)
		return
	}
	r.mu.Lock()
	if end <= r.commit.Load() && r.role == RoleMaster && r.lease.LeaseValid(time.Now()) {
		r.mu.Unlock()
		_ = c.Reply(resp)
		return
	}
	heap.Push(&r.parked, parkedAck{end: end, conn: c, resp: resp, req: req})
	r.mu.Unlock()
	r.advance()
}

// awaitCommit waits until the commit point covers end when topic's ack
// mode is all, for answers given synchronously (the HTTP API). It fails,
// the messages possibly kept or not, once this broker is no master with a
// valid lease, or after timeout. The pump rings the commit bells every
// tick, so a lapsed lease is seen within one.
func (r *replication) awaitCommit(topic string, end int64, timeout time.Duration) error {
	if !r.on || r.b.cfg.AcksFor(topic) != AcksAll {
		return nil
	}
	wake, stop := r.src.bells.Watch()
	defer stop()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		if r.commit.Load() >= end {
			r.mu.Lock()
			ok := r.role == RoleMaster && r.lease.LeaseValid(time.Now())
			r.mu.Unlock()
			if ok {
				return nil
			}
		}
		r.mu.Lock()
		why := ""
		switch {
		case r.role != RoleMaster:
			why = "this broker stopped being master before the send was replicated"
		case !r.lease.LeaseValid(time.Now()):
			why = fmt.Sprintf("the master's lease with the control plane lapsed (epoch %d) before the send was replicated", r.epoch)
		}
		r.mu.Unlock()
		if why != "" {
			return fmt.Errorf("%w: %s; it may or may not be kept", ErrNotMaster, why)
		}
		select {
		case <-wake:
		case <-t.C:
			return fmt.Errorf("%w: the in-sync replicas did not all hold the send within %v; it may or may not be kept", ErrNotEnoughReplicas, timeout)
		case <-r.ctx.Done():
			return fmt.Errorf("%w: the broker is shutting down; the send may or may not be kept", ErrNotMaster)
		}
	}
}

// replyAfterWrite is reply for an answer whose messages' end is not at
// hand: it waits for the log's end as it is now, which is at or past them.
func (r *replication) replyAfterWrite(c *remoting.Conn, req, resp *remoting.Command, topic string) {
	r.reply(c, req, resp, topic, r.b.clog.WrittenOffset())
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

// heartbeatLoop reports to the control plane every third of the lease
// and applies the role each answer gives.
func (r *replication) heartbeatLoop() {
	defer r.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.heartbeat()
		r.mu.Lock()
		lease := time.Duration(r.leaseMillis) * time.Millisecond
		r.mu.Unlock()
		if lease <= 0 {
			lease = controller.DefaultLease
		}
		t.Reset(lease / 3)
	}
}

func (r *replication) heartbeat() {
	req := controller.HeartbeatRequest{Cluster: r.b.cfg.ClusterName, BrokerName: r.b.cfg.BrokerName,
		ReplicaID: r.b.cfg.ReplicaID, Addr: r.replAddr, MaxOffset: r.b.clog.WrittenOffset()}
	if h, err := r.b.clog.Epochs(); err == nil && len(h) > 0 {
		last := h[len(h)-1]
		req.LastEpoch = controller.EpochEntry{Epoch: last.Epoch, StartOffset: last.StartOffset}
	}
	r.mu.Lock()
	req.Epoch = r.epoch
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	sentAt := time.Now()
	rep, err := r.cc.Heartbeat(ctx, req)
	if err != nil {
		if r.ctx.Err() == nil {
			r.mu.Lock()
			r.lastErr = err.Error()
			r.mu.Unlock()
			r.b.log.Warn().Err(err).Msg("replication: heartbeat to the control plane failed")
		}
		return
	}
	r.apply(sentAt, rep)
	if rep.Role != controller.RoleMaster || rep.MasterID != r.b.cfg.ReplicaID {
		r.refreshMasterEnd(ctx)
	}
	if rep.Role == controller.RoleMaster {
		// The replicas' addresses, for the status.
		if st, err := r.cc.State(ctx, r.b.cfg.ClusterName, r.b.cfg.BrokerName); err == nil && len(st.Groups) == 1 {
			addrs := map[int64]string{}
			for _, rp := range st.Groups[0].Replicas {
				addrs[rp.ID] = rp.Addr
			}
			r.mu.Lock()
			r.addrs = addrs
			r.mu.Unlock()
		}
	}
}

// apply takes the role and state a heartbeat answer gives.
func (r *replication) apply(sentAt time.Time, rep controller.HeartbeatReply) {
	id := r.b.cfg.ReplicaID
	r.mu.Lock()
	r.lastErr = ""
	r.lastReply = time.Now()
	r.leaseMillis = rep.LeaseMillis
	r.lease.Renew(sentAt, id, rep)
	master := rep.Role == controller.RoleMaster && rep.MasterID == id
	switch {
	case master && (r.role != RoleMaster || r.epoch != rep.Epoch):
		r.mu.Unlock()
		r.becomeMaster(rep)
		return
	case master:
		if r.proposed == nil {
			r.inSync = slices.Clone(rep.InSync)
		}
		r.mu.Unlock()
		r.advance()
		return
	case !master && (r.role != RoleSlave || r.epoch != rep.Epoch || r.masterAddr != rep.MasterAddr):
		r.mu.Unlock()
		r.becomeSlave(rep)
		return
	}
	r.inSync = slices.Clone(rep.InSync)
	r.mu.Unlock()
}

// becomeMaster starts a term: the receiver stops, the epoch history gets
// its entry, the sender streams of the new epoch are accepted and the
// routes move to this broker.
func (r *replication) becomeMaster(rep controller.HeartbeatReply) {
	r.mu.Lock()
	rcv := r.receiver
	r.receiver = nil
	r.mu.Unlock()
	if rcv != nil {
		rcv.Close()
	}
	end := r.b.clog.WrittenOffset()
	h, err := r.b.clog.Epochs()
	if err == nil && (len(h) == 0 || h[len(h)-1].Epoch < rep.Epoch) {
		err = r.b.clog.StartEpoch(rep.Epoch, end)
		if err == nil {
			h, err = r.b.clog.Epochs()
		}
	}
	if err != nil {
		r.b.log.Error().Err(err).Int64("epoch", rep.Epoch).Msg("replication: cannot record the new epoch; not acting as master")
		return
	}
	hist := make(replica.History, len(h))
	for i, e := range h {
		hist[i] = controller.EpochEntry{Epoch: e.Epoch, StartOffset: e.StartOffset}
	}
	r.mu.Lock()
	r.role, r.epoch, r.masterID, r.masterAddr = RoleMaster, rep.Epoch, rep.MasterID, r.replAddr
	r.inSync, r.proposed = slices.Clone(rep.InSync), nil
	r.history = hist
	r.slaves = map[int64]*slaveProgress{}
	term := r.nextTermLocked()
	termDone := r.termDone
	r.catchUp, r.masterEnd = nil, 0
	r.farEnd.Store(0)
	r.mu.Unlock()
	r.masterEpoch.Store(rep.Epoch)
	r.b.FollowMetadata(false) // offsets are this broker's own again
	r.elections.Inc()
	r.b.log.Info().Int64("epoch", rep.Epoch).Int64("offset", end).Ints64("in_sync", rep.InSync).Str("reason", rep.Reason).
		Msg("replication: this broker is master")
	r.advance()
	r.b.triggerRegister()
	// The system topics (and an old data directory's first snapshot) are
	// metadata records: written by the master, stored once committed.
	snapshot := r.b.pendingMetaSnapshot
	r.b.pendingMetaSnapshot = false
	go func() {
		if err := r.b.ensureMetadata(snapshot); err != nil {
			r.b.log.Error().Err(err).Msg("replication: cannot store the system topics as master")
		}
	}()
	r.wg.Add(1)
	go r.startMasterWork(term, termDone, end)
}

// startMasterWork starts what only a master runs — the delay-level and
// timer deliverers — once everything its log held when it was elected is
// in the queues and fed to every listener (so the old master's saved
// delivery progress, a metadata record, is applied and the timer index is
// complete), and if it is still master of that term (termDone is that
// term's).
// The transaction check-back needs no start: each round runs only on a
// writable master (checkTransactions).
func (r *replication) startMasterWork(term uint64, termDone <-chan struct{}, end int64) {
	defer r.wg.Done()
	if !waitFed(r.ctx, r.b.cq, end, termDone) {
		return
	}
	r.delayMu.Lock()
	defer r.delayMu.Unlock()
	r.mu.Lock()
	cur := r.term
	r.mu.Unlock()
	svc := r.b.delaySvc
	if cur != term || svc == nil || r.ctx.Err() != nil {
		return
	}
	if err := svc.Reload(); err != nil {
		r.b.log.Error().Err(err).Msg("replication: cannot load the delay deliverers' progress; they do not run")
		return
	}
	svc.Start()
	r.b.log.Info().Int64("epoch", r.epochNow()).Msg("replication: delay and timer deliverers started on the master")
}

// stopMasterWork stops the master-only work (becomeSlave, stop).
func (r *replication) stopMasterWork() {
	r.delayMu.Lock()
	defer r.delayMu.Unlock()
	if svc := r.b.delaySvc; svc != nil && svc.Running() {
		svc.Stop()
		r.b.log.Info().Msg("replication: delay and timer deliverers stopped (not master)")
	}
}

// nextTermLocked begins a new term and tells the work waiting in the
// old one (termDone).
func (r *replication) nextTermLocked() uint64 {
	r.term++
	if r.termDone != nil {
		close(r.termDone)
	}
	r.termDone = make(chan struct{})
	return r.term
}

// fedSource is the consume-queue store as waitFed sees it.
type fedSource interface {
	FedOffset() int64
	WatchFed() (<-chan struct{}, func())
}

var _ fedSource = (*consumequeue.Store)(nil)

// waitFed waits until every listener of cq has taken the log below end:
// it wakes when cq signals that FedOffset advanced, with no polling. It
// reports false when ctx ends or done closes first.
func waitFed(ctx context.Context, cq fedSource, end int64, done <-chan struct{}) bool {
	wake, stop := cq.WatchFed()
	defer stop()
	for cq.FedOffset() < end {
		select {
		case <-ctx.Done():
			return false
		case <-done:
			return false
		case <-wake:
		}
	}
	return true
}

func (r *replication) epochNow() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch
}

// becomeSlave follows the master rep names: parked answers fail, local
// writes stop and a receiver streams from the master.
func (r *replication) becomeSlave(rep controller.HeartbeatReply) {
	r.masterEpoch.Store(-1)  // ends this broker's sender streams
	r.b.FollowMetadata(true) // offsets committed on the master arrive through the log
	r.mu.Lock()
	wasMaster := r.role == RoleMaster
	r.role, r.epoch, r.masterID, r.masterAddr = RoleSlave, rep.Epoch, rep.MasterID, rep.MasterAddr
	r.inSync, r.proposed = slices.Clone(rep.InSync), nil
	r.nextTermLocked()
	r.masterEnd, r.slaveCaughtUp, r.catchUp = 0, time.Time{}, nil
	r.farEnd.Store(0)
	r.failParkedLocked("this broker stopped being master before the send was replicated; it may or may not be kept")
	rcv := r.receiver
	r.receiver = nil
	r.mu.Unlock()
	r.stopMasterWork()
	if rcv != nil {
		rcv.Close()
	}
	if wasMaster {
		r.b.log.Warn().Int64("epoch", rep.Epoch).Msg("replication: this broker is no longer master")
	}
	r.b.log.Info().Int64("epoch", rep.Epoch).Int64("master", rep.MasterID).Str("master_addr", rep.MasterAddr).
		Str("reason", rep.Reason).Msg("replication: this broker is a slave")
	if rep.MasterAddr != "" {
		// Know how far behind this slave starts before it streams.
		ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
		r.refreshMasterEnd(ctx)
		cancel()
		epoch, addr := rep.Epoch, rep.MasterAddr
		n, err := replica.StartReceiver(r.ctx, replica.ReceiverConfig{
			Cluster: r.b.cfg.ClusterName, BrokerName: r.b.cfg.BrokerName, ReplicaID: r.b.cfg.ReplicaID,
			Master:         func() (string, int64) { return addr, epoch },
			RequireFlushed: r.b.cfg.RequireFlushedAcks,
			DeadTimeout:    10 * replSenderIdle,
			MaxBackoff:     500 * time.Millisecond,
			BeforeTruncate: r.beforeTruncate,
			OnCommit:       r.onMasterCommit,
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				return replAuthDial(ctx, addr, r.b.clusterSecret)
			},
			Logger: r.b.log.With().Str("component", "replication").Logger(),
		}, r.b.clog)
		if err != nil {
			r.b.log.Error().Err(err).Msg("replication: cannot start the receiver")
		} else {
			r.mu.Lock()
			if r.role == RoleSlave && r.epoch == epoch && r.receiver == nil {
				r.receiver = n
				n = nil
			}
			r.mu.Unlock()
			if n != nil {
				n.Close()
			}
		}
	}
	r.b.triggerRegister()
}

// refreshMasterEnd reads the master's end as it last reported it to the
// control plane: what this slave's lag and catch-up count against.
func (r *replication) refreshMasterEnd(ctx context.Context) {
	st, err := r.cc.State(ctx, r.b.cfg.ClusterName, r.b.cfg.BrokerName)
	if err != nil || len(st.Groups) != 1 {
		return
	}
	for _, rp := range st.Groups[0].Replicas {
		if rp.ID == st.Groups[0].MasterID {
			r.noteMasterEnd(rp.MaxOffset, time.Now())
		}
	}
}

// beforeTruncate refuses to cut what was dispatched: that was committed.
func (r *replication) beforeTruncate(off int64) error {
	if d := r.b.cq.DispatchedOffset(); d > off {
		return fmt.Errorf("broker: the master's history would cut this replica's log to %d, below what it dispatched (%d)", off, d)
	}
	return nil
}

// onMasterCommit takes the commit point a slave's master sent.
func (r *replication) onMasterCommit(off int64) {
	r.mu.Lock()
	r.slaveCommit = off
	r.mu.Unlock()
	r.raiseCommit(off)
}

// raiseCommit moves the commit point (and the dispatch limit) up to off.
func (r *replication) raiseCommit(off int64) bool {
	for {
		cur := r.commit.Load()
		if off <= cur {
			return false
		}
		if r.commit.CompareAndSwap(cur, off) {
			r.src.limit.Store(off)
			r.src.bells.Ring()
			return true
		}
	}
}

// onAck records a slave's ACK and advances the commit point.
func (r *replication) onAck(a replica.Ack) {
	now := time.Now()
	end := r.b.clog.WrittenOffset()
	r.mu.Lock()
	if a.Epoch != r.epoch || r.role != RoleMaster {
		r.mu.Unlock()
		return
	}
	s := r.slaves[a.ReplicaID]
	if s == nil {
		s = &slaveProgress{}
		r.slaves[a.ReplicaID] = s
	}
	s.written, s.flushed, s.lastAck = a.Written, a.Flushed, now
	if s.written >= end {
		s.caughtUp = now
	} else if !s.prevAt.IsZero() && s.written >= s.prevEnd {
		if s.prevAt.After(s.caughtUp) {
			s.caughtUp = s.prevAt
		}
	}
	s.prevEnd, s.prevAt = end, now
	r.mu.Unlock()
	r.advance()
}

// acked is the offset a slave's copy counts to.
func (r *replication) acked(s *slaveProgress) int64 {
	if r.b.cfg.RequireFlushedAcks {
		return s.flushed
	}
	return s.written
}

// advance recomputes the commit point on the master and sends the parked
// answers it covers.
func (r *replication) advance() {
	var ready []parkedAck
	r.mu.Lock()
	if r.role == RoleMaster {
		c := r.b.clog.WrittenOffset()
		for _, id := range r.membersLocked() {
			if id == r.b.cfg.ReplicaID {
				continue
			}
			s := r.slaves[id]
			if s == nil {
				c = -1
				break
			}
			c = min(c, r.acked(s))
		}
		if c >= 0 {
			r.raiseCommit(c)
		}
		if r.lease.LeaseValid(time.Now()) {
			commit := r.commit.Load()
			for len(r.parked) > 0 && r.parked[0].end <= commit {
				ready = append(ready, heap.Pop(&r.parked).(parkedAck))
			}
		} else if len(r.parked) > 0 {
			// Fenced: the control plane may elect another master, which
			// may not have these sends. Waiting on would only end in the
			// client's timeout.
			r.failParkedLocked(fmt.Sprintf("the master's lease with the control plane lapsed (epoch %d) before the send was replicated; it may or may not be kept", r.epoch))
		}
	}
	r.mu.Unlock()
	for _, p := range ready {
		_ = p.conn.Reply(p.resp)
	}
}

// membersLocked is the set acks count against: the in-sync set, with the
// proposed one while a change is in flight.
func (r *replication) membersLocked() []int64 {
	m := slices.Clone(r.inSync)
	for _, id := range r.proposed {
		if !slices.Contains(m, id) {
			m = append(m, id)
		}
	}
	return m
}

// failParkedLocked answers every parked send with an error.
func (r *replication) failParkedLocked(why string) {
	for _, p := range r.parked {
		_ = p.conn.Reply(remoting.NewResponse(p.req, protocol.RespServiceNotAvailable, "service not available now: "+why))
	}
	r.parked = r.parked[:0]
}

// pump follows the log on the master: a write can move the commit point
// (alone in the set, the master's own end is it) and wakes the dispatcher.
func (r *replication) pump() {
	defer r.wg.Done()
	wake, stop := r.b.clog.Watch()
	defer stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
		r.advance()
		r.src.bells.Ring()
	}
}

// inSyncLoop shrinks and grows the in-sync set on the master.
func (r *replication) inSyncLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		r.checkInSync(time.Now())
	}
}

func (r *replication) lagMax() time.Duration {
	if d := r.b.cfg.ReplicaLagMax.D(); d > 0 {
		return d
	}
	return defaultReplicaLagMax
}

// checkInSync proposes a new in-sync set when a member fell behind or a
// slave caught up.
func (r *replication) checkInSync(now time.Time) {
	if r.alterBusy.Load() {
		return
	}
	r.mu.Lock()
	if r.role != RoleMaster || r.proposed != nil || !r.lease.LeaseValid(now) {
		r.mu.Unlock()
		return
	}
	self := r.b.cfg.ReplicaID
	lag := r.lagMax()
	next := []int64{self}
	commit := r.commit.Load()
	for _, id := range r.inSync {
		if id == self {
			continue
		}
		s := r.slaves[id]
		if s == nil {
			// Not heard from in this term yet: give it the lag time from
			// when the term began (the replies carry no start time, so
			// count from the first answer that made this broker master).
			s = &slaveProgress{caughtUp: now}
			r.slaves[id] = s
		}
		if now.Sub(s.caughtUp) <= lag {
			next = append(next, id)
		}
	}
	for id, s := range r.slaves {
		if slices.Contains(next, id) || slices.Contains(r.inSync, id) {
			continue
		}
		if !s.lastAck.IsZero() && now.Sub(s.caughtUp) <= lag/2 && r.acked(s) >= commit {
			next = append(next, id)
		}
	}
	slices.Sort(next)
	cur := slices.Sorted(slices.Values(r.inSync))
	if slices.Equal(next, cur) {
		r.mu.Unlock()
		return
	}
	r.proposed = next
	epoch := r.epoch
	r.mu.Unlock()
	r.alterBusy.Store(true)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.alterBusy.Store(false)
		ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
		defer cancel()
		dec, err := r.cc.AlterInSync(ctx, controller.AlterInSyncRequest{Cluster: r.b.cfg.ClusterName,
			BrokerName: r.b.cfg.BrokerName, ReplicaID: self, Epoch: epoch, InSync: next})
		r.mu.Lock()
		if r.epoch == epoch {
			r.proposed = nil
			if err == nil && dec.Group != nil {
				r.inSync = slices.Clone(dec.Group.InSync)
			}
		}
		r.mu.Unlock()
		if err != nil {
			r.b.log.Warn().Err(err).Ints64("in_sync", next).Msg("replication: in-sync set change refused")
			return
		}
		r.b.log.Info().Ints64("from", cur).Ints64("to", next).Msg("replication: in-sync set changed")
		r.advance()
	}()
}

// Status is the replication state for GET /v1/broker and the metrics.
func (r *replication) Status() protocol.ReplicationStatus {
	st := protocol.ReplicationStatus{Role: RoleStandalone, ReplicaID: r.b.cfg.BrokerID, InSync: []int64{},
		Replicas: []protocol.ReplicaStatus{}, MaxOffset: r.b.clog.WrittenOffset()}
	if !r.on {
		st.CommitOffset = st.MaxOffset
		return st
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st.Role, st.ReplicaID, st.Epoch, st.MasterAddr = r.role, r.b.cfg.ReplicaID, r.epoch, r.masterAddr
	if st.Role == "" {
		st.Role = RoleSlave
	}
	st.InSync = append(st.InSync, r.inSync...)
	st.CommitOffset = r.commit.Load()
	st.Error = r.lastErr
	switch r.role {
	case RoleMaster:
		for id, s := range r.slaves {
			rs := protocol.ReplicaStatus{ID: id, Addr: r.addrs[id], InSync: slices.Contains(r.inSync, id), AckedOffset: r.acked(s),
				LagBytes: max(st.MaxOffset-r.acked(s), 0)}
			if !s.caughtUp.IsZero() && rs.LagBytes > 0 {
				rs.LagSeconds = now.Sub(s.caughtUp).Seconds()
			}
			st.Replicas = append(st.Replicas, rs)
			st.LagBytes = max(st.LagBytes, rs.LagBytes)
			st.LagSeconds = max(st.LagSeconds, rs.LagSeconds)
		}
		slices.SortFunc(st.Replicas, func(a, b protocol.ReplicaStatus) int { return int(a.ID - b.ID) })
	case RoleSlave:
		if r.receiver != nil {
			rs := r.receiver.Status()
			if !rs.Connected && rs.Err != nil {
				st.Error = rs.Err.Error()
			}
		}
		// What this slave lacks of the master: the master's end as it
		// last reported it to the control plane (or the commit point, a
		// lower bound of it), less this slave's end; and how long since
		// this slave last held the master's end.
		st.MasterEndOffset = max(r.masterEnd, r.slaveCommit)
		st.LagBytes = max(st.MasterEndOffset-st.MaxOffset, 0)
		if st.LagBytes > 0 && !r.slaveCaughtUp.IsZero() {
			st.LagSeconds = now.Sub(r.slaveCaughtUp).Seconds()
		}
		if c := r.catchUp; c != nil {
			cs := &protocol.CatchUpStatus{FromOffset: c.from, DoneBytes: max(st.MaxOffset-c.from, 0),
				TotalBytes: max(st.MasterEndOffset-c.from, 0), RemainingBytes: st.LagBytes,
				ElapsedSeconds: now.Sub(c.began).Seconds()}
			if cs.ElapsedSeconds > 0 {
				cs.RateBytesPerSec = float64(cs.DoneBytes) / cs.ElapsedSeconds
			}
			st.CatchUp = cs
		}
	}
	return st
}

// catchUpLogEvery is how often a slave catching up logs its progress.
const catchUpLogEvery = 3 * time.Second

// catchUpMinBytes: a slave in the in-sync set that lacks less than this is
// merely following, not catching up.
const catchUpMinBytes = 1 << 20

// catchUp is a slave's catch-up in progress: from when it lacked data
// while out of the in-sync set (or lacked at least catchUpMinBytes) until
// it holds the master's end (or is in the set lacking less than
// catchUpMinBytes).
type catchUp struct {
	from    int64 // this slave's log end when it began
	began   time.Time
	logged  time.Time
	lastOff int64 // log end at the last progress line, for the rate
}

// noteMasterEnd takes the master's log end (as the control plane last
// heard it) on a slave, and starts, logs and ends catch-ups.
func (r *replication) noteMasterEnd(end int64, now time.Time) {
	written := r.b.clog.WrittenOffset()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != RoleSlave {
		return
	}
	r.masterEnd = max(r.masterEnd, end)
	r.farEnd.Store(r.masterEnd)
	inSync := slices.Contains(r.inSync, r.b.cfg.ReplicaID)
	behind := r.masterEnd - written
	if behind <= 0 || r.slaveCaughtUp.IsZero() {
		// Never caught up yet: count from the first look.
		r.slaveCaughtUp = now
	}
	c := r.catchUp
	switch {
	case c == nil && behind > 0 && (!inSync || behind >= catchUpMinBytes):
		r.catchUp = &catchUp{from: written, began: now, logged: now, lastOff: written}
		r.b.log.Info().Int64("from", written).Int64("master_end", r.masterEnd).Int64("remaining_bytes", behind).
			Msg("replication: catching up with the master")
	case c != nil && (behind <= 0 || (inSync && behind < catchUpMinBytes)):
		secs := now.Sub(c.began).Seconds()
		ev := r.b.log.Info().Int64("bytes", written-c.from).Float64("seconds", secs)
		if secs > 0 {
			ev = ev.Float64("rate_bytes_per_sec", float64(written-c.from)/secs)
		}
		ev.Msg("replication: caught up with the master")
		r.catchUp = nil
	case c != nil && now.Sub(c.logged) >= catchUpLogEvery:
		done, total := written-c.from, r.masterEnd-c.from
		rate := float64(written-c.lastOff) / now.Sub(c.logged).Seconds()
		ev := r.b.log.Info().Int64("done_bytes", done).Int64("total_bytes", total).Int64("remaining_bytes", behind).
			Float64("rate_bytes_per_sec", rate)
		if rate > 0 {
			ev = ev.Dur("eta", time.Duration(float64(behind)/rate*float64(time.Second)))
		}
		ev.Msgf("replication: catching up: %d of %d bytes (%.1f%%)", done, total, 100*float64(done)/float64(max(total, 1)))
		c.logged, c.lastOff = now, written
	}
}

// suggestBroker is the broker id a pull answer suggests for the next pull
// of the same queue (suggestWhichBrokerId; 0 is the master). first is the
// commitlog offset of the first message the pull read, -1 when it read
// none. The rule:
//
//   - A master suggests a slave when the consumer is far behind: its
//     message lies more than slave_read_behind_bytes (default 40% of
//     physical memory) before the log's end, so reading it goes to disk.
//     The slave is the group's whichBrokerWhenConsumeSlowly if that is a
//     live slave holding the message, else the lowest-id one that is; a
//     slave is live when it acknowledged within replica_lag_max. With no
//     such slave it suggests itself (0).
//   - A slave suggests itself while the consumer is still that far
//     behind the master's end, and the master (0) once it is closer, or
//     when the pull read nothing here (caught up, or a range this slave
//     does not hold).
//   - A standalone broker suggests 0.
func (r *replication) suggestBroker(whichSlow, first int64) int64 {
	if !r.on || first < 0 {
		return 0
	}
	limit := r.b.c().SlaveReadBehindBytes
	if limit <= 0 {
		limit = hotBytes()
	}
	end := max(r.b.clog.WrittenOffset(), r.farEnd.Load())
	if end-first <= limit {
		return 0 // the common case, without the lock
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.role {
	case RoleMaster:
		live := func(id int64) bool {
			s := r.slaves[id]
			return id != r.b.cfg.ReplicaID && s != nil && !s.lastAck.IsZero() &&
				now.Sub(s.lastAck) <= r.lagMax() && r.acked(s) > first
		}
		if whichSlow > 0 && live(whichSlow) {
			return whichSlow
		}
		best := int64(0)
		for id := range r.slaves {
			if live(id) && (best == 0 || id < best) {
				best = id
			}
		}
		return best
	case RoleSlave:
		return r.b.cfg.ReplicaID
	}
	return 0
}
