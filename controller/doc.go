// Package controller holds the control plane's decisions for replicated
// broker groups as a pure state machine: who is the master of each group,
// in which epoch, which replicas are in sync, when a new master is elected
// and when the old one must stop acknowledging writes.
//
// There are no goroutines, no I/O and no clock in here. Every change is a
// Command applied in order by State.Apply, and every command carries the
// time it was proposed at (At), so the same log applied on any name server
// gives the same state: commands are the entries of the control plane's
// raft log, and a State encoded as JSON is its snapshot.
//
// A broker group is identified by (cluster, broker name). Its replicas are
// identified by their replica id, the stable broker id each one is
// configured with; the replica that is master registers its routes as
// broker id 0, as RocketMQ's clients expect.
//
// Commands:
//
//	op            proposed by        effect
//	register      a replica          adds the replica (or updates its address)
//	heartbeat     a replica          records its epoch, max offset and last
//	                                 <epoch, start offset>; from the master it
//	                                 renews the master's lease
//	alter_in_sync the master         replaces the in-sync set; refused unless
//	                                 it carries the group's current epoch, comes
//	                                 from the master while its lease is valid,
//	                                 and contains the master
//	elect         the control plane  when the master's lease has expired (or
//	                                 there is none): a new master from the
//	                                 in-sync set, highest reported epoch then
//	                                 highest offset; epoch + 1
//	switch_over   an operator        a planned change of master to an in-sync,
//	                                 live replica; epoch + 1
//	configure     an operator        per-group settings (unclean election,
//	                                 lease duration)
//
// The rules that keep acknowledged messages:
//   - One master per epoch: the epoch grows by one at every change of
//     master, and only elect and switch_over change the master.
//   - The master is always in the in-sync set.
//   - An election chooses only from the in-sync set minus the failed master,
//     and only replicas whose own heartbeat is within the lease. Unclean
//     election (from outside the set, when none inside is alive) is off by
//     default; when a group enables it, the result says PossibleDataLoss.
//   - Fencing: the master's lease runs for Lease after the last heartbeat
//     the control plane accepted from it, and no election happens before it
//     has run out. The broker measures its own lease from the moment it
//     sent that heartbeat (BrokerLease), which is never later than when the
//     control plane applied it, so the old master has stopped acknowledging
//     before a new one can be elected.
//   - A planned switch-over does not wait for the old master's lease: the
//     old master learns it is a slave from its next heartbeat. With acks
//     counted against the in-sync set nothing it acknowledges meanwhile is
//     lost (the new master held it before it stopped replicating from the
//     old one); a master that acknowledges on its own write alone must stop
//     taking writes before the switch-over is asked for.
//   - After an election the in-sync set is the old set minus the failed
//     master (every member holds every committed message); after an unclean
//     election it is the new master alone.
//
// Every Result carries a Reason: one sentence for logs and for operators
// (ferry cluster list) that says what was decided and why.
package controller
