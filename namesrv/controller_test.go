package namesrv

import (
	"context"
	"errors"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/controller/controlclient"
	"github.com/ferrymq/ferry/controlplane"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/remoting"
)

const (
	testLease   = time.Second
	testCluster = "DefaultCluster"
	testGroup   = "broker-a"
)

// testControlConfig is a control plane with short timings, its data in dir.
func testControlConfig(dir string) *controlplane.Config {
	return &controlplane.Config{
		Dir: dir, Lease: testLease, TickInterval: 100 * time.Millisecond,
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
	}
}

// startControlCluster starts n name servers on loopback that run the
// control plane as n voters, and returns them with their remoting
// addresses.
func startControlCluster(t *testing.T, n int) ([]*Server, []string) {
	t.Helper()
	lns := make([]net.Listener, n)
	peers := make([]controlplane.Peer, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		peers[i] = controlplane.Peer{ID: string(rune('a' + i)), Addr: ln.Addr().String()}
	}
	servers := make([]*Server, n)
	addrs := make([]string, n)
	for i := range servers {
		cc := testControlConfig(t.TempDir())
		cc.ID, cc.Peers, cc.Listener = peers[i].ID, peers, lns[i]
		s, err := New(Config{ListenAddr: "127.0.0.1:0", Controller: cc})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		servers[i], addrs[i] = s, s.Addr()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx) // a test may have stopped it already
		})
	}
	return servers, addrs
}

// replicaSim heartbeats for one replica of testGroup until stopped, the way
// a broker will.
type replicaSim struct {
	id   int64
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	reply controller.HeartbeatReply
}

