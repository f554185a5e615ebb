package controller

import (
	"errors"
	"time"
)

// Request codes of the control plane, served on the name servers' remoting
// port (Ferry's own range: RocketMQ has no such requests). Bodies are JSON:
// the types below. Part of the wire protocol.
//
//	code  name                     body → reply body
//	1101  CONTROLLER_HEARTBEAT     HeartbeatRequest → HeartbeatReply
//	1102  CONTROLLER_GET_STATE     StateRequest → StateReply
//	1103  CONTROLLER_ALTER_IN_SYNC AlterInSyncRequest → DecisionReply
//	1104  CONTROLLER_ELECT         ElectRequest → DecisionReply
//
// A name server that is not the control plane's raft leader answers the
// requests that change state (all but GET_STATE) with protocol.RespControllerNotLeader, the
// leader's name-server address in the ext field "leaderAddr" (empty while
// there is none); the caller retries there. A refused decision is
// protocol.RespControllerRefused with the reason as remark and the kind (ErrorKind) in the ext
// field "error". GET_STATE is answered by any name server from its copy of
// the state, with "leader" saying whether it leads.

// HeartbeatRequest registers a replica (on first contact or a new address)
// and reports its state.
type HeartbeatRequest struct {
	Cluster    string     `json:"cluster"`
	BrokerName string     `json:"broker_name"`
	ReplicaID  int64      `json:"replica_id"`
	Addr       string     `json:"addr"`
	Epoch      int64      `json:"epoch"`
	MaxOffset  int64      `json:"max_offset"`
	LastEpoch  EpochEntry `json:"last_epoch"`
}

// HeartbeatReply tells a replica its role and its group's state.
type HeartbeatReply struct {
	Role          string    `json:"role"` // RoleMaster or RoleSlave
	MasterID      int64     `json:"master_id"`
	MasterAddr    string    `json:"master_addr"`
	Epoch         int64     `json:"epoch"`
	InSync        []int64   `json:"in_sync"`
	InSyncVersion int64     `json:"in_sync_version"`
	LeaseExpiry   time.Time `json:"lease_expiry"` // the control plane's view, its clock
	LeaseMillis   int64     `json:"lease_millis"` // the lease duration (see BrokerLease)
	Reason        string    `json:"reason"`
}

// NewHeartbeatReply describes g to replica id.
func NewHeartbeatReply(g *Group, id int64, reason string) HeartbeatReply {
	rep := HeartbeatReply{
		Role: g.Role(id), MasterID: g.MasterID, Epoch: g.Epoch, InSync: g.InSync,
		InSyncVersion: g.InSyncVersion, LeaseExpiry: g.LeaseExpiry,
		LeaseMillis: g.Config.lease().Milliseconds(), Reason: reason,
	}
	if m := g.Master(); m != nil {
		rep.MasterAddr = m.Addr
	}
	return rep
}

// StateRequest asks for one group, or all when BrokerName is empty.
type StateRequest struct {
	Cluster    string `json:"cluster,omitempty"`
	BrokerName string `json:"broker_name,omitempty"`
}

// StateReply is a copy of the groups asked for.
type StateReply struct {
	Leader     bool     `json:"leader"`      // whether the answering name server leads
	LeaderAddr string   `json:"leader_addr"` // the leader's name-server address, if known
	Groups     []*Group `json:"groups"`
}

// AlterInSyncRequest is the master proposing a new in-sync set.
type AlterInSyncRequest struct {
	Cluster    string  `json:"cluster"`
	BrokerName string  `json:"broker_name"`
	ReplicaID  int64   `json:"replica_id"`
	Epoch      int64   `json:"epoch"`
	InSync     []int64 `json:"in_sync"`
}

// ElectRequest asks for an election (Target nil: only if the master's
// lease has run out) or a planned switch-over to Target.
type ElectRequest struct {
	Cluster    string `json:"cluster"`
	BrokerName string `json:"broker_name"`
	Target     *int64 `json:"target,omitempty"`
}

// DecisionReply is an applied decision.
type DecisionReply struct {
	Reason           string `json:"reason"`
	Changed          bool   `json:"changed"`
	PossibleDataLoss bool   `json:"possible_data_loss"`
	Group            *Group `json:"group"`
}

// ErrorKind names the sentinel err wraps, for the "error" ext field of a
// protocol.RespControllerRefused answer ("" if none).
func ErrorKind(err error) string {
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// ErrorOfKind returns the sentinel named kind, or nil.
func ErrorOfKind(kind string) error {
	for _, k := range errorKinds {
		if k.name == kind {
			return k.err
		}
	}
	return nil
}

var errorKinds = []struct {
	name string
	err  error
}{
	{"bad-command", ErrBadCommand}, {"unknown-group", ErrUnknownGroup}, {"unknown-replica", ErrUnknownReplica},
	{"stale-epoch", ErrStaleEpoch}, {"not-master", ErrNotMaster}, {"lease-expired", ErrLeaseExpired},
	{"master-alive", ErrMasterAlive}, {"no-candidate", ErrNoCandidate}, {"not-in-sync", ErrNotInSync},
	{"master-not-in-sync", ErrMasterNotInSync},
}
