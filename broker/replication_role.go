package broker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/replica"
)

// Roles: the heartbeat to the control plane and the changes of role it
// brings (replication.go has the overview).

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
	r.eosEnd.Store(end) // before any send is taken as master
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
	r.b.registrar.trigger()
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
// writable master (txnService.checkRound).
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
	r.b.registrar.trigger()
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
// The producer state built from the part cut away is rebuilt first.
func (r *replication) beforeTruncate(off int64) error {
	if d := r.b.cq.DispatchedOffset(); d > off {
		return fmt.Errorf("broker: the master's history would cut this replica's log to %d, below what it dispatched (%d)", off, d)
	}
	return r.b.idem.rebuild(off) // eos_replica.go
}

// onMasterCommit takes the commit point a slave's master sent.
func (r *replication) onMasterCommit(off int64) {
	r.mu.Lock()
	r.slaveCommit = off
	r.mu.Unlock()
	r.raiseCommit(off)
}
