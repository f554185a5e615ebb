package controller

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Op names a command (part of the raft log format: never rename).
type Op string

// Commands (see the package doc).
const (
	OpRegister       Op = "register"
	OpHeartbeat      Op = "heartbeat"
	OpAlterInSync    Op = "alter_in_sync"
	OpElect          Op = "elect"
	OpSwitchOver     Op = "switch_over"
	OpConfigure      Op = "configure"
	OpAnnounceLeader Op = "announce_leader"
)

// Command is one change of State: an entry of the control plane's log,
// encoded as JSON. Fields not used by an Op are left zero.
type Command struct {
	Op Op `json:"op"`
	// At is when the command was proposed, on the proposer's clock. All
	// time-dependent decisions use it, never a clock.
	At         time.Time `json:"at"`
	Cluster    string    `json:"cluster,omitempty"`
	BrokerName string    `json:"broker_name,omitempty"`
	// ReplicaID is the replica that registers or heartbeats, or the master
	// that proposes an in-sync set.
	ReplicaID int64  `json:"replica_id,omitempty"`
	Addr      string `json:"addr,omitempty"`
	// Epoch is the epoch the replica reports (heartbeat) or the master
	// proposes under (alter_in_sync).
	Epoch     int64      `json:"epoch,omitempty"`
	MaxOffset int64      `json:"max_offset,omitempty"`
	LastEpoch EpochEntry `json:"last_epoch,omitzero"`
	// InSync is the proposed in-sync set (alter_in_sync).
	InSync []int64 `json:"in_sync,omitempty"`
	// Target is the replica to switch over to.
	Target int64 `json:"target,omitempty"`
	// Config is the group's settings: applied by configure, and used by
	// register when the group is new.
	Config *GroupConfig `json:"config,omitempty"`
	// ServerID names the control-plane server announcing that it leads
	// (announce_leader); Addr is then its name-server address.
	ServerID string `json:"server_id,omitempty"`
}

// Result is the outcome of one command. Err is nil when it was applied;
// Reason explains the decision either way.
type Result struct {
	Err    error
	Reason string
	// Changed is true when the state changed beyond heartbeat bookkeeping
	// (a replica, the master, the epoch, the in-sync set or the config).
	Changed bool
	// PossibleDataLoss is set by an unclean election.
	PossibleDataLoss bool
	// Group is a copy of the group after the command (nil if none).
	Group *Group
}

func refused(err error, g *Group, format string, args ...any) Result {
	r := Result{Err: fmt.Errorf("%w: %s", err, fmt.Sprintf(format, args...)), Reason: fmt.Sprintf(format, args...)}
	if g != nil {
		r.Group = g.Clone()
	}
	return r
}

func applied(g *Group, changed bool, format string, args ...any) Result {
	return Result{Reason: fmt.Sprintf(format, args...), Changed: changed, Group: g.Clone()}
}

// Apply applies one command and says what it decided. A refused command
// leaves the state as it was.
func (s *State) Apply(c Command) Result {
	if c.Op == OpAnnounceLeader {
		if c.ServerID == "" || c.Addr == "" {
			return refused(ErrBadCommand, nil, "announce_leader needs a server id and an address")
		}
		changed := s.Servers[c.ServerID] != c.Addr
		s.Servers[c.ServerID] = c.Addr
		return Result{Changed: changed, Reason: "control-plane server " + c.ServerID + " leads, name server at " + c.Addr}
	}
	if c.Cluster == "" || c.BrokerName == "" {
		return refused(ErrBadCommand, nil, "%s needs a cluster and a broker name", c.Op)
	}
	if c.At.IsZero() {
		return refused(ErrBadCommand, nil, "%s carries no time", c.Op)
	}
	if c.Op == OpRegister {
		return s.register(c)
	}
	g := s.Group(c.Cluster, c.BrokerName)
	if g == nil {
		return refused(ErrUnknownGroup, nil, "no broker group %s registered", GroupKey(c.Cluster, c.BrokerName))
	}
	switch c.Op {
	case OpHeartbeat:
		return heartbeat(g, c)
	case OpAlterInSync:
		return alterInSync(g, c)
	case OpElect:
		return elect(g, c.At)
	case OpSwitchOver:
		return switchOver(g, c)
	case OpConfigure:
		if c.Config == nil {
			return refused(ErrBadCommand, g, "configure carries no config")
		}
		if c.Config.Lease < 0 {
			return refused(ErrBadCommand, g, "lease %v must not be negative", c.Config.Lease)
		}
		g.Config = *c.Config
		return applied(g, true, "%s configured: unclean election %t, lease %v", g.Key(), g.Config.UncleanElection, g.Config.lease())
	}
	return refused(ErrBadCommand, g, "unknown op %q", c.Op)
}

