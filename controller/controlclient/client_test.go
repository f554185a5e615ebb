package controlclient

import (
	"context"
	"errors"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/remoting"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNamesrv serves mux on loopback until the test ends and counts the
// requests it got.
func fakeNamesrv(t *testing.T, mux *remoting.Mux) (string, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	counting := remoting.HandlerFunc(func(c *remoting.Conn, req *remoting.Command) {
		hits.Add(1)
		mux.ServeRemoting(c, req)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := remoting.NewServer(counting, remoting.ServerConfig{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String(), &hits
}

func newClient(t *testing.T, addrs ...string) *Client {
	rc := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { rc.Close() })
	return New(rc, addrs, time.Second)
}

func TestFollowsTheLeaderAndMapsRefusals(t *testing.T) {
	leaderMux := remoting.NewMux()
	leaderMux.HandleFunc(protocol.ReqControllerHeartbeat, func(c *remoting.Conn, req *remoting.Command) {
		resp := remoting.NewResponse(req, protocol.RespSuccess, "")
		resp.Body = []byte(`{"role":"master","master_id":3,"epoch":4}`)
		_ = c.Reply(resp)
	})
	leaderMux.HandleFunc(protocol.ReqControllerAlterInSync, func(c *remoting.Conn, req *remoting.Command) {
		resp := remoting.NewResponse(req, protocol.RespControllerRefused, "in-sync change carries epoch 3, group at 4")
		resp.Set("error", "stale-epoch")
		_ = c.Reply(resp)
	})
	leader, leaderHits := fakeNamesrv(t, leaderMux)
	followerMux := remoting.NewMux()
	followerMux.HandleFunc(protocol.ReqControllerHeartbeat, func(c *remoting.Conn, req *remoting.Command) {
		resp := remoting.NewResponse(req, protocol.RespControllerNotLeader, "not the leader")
		resp.Set("leaderAddr", leader)
		_ = c.Reply(resp)
	})
	follower, followerHits := fakeNamesrv(t, followerMux)

	cc := newClient(t, follower)
	ctx := context.Background()
	rep, err := cc.Heartbeat(ctx, controller.HeartbeatRequest{Cluster: "c", BrokerName: "g", ReplicaID: 3, Addr: "a"})
	if err != nil || rep.Role != controller.RoleMaster || rep.Epoch != 4 {
		t.Fatalf("heartbeat via the follower: %+v %v", rep, err)
	}
	if followerHits.Load() != 1 || leaderHits.Load() != 1 {
		t.Fatalf("hits: follower %d, leader %d", followerHits.Load(), leaderHits.Load())
	}
	// The next call goes to the leader directly.
	if _, err := cc.Heartbeat(ctx, controller.HeartbeatRequest{Cluster: "c", BrokerName: "g", ReplicaID: 3, Addr: "a"}); err != nil {
		t.Fatal(err)
	}
	if followerHits.Load() != 1 || leaderHits.Load() != 2 {
		t.Fatalf("hits after: follower %d, leader %d", followerHits.Load(), leaderHits.Load())
	}
	_, err = cc.AlterInSync(ctx, controller.AlterInSyncRequest{Cluster: "c", BrokerName: "g", ReplicaID: 3, Epoch: 3, InSync: []int64{3}})
	var re *RefusedError
	if !errors.Is(err, controller.ErrStaleEpoch) || !errors.As(err, &re) || re.Reason == "" {
		t.Fatalf("refusal: %v", err)
	}
}

func TestNoLeaderAndNoController(t *testing.T) {
	mux := remoting.NewMux()
	mux.HandleFunc(protocol.ReqControllerElect, func(c *remoting.Conn, req *remoting.Command) {
		_ = c.Reply(remoting.NewResponse(req, protocol.RespControllerNotLeader, "no leader yet"))
	})
	a, _ := fakeNamesrv(t, mux)
	b, _ := fakeNamesrv(t, remoting.NewMux())
	if _, err := newClient(t, a).Elect(context.Background(), "c", "g", nil); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("no leader: %v", err)
	}
	if _, err := newClient(t, b).State(context.Background(), "", ""); !errors.Is(err, ErrNoController) {
		t.Fatalf("no controller: %v", err)
	}
	if _, err := newClient(t).State(context.Background(), "", ""); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("no address: %v", err)
	}
}
