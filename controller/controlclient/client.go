// Package controlclient calls the control plane (package controller's
// requests) on the name servers' remoting port: brokers heartbeat and
// propose in-sync sets through it, operators read the state and switch
// masters. It follows the raft leader: a name server that does not lead
// answers RespNotLeader with the leader's address and the call goes there.
//
// It links the remoting transport only, not the raft library.
package controlclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"slices"
	"sync"
	"time"

	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/remoting"
)

// ErrNoController: the name servers answered that they run no control
// plane (the request code is not supported).
var ErrNoController = errors.New("controlclient: the name servers run no control plane")

// ErrNoLeader: no name server could take the call (none leads, or none
// answered).
var ErrNoLeader = errors.New("controlclient: no control-plane leader reachable")

// RefusedError is a decision the control plane refused. It unwraps to the
// controller sentinel of its kind (errors.Is(err, controller.ErrStaleEpoch)).
type RefusedError struct {
	Kind   string
	Reason string
}

func (e *RefusedError) Error() string { return "controlclient: refused: " + e.Reason }

func (e *RefusedError) Unwrap() error { return controller.ErrorOfKind(e.Kind) }

// Client sends control-plane requests to a set of name servers.
type Client struct {
	rc      *remoting.Client
	timeout time.Duration

	mu     sync.Mutex
	addrs  []string
	leader string // last name server that took a call that needs the leader
}

// New returns a Client over rc (which the caller owns and closes) for the
// name servers at addrs; each call is bounded by timeout besides its ctx.
func New(rc *remoting.Client, addrs []string, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	return &Client{rc: rc, addrs: slices.Clone(addrs), timeout: timeout}
}

// Heartbeat registers and reports a replica; the reply says its role.
func (c *Client) Heartbeat(ctx context.Context, h controller.HeartbeatRequest) (controller.HeartbeatReply, error) {
	var rep controller.HeartbeatReply
	return rep, c.call(ctx, protocol.ReqControllerHeartbeat, h, &rep, true)
}

// State returns the groups of cluster (all when empty), or the one named.
// Any name server answers, from its own copy.
func (c *Client) State(ctx context.Context, cluster, brokerName string) (controller.StateReply, error) {
	var rep controller.StateReply
	return rep, c.call(ctx, protocol.ReqControllerGetState, controller.StateRequest{Cluster: cluster, BrokerName: brokerName}, &rep, false)
}

// AlterInSync proposes a new in-sync set as the master of epoch h.Epoch.
func (c *Client) AlterInSync(ctx context.Context, h controller.AlterInSyncRequest) (controller.DecisionReply, error) {
	var rep controller.DecisionReply
	return rep, c.call(ctx, protocol.ReqControllerAlterInSync, h, &rep, true)
}

// Elect asks for an election (target nil) or a switch-over to *target.
func (c *Client) Elect(ctx context.Context, cluster, brokerName string, target *int64) (controller.DecisionReply, error) {
	var rep controller.DecisionReply
	return rep, c.call(ctx, protocol.ReqControllerElect, controller.ElectRequest{Cluster: cluster, BrokerName: brokerName, Target: target}, &rep, true)
}

// call tries the known leader first, then every name server, following
// RespNotLeader answers; each address is tried at most once per call.
func (c *Client) call(ctx context.Context, code int16, body, out any, needLeader bool) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("controlclient: %w", err)
	}
	c.mu.Lock()
	order := slices.Clone(c.addrs)
	if c.leader != "" {
		order = slices.Insert(slices.DeleteFunc(order, func(a string) bool { return a == c.leader }), 0, c.leader)
	}
	c.mu.Unlock()
	tried := map[string]bool{}
	var lastErr error
	for len(order) > 0 {
		addr := order[0]
		order = order[1:]
		if tried[addr] {
			continue
		}
		tried[addr] = true
		resp, err := c.rc.InvokeTimeout(ctx, addr, remoting.NewRequest(code, nil, b), c.timeout)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			lastErr = fmt.Errorf("controlclient: %s: %w", addr, err)
			continue
		}
		switch resp.Code {
		case protocol.RespSuccess:
			if needLeader {
				c.mu.Lock()
				c.leader = addr
				c.mu.Unlock()
			}
			if err := json.Unmarshal(resp.Body, out); err != nil {
				return fmt.Errorf("controlclient: %s: reply: %w", addr, err)
			}
			return nil
		case protocol.RespControllerNotLeader:
			lastErr = fmt.Errorf("%w: %s: %s", ErrNoLeader, addr, resp.Remark)
			if l := resp.ExtFields["leaderAddr"]; l != "" {
				order = append([]string{l}, order...)
			}
		case protocol.RespControllerRefused:
			return &RefusedError{Kind: resp.ExtFields["error"], Reason: resp.Remark}
		case protocol.RespRequestCodeNotSupported:
			lastErr = ErrNoController
		default:
			lastErr = fmt.Errorf("controlclient: %s: %w", addr, resp.Err())
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%w: no name server address", ErrNoLeader)
	}
	return lastErr
}
