package broker

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
	"github.com/ferrymq/ferry/replica"
)

// Acknowledgements on the master: the commit point, parked acks=all
// answers and the in-sync set (replication.go has the overview).

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

// raiseCommit moves the commit point (and the dispatch limit) up to off
// and rings the commit bells. Not under r.mu: the bells dispatch to the
// consume queues on the ringing goroutine.
func (r *replication) raiseCommit(off int64) bool {
	if !r.moveCommit(off) {
		return false
	}
	r.src.bells.Ring()
	return true
}

// moveCommit moves the commit point and the dispatch limit up to off
// without ringing; the caller rings once it holds no lock.
func (r *replication) moveCommit(off int64) bool {
	for {
		cur := r.commit.Load()
		if off <= cur {
			return false
		}
		if r.commit.CompareAndSwap(cur, off) {
			r.src.limit.Store(off)
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
	moved := false
	r.mu.Lock()
	if r.role == RoleMaster {
		// Acks count against the in-sync set, with the proposed one
		// while a change is in flight.
		c := r.b.clog.WrittenOffset()
	members:
		for _, set := range [2][]int64{r.inSync, r.proposed} {
			for _, id := range set {
				if id == r.b.cfg.ReplicaID {
					continue
				}
				s := r.slaves[id]
				if s == nil {
					c = -1
					break members
				}
				c = min(c, r.acked(s))
			}
		}
		if c >= 0 {
			moved = r.moveCommit(c)
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
	if moved {
		// Consumers' held pulls are answered from here, before the
		// producers': the message is theirs as soon as it is committed.
		r.src.bells.Ring()
	}
	for _, p := range ready {
		_ = p.conn.Reply(p.resp)
	}
}

// failParkedLocked answers every parked send with an error.
func (r *replication) failParkedLocked(why string) {
	for _, p := range r.parked {
		_ = p.conn.Reply(remoting.NewResponse(p.req, protocol.RespServiceNotAvailable, "service not available now: "+why))
	}
	r.parked = r.parked[:0]
}

// pump rings the commit bells every tick, so that those waiting for the
// commit point see a lapsed lease (and parked answers fail) within one
// tick. Appends are followed by followLog, on the appending goroutine.
func (r *replication) pump() {
	defer r.wg.Done()
	defer r.followLog()()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		r.advance()
		r.src.bells.Ring()
	}
}

// followLog has every append to the log advance the commit point, on the
// goroutine that appended, until the returned function is called. Only a
// master alone in its in-sync set moves it that way (its own end is the
// commit point); otherwise the slaves' ACKs move it, and an append rings
// no bell and wakes no goroutine: the streams to the slaves follow the
// log themselves, and the commit bells ring only when the commit point
// moves (advance) or the pump ticks.
func (r *replication) followLog() func() {
	return r.b.clog.WatchFunc(func() {
		if r.masterEpoch.Load() >= 0 {
			r.advance()
		}
	})
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
