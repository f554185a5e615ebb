package controller

import "time"

// BrokerLease is a master broker's own view of its lease: the fencing rule
// on the broker side. A master acknowledges writes only while LeaseValid.
//
// The lease is measured from when the broker sent the heartbeat whose
// reply renewed it, which is never later than when the control plane
// applied that heartbeat (from where the control plane measures it), so
// the broker's lease always ends first. A tenth of the lease is given up
// to the difference in clock rates between the two machines.
type BrokerLease struct {
	Epoch int64     // the epoch the lease was granted in
	Until time.Time // on the broker's clock
}

// Renew records the reply to a heartbeat sent at sentAt (broker's clock).
// A reply that does not name this replica the master ends the lease.
func (l *BrokerLease) Renew(sentAt time.Time, replicaID int64, reply HeartbeatReply) {
	if reply.Role != RoleMaster || reply.MasterID != replicaID || reply.LeaseMillis <= 0 {
		*l = BrokerLease{}
		return
	}
	lease := time.Duration(reply.LeaseMillis) * time.Millisecond
	until := sentAt.Add(lease - lease/10)
	if reply.Epoch != l.Epoch || until.After(l.Until) {
		l.Epoch, l.Until = reply.Epoch, until
	}
}

// LeaseValid reports whether the broker may acknowledge writes at now
// (broker's clock).
func (l *BrokerLease) LeaseValid(now time.Time) bool {
	return !l.Until.IsZero() && now.Before(l.Until)
}