func startReplica(t *testing.T, cc *controlclient.Client, id int64, offset int64) *replicaSim {
	r := &replicaSim{id: id, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			r.mu.Lock()
			epoch := r.reply.Epoch
			r.mu.Unlock()
			rep, err := cc.Heartbeat(ctx, controller.HeartbeatRequest{Cluster: testCluster, BrokerName: testGroup,
				ReplicaID: id, Addr: "127.0.0.1:1091" + string(rune('0'+id)), Epoch: epoch, MaxOffset: offset})
			cancel()
			if err == nil {
				r.mu.Lock()
				r.reply = rep
				r.mu.Unlock()
			}
			select {
			case <-r.stop:
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(r.halt)
	return r
}

func (r *replicaSim) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(context.Background(), within, 10*time.Millisecond, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// groupState reads testGroup from the name servers, nil if unknown.
func groupState(cc *controlclient.Client) *controller.Group {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rep, err := cc.State(ctx, testCluster, testGroup)
	if err != nil || len(rep.Groups) == 0 {
		return nil
	}
	return rep.Groups[0]
}

func newControlClient(t *testing.T, addrs []string) *controlclient.Client {
	rc := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { rc.Close() })
	return controlclient.New(rc, addrs, time.Second)
}

// TestControlPlaneFailover: three name servers elect a raft leader; a
// broker group of three replicas gets a master; a stale-epoch in-sync change
// is refused; the master stops heartbeating and an in-sync replica takes
// over with a higher epoch; the leading name server stops and the other
// two keep deciding.
func TestControlPlaneFailover(t *testing.T) {
	servers, addrs := startControlCluster(t, 3)
	cc := newControlClient(t, addrs)
	waitUntil(t, 10*time.Second, "a control-plane leader", func() bool {
		for _, s := range servers {
			if s.Controller().IsLeader() && s.Controller().LeaderNamesrvAddr() == s.Addr() {
				return true
			}
		}
		return false
	})

	reps := map[int64]*replicaSim{}
	for id := int64(1); id <= 3; id++ {
		reps[id] = startReplica(t, cc, id, 1000*id)
	}
	var g *controller.Group
	waitUntil(t, 5*time.Second, "a first master", func() bool {
		g = groupState(cc)
		return g != nil && g.MasterID != controller.NoMaster && len(g.Replicas) == 3
	})
	if g.Epoch != 1 {
		t.Fatalf("first master in epoch %d", g.Epoch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dec, err := cc.AlterInSync(ctx, controller.AlterInSyncRequest{Cluster: testCluster, BrokerName: testGroup,
		ReplicaID: g.MasterID, Epoch: 1, InSync: []int64{1, 2, 3}})
	if err != nil || !slices.Equal(dec.Group.InSync, []int64{1, 2, 3}) {
		t.Fatalf("alter in-sync: %v %+v", err, dec)
	}
	_, err = cc.AlterInSync(ctx, controller.AlterInSyncRequest{Cluster: testCluster, BrokerName: testGroup,
		ReplicaID: g.MasterID, Epoch: 0, InSync: []int64{g.MasterID}})
	if !errors.Is(err, controller.ErrStaleEpoch) {
		t.Fatalf("stale-epoch in-sync change: %v", err)
	}

	// A follower sends the caller to the leader.
	var follower, leader *Server
	for _, s := range servers {
		if s.Controller().IsLeader() {
			leader = s
		} else {
			follower = s
		}
	}
	rc := remoting.NewClient(remoting.ClientConfig{})
	defer rc.Close()
	resp, err := rc.Invoke(ctx, follower.Addr(), remoting.NewRequest(protocol.ReqControllerElect, nil, []byte(`{"cluster":"DefaultCluster","broker_name":"broker-a"}`)))
	if err != nil || resp.Code != protocol.RespControllerNotLeader || resp.ExtFields["leaderAddr"] != leader.Addr() {
		t.Fatalf("follower's answer: %v %+v", err, resp)
	}
	// A manual election while the master holds its lease is refused, with why.
	if _, err := cc.Elect(ctx, testCluster, testGroup, nil); !errors.Is(err, controller.ErrMasterAlive) {
		t.Fatalf("election within the lease: %v", err)
	}

	// The master stops heartbeating.
	old := g.MasterID
	reps[old].halt()
	start := time.Now()
	waitUntil(t, 10*time.Second, "a new master", func() bool {
		g = groupState(cc)
		return g != nil && g.MasterID != old
	})
	took := time.Since(start)
	t.Logf("new master %d in epoch %d %v after the old one's last heartbeat (lease %v): %s", g.MasterID, g.Epoch, took, testLease, g.LastReason)
	if g.Epoch != 2 || !slices.Contains([]int64{1, 2, 3}, g.MasterID) || slices.Contains(g.InSync, old) {
		t.Fatalf("after failover: %v", g)
	}
	// The new master learns it from its heartbeat reply.
	waitUntil(t, 5*time.Second, "the new master's heartbeat reply", func() bool {
		r := reps[g.MasterID]
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.reply.Role == controller.RoleMaster && r.reply.Epoch == 2
	})

	// The leading name server stops: the other two go on.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := leader.Shutdown(sctx); err != nil {
		t.Fatalf("stop the leader: %v", err)
	}
	var live []*Server
	for _, s := range servers {
		if s != leader {
			live = append(live, s)
		}
	}
	waitUntil(t, 10*time.Second, "a new control-plane leader", func() bool {
		for _, s := range live {
			if s.Controller().IsLeader() {
				return true
			}
		}
		return false
	})
	// The master, still heartbeating, keeps its place: the new leader
	// gives the brokers a lease's time to find it before it elects.
	second := g.MasterID
	stopped := time.Now()
	waitUntil(t, 10*time.Second, "the master's lease renewed by the new leader", func() bool {
		r := reps[second]
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.reply.LeaseExpiry.After(stopped.Add(testLease))
	})
	if g = groupState(cc); g == nil || g.MasterID != second || g.Epoch != 2 {
		t.Fatalf("the control plane's change of leader changed the master: %v", g)
	}
	reps[second].halt()
	start = time.Now()
	waitUntil(t, 15*time.Second, "a master elected by two name servers", func() bool {
		g = groupState(cc)
		return g != nil && g.MasterID != second
	})
	t.Logf("with 2 of 3 name servers: master %d in epoch %d %v after the old one's last heartbeat", g.MasterID, g.Epoch, time.Since(start))
	if g.Epoch != 3 {
		t.Fatalf("epoch %d after the second failover", g.Epoch)
	}
	if g.MasterID == old || g.MasterID == second {
		t.Fatalf("a silent replica was elected: %v", g)
	}
}

// TestControlPlaneSingleVoterRestart: one name server with no peers runs a
// single-voter group, bootstrapped on first start; its decisions survive a
// restart on the same directory.
func TestControlPlaneSingleVoterRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() *Server {
		cc := testControlConfig(dir)
		cc.ListenAddr = "127.0.0.1:0"
		s, err := New(Config{ListenAddr: "127.0.0.1:0", Controller: cc})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := start()
	cc := newControlClient(t, []string{s.Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rep controller.HeartbeatReply
	waitUntil(t, 5*time.Second, "the single voter to take a heartbeat", func() bool {
		var err error
		rep, err = cc.Heartbeat(ctx, controller.HeartbeatRequest{Cluster: testCluster, BrokerName: testGroup, ReplicaID: 0, Addr: "127.0.0.1:10911"})
		return err == nil
	})
	if rep.Role != controller.RoleMaster || rep.Epoch != 1 || rep.MasterAddr != "127.0.0.1:10911" || rep.LeaseMillis != testLease.Milliseconds() {
		t.Fatalf("first heartbeat: %+v", rep)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s = start()
	defer s.Shutdown(ctx)
	cc = newControlClient(t, []string{s.Addr()})
	waitUntil(t, 5*time.Second, "the state back after a restart", func() bool {
		g := groupState(cc)
		return g != nil && g.MasterID == 0 && g.Epoch == 1 && len(g.Replicas) == 1
	})
	// A second name server on the same directory is refused, clearly.
	s2, err := New(Config{ListenAddr: "127.0.0.1:0", Controller: &controlplane.Config{ListenAddr: "127.0.0.1:0", Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(); err == nil {
		_ = s2.Shutdown(ctx)
		t.Fatal("two name servers opened one control-plane directory")
	}
}

// TestControllerOffAnswersNotSupported: a name server without the control
// plane says so, and the client reports it.
func TestControllerOffAnswersNotSupported(t *testing.T) {
	s := startNamesrv(t, newFakeClock())
	cc := newControlClient(t, []string{s.Addr()})
	if _, err := cc.State(ctxT(t), "", ""); !errors.Is(err, controlclient.ErrNoController) {
		t.Fatalf("got %v", err)
	}
}
