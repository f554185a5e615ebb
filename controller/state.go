package controller

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// NoMaster is Group.MasterID while a group has no master.
const NoMaster int64 = -1

// DefaultLease is how long a master's lease runs after the last heartbeat
// the control plane accepted from it, unless the group configures another.
const DefaultLease = 3 * time.Second

// Errors of refused commands. Result.Err wraps one of them; Result.Reason
// says the particulars.
var (
	ErrBadCommand      = errors.New("controller: bad command")
	ErrUnknownGroup    = errors.New("controller: unknown broker group")
	ErrUnknownReplica  = errors.New("controller: unknown replica")
	ErrStaleEpoch      = errors.New("controller: stale epoch")
	ErrNotMaster       = errors.New("controller: not the master")
	ErrLeaseExpired    = errors.New("controller: master lease expired")
	ErrMasterAlive     = errors.New("controller: master lease still valid")
	ErrNoCandidate     = errors.New("controller: no replica can become master")
	ErrNotInSync       = errors.New("controller: replica not in the in-sync set")
	ErrMasterNotInSync = errors.New("controller: in-sync set must contain the master")
)

// EpochEntry is one line of a replica's epoch history: from StartOffset on,
// its commitlog holds what the master of Epoch wrote.
type EpochEntry struct {
	Epoch       int64 `json:"epoch"`
	StartOffset int64 `json:"start_offset"`
}

// GroupConfig is a broker group's control-plane settings.
type GroupConfig struct {
	// UncleanElection allows electing a replica outside the in-sync set
	// when none inside it is alive: possible loss of acknowledged messages.
	UncleanElection bool `json:"unclean_election"`
	// Lease is how long a master may acknowledge writes after its last
	// accepted heartbeat. 0 means DefaultLease.
	Lease time.Duration `json:"lease"`
}

func (c GroupConfig) lease() time.Duration {
	if c.Lease <= 0 {
		return DefaultLease
	}
	return c.Lease
}

// Replica is what the control plane knows of one replica of a group.
type Replica struct {
	ID            int64      `json:"id"`
	Addr          string     `json:"addr"`
	LastHeartbeat time.Time  `json:"last_heartbeat"`
	Epoch         int64      `json:"epoch"`      // the epoch it last reported
	MaxOffset     int64      `json:"max_offset"` // its commitlog end, last reported
	LastEpoch     EpochEntry `json:"last_epoch"` // the last entry of its epoch history
}

// alive reports whether the replica heartbeated within lease before now.
func (r *Replica) alive(now time.Time, lease time.Duration) bool {
	return !r.LastHeartbeat.IsZero() && now.Sub(r.LastHeartbeat) < lease
}

// Group is one broker group: its replicas, master, epoch and in-sync set.
type Group struct {
	Cluster    string      `json:"cluster"`
	BrokerName string      `json:"broker_name"`
	Config     GroupConfig `json:"config"`
	// Replicas sorted by ID.
	Replicas []Replica `json:"replicas"`
	// MasterID is the master's replica id, NoMaster before the first
	// election.
	MasterID int64 `json:"master_id"`
	// Epoch grows by one with every change of master; 0 before the first.
	Epoch int64 `json:"epoch"`
	// InSync is the in-sync set, sorted; it contains the master.
	InSync []int64 `json:"in_sync"`
	// InSyncVersion grows with every committed change of InSync.
	InSyncVersion int64 `json:"in_sync_version"`
	// LeaseExpiry is when the master's lease runs out as the control plane
	// sees it: the last accepted heartbeat from the master (or its
	// election) plus the lease.
	LeaseExpiry time.Time `json:"lease_expiry"`
	// LastReason explains the last change of master.
	LastReason string `json:"last_reason,omitempty"`
}

// Key returns the group's key in State.Groups: "cluster/brokerName".
func (g *Group) Key() string { return GroupKey(g.Cluster, g.BrokerName) }

// GroupKey is the key of a group in State.Groups.
func GroupKey(cluster, brokerName string) string { return cluster + "/" + brokerName }

// LeaseValid reports whether the group's master may still acknowledge
// writes at now, as the control plane sees it. No election happens while
// it holds.
func (g *Group) LeaseValid(now time.Time) bool {
	return g.MasterID != NoMaster && now.Before(g.LeaseExpiry)
}

// Replica returns the replica with id, or nil.
func (g *Group) Replica(id int64) *Replica {
	i, ok := slices.BinarySearchFunc(g.Replicas, id, func(r Replica, id int64) int { return cmpInt(r.ID, id) })
	if !ok {
		return nil
	}
	return &g.Replicas[i]
}

// Master returns the master replica, or nil.
func (g *Group) Master() *Replica {
	if g.MasterID == NoMaster {
		return nil
	}
	return g.Replica(g.MasterID)
}

// InSyncContains reports whether id is in the in-sync set.
func (g *Group) InSyncContains(id int64) bool {
	_, ok := slices.BinarySearch(g.InSync, id)
	return ok
}

// Role returns "master", "slave" or "" (not a replica) for id.
func (g *Group) Role(id int64) string {
	switch {
	case g.Replica(id) == nil:
		return ""
	case id == g.MasterID:
		return RoleMaster
	}
	return RoleSlave
}

// Roles of a replica.
const (
	RoleMaster = "master"
	RoleSlave  = "slave"
)

// Clone returns a deep copy.
func (g *Group) Clone() *Group {
	c := *g
	c.Replicas = slices.Clone(g.Replicas)
	c.InSync = slices.Clone(g.InSync)
	return &c
}

func (g *Group) addReplica(r Replica) {
	i, ok := slices.BinarySearchFunc(g.Replicas, r.ID, func(x Replica, id int64) int { return cmpInt(x.ID, id) })
	if ok {
		g.Replicas[i] = r
		return
	}
	g.Replicas = slices.Insert(g.Replicas, i, r)
}

func (g *Group) String() string {
	return fmt.Sprintf("%s master=%d epoch=%d in-sync=%v", g.Key(), g.MasterID, g.Epoch, g.InSync)
}

// State is the control plane's whole state: every broker group, and the
// name servers' addresses by controller server id (so a follower can send a
// broker to the leader).
type State struct {
	Groups  map[string]*Group `json:"groups"`
	Servers map[string]string `json:"servers"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Groups: map[string]*Group{}, Servers: map[string]string{}}
}

// Group returns the group, or nil.
func (s *State) Group(cluster, brokerName string) *Group {
	return s.Groups[GroupKey(cluster, brokerName)]
}

// SortedGroups returns copies of every group, sorted by cluster then name.
func (s *State) SortedGroups() []*Group {
	out := make([]*Group, 0, len(s.Groups))
	for _, g := range s.Groups {
		out = append(out, g.Clone())
	}
	slices.SortFunc(out, func(a, b *Group) int {
		if a.Cluster != b.Cluster {
			if a.Cluster < b.Cluster {
				return -1
			}
			return 1
		}
		if a.BrokerName < b.BrokerName {
			return -1
		}
		if a.BrokerName > b.BrokerName {
			return 1
		}
		return 0
	})
	return out
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := NewState()
	for k, g := range s.Groups {
		c.Groups[k] = g.Clone()
	}
	for k, v := range s.Servers {
		c.Servers[k] = v
	}
	return c
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