func (s *State) register(c Command) Result {
	if c.ReplicaID < 0 {
		return refused(ErrBadCommand, nil, "replica id %d must not be negative", c.ReplicaID)
	}
	if c.Addr == "" {
		return refused(ErrBadCommand, nil, "replica %d registers without an address", c.ReplicaID)
	}
	g := s.Group(c.Cluster, c.BrokerName)
	if g == nil {
		g = &Group{Cluster: c.Cluster, BrokerName: c.BrokerName, MasterID: NoMaster}
		if c.Config != nil {
			g.Config = *c.Config
		}
		s.Groups[g.Key()] = g
	}
	if r := g.Replica(c.ReplicaID); r != nil {
		if r.Addr == c.Addr {
			return applied(g, false, "replica %d of %s already registered at %s", c.ReplicaID, g.Key(), c.Addr)
		}
		old := r.Addr
		r.Addr = c.Addr
		return applied(g, true, "replica %d of %s moved from %s to %s", c.ReplicaID, g.Key(), old, c.Addr)
	}
	g.addReplica(Replica{ID: c.ReplicaID, Addr: c.Addr, LastHeartbeat: c.At})
	return applied(g, true, "replica %d of %s registered at %s", c.ReplicaID, g.Key(), c.Addr)
}

func heartbeat(g *Group, c Command) Result {
	r := g.Replica(c.ReplicaID)
	if r == nil {
		return refused(ErrUnknownReplica, g, "replica %d of %s is not registered", c.ReplicaID, g.Key())
	}
	if c.Epoch > g.Epoch {
		return refused(ErrBadCommand, g, "replica %d reports epoch %d, above %s's epoch %d", c.ReplicaID, c.Epoch, g.Key(), g.Epoch)
	}
	r.LastHeartbeat = c.At
	r.Epoch = c.Epoch
	r.MaxOffset = c.MaxOffset
	r.LastEpoch = c.LastEpoch
	if g.MasterID == NoMaster {
		return applied(g, false, "replica %d of %s waits for the group's first master", c.ReplicaID, g.Key())
	}
	if c.ReplicaID != g.MasterID {
		return applied(g, false, "replica %d of %s is a slave of master %d in epoch %d", c.ReplicaID, g.Key(), g.MasterID, g.Epoch)
	}
	if exp := c.At.Add(g.Config.lease()); exp.After(g.LeaseExpiry) {
		g.LeaseExpiry = exp
	}
	return applied(g, false, "master %d of %s renewed its lease in epoch %d until %s",
		c.ReplicaID, g.Key(), g.Epoch, g.LeaseExpiry.Format(time.RFC3339Nano))
}

func alterInSync(g *Group, c Command) Result {
	switch {
	case c.Epoch < g.Epoch:
		return refused(ErrStaleEpoch, g, "in-sync change from replica %d carries epoch %d, %s is at epoch %d", c.ReplicaID, c.Epoch, g.Key(), g.Epoch)
	case c.Epoch > g.Epoch:
		return refused(ErrBadCommand, g, "in-sync change carries epoch %d, above %s's epoch %d", c.Epoch, g.Key(), g.Epoch)
	case c.ReplicaID != g.MasterID:
		return refused(ErrNotMaster, g, "replica %d proposed an in-sync set but %d is the master of %s", c.ReplicaID, g.MasterID, g.Key())
	case !g.LeaseValid(c.At):
		return refused(ErrLeaseExpired, g, "master %d of %s proposed an in-sync set after its lease ran out", c.ReplicaID, g.Key())
	}
	set := slices.Clone(c.InSync)
	slices.Sort(set)
	set = slices.Compact(set)
	if _, ok := slices.BinarySearch(set, g.MasterID); !ok {
		return refused(ErrMasterNotInSync, g, "proposed in-sync set %v of %s leaves out master %d", set, g.Key(), g.MasterID)
	}
	for _, id := range set {
		if g.Replica(id) == nil {
			return refused(ErrUnknownReplica, g, "proposed in-sync set %v of %s names unregistered replica %d", set, g.Key(), id)
		}
	}
	if slices.Equal(set, g.InSync) {
		return applied(g, false, "in-sync set of %s unchanged: %v", g.Key(), set)
	}
	added, removed := diff(g.InSync, set)
	g.InSync = set
	g.InSyncVersion++
	return applied(g, true, "in-sync set of %s is now %v (added %v, removed %v) in epoch %d",
		g.Key(), set, added, removed, g.Epoch)
}

// candidateBetter orders election candidates: highest reported epoch,
// then highest max offset, then the lowest id (so the choice is
// deterministic).
func candidateBetter(a, b *Replica) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch > b.Epoch
	}
	if a.MaxOffset != b.MaxOffset {
		return a.MaxOffset > b.MaxOffset
	}
	return a.ID < b.ID
}

