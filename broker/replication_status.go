package broker

import (
	"slices"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// What replication shows: its status, a slave's catch-up and the
// pull path's suggested broker (replication.go has the overview).

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
//
// An answer that read messages and sends the consumer to another replica
// counts in ferry_replication_pull_redirects_total.
func (r *replication) suggestBroker(whichSlow, first int64) int64 {
	id := r.suggest(whichSlow, first)
	if !r.on || first < 0 {
		return id
	}
	if r.masterEpoch.Load() >= 0 {
		if id != 0 {
			r.toSlave.Inc()
		}
	} else if id == 0 {
		r.toMaster.Inc()
	}
	return id
}

// suggest is suggestBroker's rule.
func (r *replication) suggest(whichSlow, first int64) int64 {
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
