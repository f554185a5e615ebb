package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"

	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/remoting"
)

// Handle installs the control plane's requests (controller.Req*) on mux:
// the name server serves them on its remoting port.
func (n *Node) Handle(mux *remoting.Mux) {
	mux.HandleFunc(protocol.ReqControllerHeartbeat, n.handleHeartbeat)
	mux.HandleFunc(protocol.ReqControllerGetState, n.handleGetState)
	mux.HandleFunc(protocol.ReqControllerAlterInSync, n.handleAlterInSync)
	mux.HandleFunc(protocol.ReqControllerElect, n.handleElect)
}

func (n *Node) handleHeartbeat(c *remoting.Conn, req *remoting.Command) {
	var h controller.HeartbeatRequest
	if !decode(c, req, &h) {
		return
	}
	if h.Cluster == "" || h.BrokerName == "" || h.Addr == "" || h.ReplicaID < 0 {
		refuse(c, req, fmt.Errorf("%w: heartbeat needs cluster, broker_name, addr and a replica_id >= 0", controller.ErrBadCommand))
		return
	}
	if !n.IsLeader() {
		n.notLeader(c, req)
		return
	}
	g := n.group(h.Cluster, h.BrokerName)
	if g == nil || g.Replica(h.ReplicaID) == nil || g.Replica(h.ReplicaID).Addr != h.Addr {
		cfg := controller.GroupConfig{Lease: n.cfg.Lease, UncleanElection: n.cfg.UncleanElection}
		res, err := n.Propose(controller.Command{Op: controller.OpRegister, Cluster: h.Cluster, BrokerName: h.BrokerName,
			ReplicaID: h.ReplicaID, Addr: h.Addr, Config: &cfg})
		if !n.answered(c, req, res, err) {
			return
		}
	}
	res, err := n.Propose(controller.Command{Op: controller.OpHeartbeat, Cluster: h.Cluster, BrokerName: h.BrokerName,
		ReplicaID: h.ReplicaID, Epoch: h.Epoch, MaxOffset: h.MaxOffset, LastEpoch: h.LastEpoch})
	if !n.answered(c, req, res, err) {
		return
	}
	if res.Group.Epoch == 0 {
		// A group that never had a master gets its first one now rather
		// than at the next tick.
		if er, err := n.Propose(controller.Command{Op: controller.OpElect, Cluster: h.Cluster, BrokerName: h.BrokerName}); err == nil && er.Err == nil {
			res.Group = er.Group
		}
	}
	replyJSON(c, req, controller.NewHeartbeatReply(res.Group, h.ReplicaID, res.Reason))
}

func (n *Node) handleGetState(c *remoting.Conn, req *remoting.Command) {
	var h controller.StateRequest
	if len(req.Body) > 0 && !decode(c, req, &h) {
		return
	}
	st := n.State()
	rep := controller.StateReply{Leader: n.IsLeader(), LeaderAddr: n.LeaderNamesrvAddr(), Groups: []*controller.Group{}}
	for _, g := range st.SortedGroups() {
		if (h.Cluster == "" || g.Cluster == h.Cluster) && (h.BrokerName == "" || g.BrokerName == h.BrokerName) {
			rep.Groups = append(rep.Groups, g)
		}
	}
	replyJSON(c, req, rep)
}

func (n *Node) handleAlterInSync(c *remoting.Conn, req *remoting.Command) {
	var h controller.AlterInSyncRequest
	if decode(c, req, &h) {
		n.decide(c, req, controller.Command{Op: controller.OpAlterInSync, Cluster: h.Cluster, BrokerName: h.BrokerName,
			ReplicaID: h.ReplicaID, Epoch: h.Epoch, InSync: h.InSync})
	}
}

func (n *Node) handleElect(c *remoting.Conn, req *remoting.Command) {
	var h controller.ElectRequest
	if !decode(c, req, &h) {
		return
	}
	cmd := controller.Command{Op: controller.OpElect, Cluster: h.Cluster, BrokerName: h.BrokerName}
	if h.Target != nil {
		cmd.Op, cmd.Target = controller.OpSwitchOver, *h.Target
	}
	n.decide(c, req, cmd)
}

// decide commits cmd on the leader and answers with the decision.
func (n *Node) decide(c *remoting.Conn, req *remoting.Command, cmd controller.Command) {
	if !n.IsLeader() {
		n.notLeader(c, req)
		return
	}
	res, err := n.Propose(cmd)
	if n.answered(c, req, res, err) {
		replyDecision(c, req, res)
	}
}

// answered replies to a failed or refused proposal and reports false; it
// reports true (having replied nothing) when res was applied.
func (n *Node) answered(c *remoting.Conn, req *remoting.Command, res controller.Result, err error) bool {
	switch {
	case errors.Is(err, ErrNotLeader):
		n.notLeader(c, req)
		return false
	case err != nil:
		_ = c.Reply(remoting.NewResponse(req, protocol.RespSystemError, err.Error()))
		return false
	case res.Err != nil:
		refuse(c, req, res.Err)
		return false
	}
	return true
}

func (n *Node) notLeader(c *remoting.Conn, req *remoting.Command) {
	addr := n.LeaderNamesrvAddr()
	resp := remoting.NewResponse(req, protocol.RespControllerNotLeader, "controlplane: not the leader; leader at "+orNone(addr))
	resp.Set("leaderAddr", addr)
	_ = c.Reply(resp)
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}

func refuse(c *remoting.Conn, req *remoting.Command, err error) {
	resp := remoting.NewResponse(req, protocol.RespControllerRefused, err.Error())
	resp.Set("error", controller.ErrorKind(err))
	_ = c.Reply(resp)
}

func decode(c *remoting.Conn, req *remoting.Command, v any) bool {
	if err := json.Unmarshal(req.Body, v); err != nil {
		refuse(c, req, fmt.Errorf("%w: body: %v", controller.ErrBadCommand, err))
		return false
	}
	return true
}

func replyDecision(c *remoting.Conn, req *remoting.Command, res controller.Result) {
	replyJSON(c, req, controller.DecisionReply{Reason: res.Reason, Changed: res.Changed,
		PossibleDataLoss: res.PossibleDataLoss, Group: res.Group})
}

func replyJSON(c *remoting.Conn, req *remoting.Command, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		_ = c.Reply(remoting.NewResponse(req, protocol.RespSystemError, err.Error()))
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	_ = c.Reply(resp)
}
