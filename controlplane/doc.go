// Package controlplane replicates the control plane's state machine
// (package controller) with raft (hashicorp/raft, its log and stable store
// in bolt, snapshots as the state's JSON) among the name servers: three
// name servers are three voters, one alone is a single-voter group.
//
// Each name server runs a Node: raft over TCP on its own control port
// (separate from the remoting port), data in Config.Dir. A node with no raft
// state bootstraps the voters listed in Config.Peers; every voter may do so
// with the same list. The requests of controller's wire protocol
// (protocol.ReqControllerHeartbeat and the rest) are served on the name server's
// remoting port by Handle: the leader proposes the commands they imply and
// answers with the decision; a follower answers RespNotLeader with the
// leader's name-server address, which every leader announces through the
// log as soon as it leads.
//
// Time enters only at the leader: Propose stamps each command with the
// leader's clock, so every voter applies the same decisions.
//
// Goroutines: hashicorp/raft's, and the Node's ticker, which while the node
// leads proposes an election for every group whose master's lease has run
// out (after the node has led for one lease, so masters that were
// heartbeating to the old leader can find the new one). Close stops all of
// them and closes the control port's connections.
package controlplane