func elect(g *Group, now time.Time) Result {
	if g.LeaseValid(now) {
		return refused(ErrMasterAlive, g, "master %d of %s holds its lease until %s",
			g.MasterID, g.Key(), g.LeaseExpiry.Format(time.RFC3339Nano))
	}
	lease := g.Config.lease()
	pick := func(eligible func(*Replica) bool) *Replica {
		var best *Replica
		for i := range g.Replicas {
			r := &g.Replicas[i]
			if r.ID == g.MasterID || !r.alive(now, lease) || !eligible(r) {
				continue
			}
			if best == nil || candidateBetter(r, best) {
				best = r
			}
		}
		return best
	}
	old := g.MasterID
	var why string
	var unclean bool
	var best *Replica
	if g.Epoch == 0 {
		// No master ever: nothing was acknowledged, every live replica is
		// eligible (one may hold data from before it joined the group).
		best = pick(func(*Replica) bool { return true })
		why = "first master"
	} else {
		best = pick(func(r *Replica) bool { return g.InSyncContains(r.ID) })
		why = fmt.Sprintf("master %d lease expired at %s; chosen from in-sync set %v", old, g.LeaseExpiry.Format(time.RFC3339Nano), g.InSync)
		if best == nil && g.Config.UncleanElection {
			best = pick(func(*Replica) bool { return true })
			unclean = best != nil
			why = fmt.Sprintf("master %d lease expired and no in-sync replica of %v is alive: UNCLEAN election, acknowledged messages may be lost", old, g.InSync)
		}
	}
	if best == nil {
		alive := []int64{}
		for i := range g.Replicas {
			if r := &g.Replicas[i]; r.ID != old && r.alive(now, lease) {
				alive = append(alive, r.ID)
			}
		}
		if g.Epoch == 0 {
			return refused(ErrNoCandidate, g, "%s has no live replica to become its first master", g.Key())
		}
		return refused(ErrNoCandidate, g, "master %d of %s lost its lease and no in-sync replica of %v is alive (alive outside it: %v; unclean election %s)",
			old, g.Key(), g.InSync, alive, onOff(g.Config.UncleanElection))
	}
	g.MasterID = best.ID
	g.Epoch++
	g.LeaseExpiry = now.Add(lease)
	switch {
	case unclean || g.Epoch == 1:
		g.InSync = []int64{best.ID}
	default:
		g.InSync = slices.DeleteFunc(g.InSync, func(id int64) bool { return id == old })
	}
	g.InSyncVersion++
	g.LastReason = fmt.Sprintf("replica %d elected master of %s in epoch %d (%s; its epoch %d, offset %d)",
		best.ID, g.Key(), g.Epoch, why, best.Epoch, best.MaxOffset)
	r := applied(g, true, "%s", g.LastReason)
	r.PossibleDataLoss = unclean
	return r
}

func switchOver(g *Group, c Command) Result {
	t := g.Replica(c.Target)
	switch {
	case t == nil:
		return refused(ErrUnknownReplica, g, "switch-over target %d is not a replica of %s", c.Target, g.Key())
	case c.Target == g.MasterID:
		return applied(g, false, "replica %d is already the master of %s in epoch %d", c.Target, g.Key(), g.Epoch)
	case !g.InSyncContains(c.Target):
		return refused(ErrNotInSync, g, "switch-over target %d of %s is not in the in-sync set %v", c.Target, g.Key(), g.InSync)
	case !t.alive(c.At, g.Config.lease()):
		return refused(ErrNoCandidate, g, "switch-over target %d of %s has not heartbeated since %s",
			c.Target, g.Key(), t.LastHeartbeat.Format(time.RFC3339Nano))
	}
	old := g.MasterID
	g.MasterID = c.Target
	g.Epoch++
	g.LeaseExpiry = c.At.Add(g.Config.lease())
	g.LastReason = fmt.Sprintf("replica %d took over %s from master %d in epoch %d (planned switch-over)", c.Target, g.Key(), old, g.Epoch)
	return applied(g, true, "%s", g.LastReason)
}

// diff returns what b has that a has not, and what a has that b has not
// (both sorted).
func diff(a, b []int64) (added, removed []int64) {
	added, removed = []int64{}, []int64{}
	for _, id := range b {
		if _, ok := slices.BinarySearch(a, id); !ok {
			added = append(added, id)
		}
	}
	for _, id := range a {
		if _, ok := slices.BinarySearch(b, id); !ok {
			removed = append(removed, id)
		}
	}
	return added, removed
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// FormatSet renders an in-sync set as "1,2,3" (for tables).
func FormatSet(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}
