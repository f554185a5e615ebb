package broker

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/controller/controlclient"
	"github.com/ferrymq/ferry/controlplane"
	"github.com/ferrymq/ferry/namesrv"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// replTestGroup is a broker group in this process: a name server running
// the control plane (one voter, 1 s lease) and replicas 1..n of broker-a,
// all on 127.0.0.1.
type replTestGroup struct {
	t       *testing.T
	ns      *namesrv.Server
	nsDown  bool
	brokers map[int64]*Broker
}

// stopNamesrv stops the name server and with it the control plane.
func (g *replTestGroup) stopNamesrv() {
	g.t.Helper()
	if g.nsDown {
		return
	}
	g.nsDown = true
	if err := g.ns.Shutdown(context.Background()); err != nil {
		g.t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startReplTestGroup(t *testing.T, n int, mut func(*Config)) *replTestGroup {
	t.Helper()
	ns, err := namesrv.New(namesrv.Config{ListenAddr: "127.0.0.1:0",
		Controller: &controlplane.Config{ListenAddr: "127.0.0.1:0", Dir: t.TempDir(), Lease: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	g := &replTestGroup{t: t, ns: ns, brokers: map[int64]*Broker{}}
	t.Cleanup(func() {
		if !g.nsDown {
			_ = g.ns.Shutdown(context.Background())
		}
	})
	for id := int64(1); id <= int64(n); id++ {
		g.add(id, mut)
	}
	return g
}

// add starts replica id (registered for shutdown before the name server's).
// A free port can be taken by another test before the replica binds it;
// then it tries again with another.
func (g *replTestGroup) add(id int64, mut func(*Config)) *Broker {
	g.t.Helper()
	for attempt := 0; ; attempt++ {
		cfg := DefaultConfig()
		cfg.DataDir = g.t.TempDir()
		cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
		cfg.SegmentSize = 16 << 20
		cfg.MaxMessageSize = 1 << 20
		cfg.BrokerName = "broker-a"
		cfg.NamesrvAddrs = []string{g.ns.Addr()}
		cfg.ReplicationPort, cfg.ReplicaID = freePort(g.t), id
		if mut != nil {
			mut(&cfg)
		}
		b, err := New(cfg)
		if err != nil {
			g.t.Fatal(err)
		}
		err = b.Start()
		if err != nil {
			_ = b.Shutdown(context.Background())
			if attempt < 5 && strings.Contains(err.Error(), "address already in use") {
				continue
			}
			g.t.Fatal(err)
		}
		g.t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
		g.brokers[id] = b
		return b
	}
}

// master waits for a master whose in-sync set has want members, and
// returns its id.
func (g *replTestGroup) master(want int) int64 {
	g.t.Helper()
	var m int64
	waitFor(g.t, 30*time.Second, "a master with a full in-sync set", func() bool {
		for id, b := range g.brokers {
			st := b.repl.Status()
			// The tests' sends auto-create topics from the template, which
			// a new master stores (a metadata record) just after it is
			// elected.
			_, tpl := b.topics.get(protocol.AutoCreateTopicTemplate)
			if st.Role == RoleMaster && b.writable() == "" && len(st.InSync) >= want && tpl {
				m = id
				return true
			}
		}
		return false
	})
	return m
}

// slave returns a replica other than m.
func (g *replTestGroup) slave(m int64) int64 {
	for id := range g.brokers {
		if id != m {
			return id
		}
	}
	g.t.Fatal("no slave")
	return 0
}

// elect asks the control plane to make target master.
func (g *replTestGroup) elect(target int64) {
	g.t.Helper()
	rc := remoting.NewClient(remoting.ClientConfig{})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := controlclient.New(rc, []string{g.ns.Addr()}, 0).Elect(ctx, "DefaultCluster", "broker-a", &target); err != nil {
		g.t.Fatal(err)
	}
}

// TestReplicaMasterOnlyWork: the delay deliverers run on the master only —
// a delayed message is delivered once, by the master, and the slave's
// deliverers stay stopped — and move with a switch-over; the transaction
// check-back asks producers connected to the master, never those
// connected to a slave.
func TestReplicaMasterOnlyWork(t *testing.T) {
	g := startReplTestGroup(t, 2, fastChecks(1000))
	m := g.master(2)
	s := g.slave(m)
	waitFor(t, 10*time.Second, "the deliverers running on the master", func() bool { return g.brokers[m].delaySvc.Running() })
	if g.brokers[s].delaySvc.Running() {
		t.Fatal("the delay deliverers run on the slave")
	}
	c := newClient(t, g.brokers[m])
	mustOK(t, c.send("later", 0, "delayed", map[string]string{protocol.PropDelayLevel: "1"}))
	for _, id := range []int64{m, s} {
		waitFor(t, 15*time.Second, "the delayed message on its topic", func() bool { return g.brokers[id].cq.MaxOffset("later", 0) >= 1 })
	}
	// Both hold the schedule topic's entry; had the slave delivered it too,
	// the master would have refused the write and the slave's own log
	// would hold a second copy. Give it the time of another second.
	mustOK(t, c.send("later", 0, "marker", nil))
	for _, id := range []int64{m, s} {
		waitFor(t, 10*time.Second, "the marker", func() bool { return g.brokers[id].cq.MaxOffset("later", 0) >= 2 })
		if n := g.brokers[id].cq.MaxOffset("later", 0); n != 2 {
			t.Fatalf("replica %d holds %d messages on the topic, want the delayed one and the marker", id, n)
		}
	}

	// Transactions: a producer on each replica; only the master's is asked.
	unknown := func(string) int { return protocol.TransactionUnknown }
	pm := &fakeTxnProducer{t: t, checks: map[string]int{}, decide: unknown}
	ps := &fakeTxnProducer{t: t, checks: map[string]int{}, decide: unknown}
	pm.connect(t, g.brokers[m], "producer-m")
	ps.connect(t, g.brokers[s], "producer-s")
	c.sendHalf("tx", 0, "open", "U1")
	waitFor(t, 10*time.Second, "the half on the slave", func() bool { return g.brokers[s].cq.MaxOffset(protocol.TransHalfTopic, 0) >= 1 })
	waitFor(t, 10*time.Second, "checks from the master", func() bool { return pm.count("open") >= 5 })
	if n := ps.count("open"); n != 0 {
		t.Fatalf("the slave sent %d transaction checks", n)
	}

	// Switch over: the deliverers follow the master.
	g.elect(s)
	waitFor(t, 15*time.Second, "the deliverers on the new master", func() bool { return g.brokers[s].delaySvc.Running() })
	waitFor(t, 15*time.Second, "the deliverers stopped on the old master", func() bool { return !g.brokers[m].delaySvc.Running() })
	c2 := newClient(t, g.brokers[s])
	waitFor(t, 15*time.Second, "a send on the new master", func() bool {
		return c2.send("later", 0, "delayed-2", map[string]string{protocol.PropDelayLevel: "1"}).Code == protocol.RespSuccess
	})
	for _, id := range []int64{m, s} {
		waitFor(t, 15*time.Second, "the second delayed message", func() bool { return g.brokers[id].cq.MaxOffset("later", 0) >= 3 })
	}
}

// TestReplicaParkedAcksFailOnLeaseLapse: an acks=all send parked on the
// commit point (its slave is gone but still in the in-sync set) is
// answered with a clear error as soon as the master's lease lapses, not
// left to the client's timeout.
func TestReplicaParkedAcksFailOnLeaseLapse(t *testing.T) {
	g := startReplTestGroup(t, 2, func(c *Config) { c.ReplicaLagMax = Duration(time.Minute) })
	m := g.master(2)
	s := g.slave(m)
	c := newClient(t, g.brokers[m])
	mustOK(t, c.send("parked", 0, "first", nil))
	if err := g.brokers[s].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan *remoting.Command, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := c.c.Invoke(ctx, c.addr, remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
			"producerGroup": "pg", "topic": "parked", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0", "properties": "", "reconsumeTimes": "0",
			"unitMode": "false", "batch": "false"}, []byte("second")))
		if err != nil {
			resp = remoting.NewResponse(remoting.NewRequest(0, nil, nil), protocol.RespSystemError, "invoke: "+err.Error())
		}
		got <- resp
	}()
	select {
	case r := <-got:
		t.Fatalf("answered before the lease lapsed: %d %s", r.Code, r.Remark)
	case <-time.After(300 * time.Millisecond): // the send is parked (the slave never acks)
	}
	fenced := time.Now()
	g.stopNamesrv()
	select {
	case r := <-got:
		if r.Code != protocol.RespServiceNotAvailable || !strings.Contains(r.Remark, "lease") {
			t.Fatalf("parked send answered %d: %s", r.Code, r.Remark)
		}
		if d := time.Since(fenced); d > 5*time.Second {
			t.Fatalf("answered %v after the control plane went away (lease 1s)", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the parked send was not answered after the lease lapsed")
	}
}

// TestReplicaParkedAcksFailOnDemotion: a master that is switched away
// from answers its parked sends with an error at once.
func TestReplicaParkedAcksFailOnDemotion(t *testing.T) {
	g := startReplTestGroup(t, 3, func(c *Config) { c.ReplicaLagMax = Duration(time.Minute) })
	m := g.master(3)
	var others []int64
	for id := range g.brokers {
		if id != m {
			others = append(others, id)
		}
	}
	c := newClient(t, g.brokers[m])
	mustOK(t, c.send("demoted", 0, "first", nil))
	if err := g.brokers[others[0]].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan *remoting.Command, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := c.c.Invoke(ctx, c.addr, remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
			"producerGroup": "pg", "topic": "demoted", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0", "properties": "", "reconsumeTimes": "0",
			"unitMode": "false", "batch": "false"}, []byte("second")))
		if err != nil {
			resp = remoting.NewResponse(remoting.NewRequest(0, nil, nil), protocol.RespSystemError, "invoke: "+err.Error())
		}
		got <- resp
	}()
	select {
	case r := <-got:
		t.Fatalf("answered while a member of the set lacked it: %d %s", r.Code, r.Remark)
	case <-time.After(300 * time.Millisecond):
	}
	switched := time.Now()
	g.elect(others[1])
	select {
	case r := <-got:
		if r.Code != protocol.RespServiceNotAvailable || !strings.Contains(r.Remark, "stopped being master") {
			t.Fatalf("parked send answered %d: %s", r.Code, r.Remark)
		}
		if d := time.Since(switched); d > 5*time.Second {
			t.Fatalf("answered %v after the switch-over", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the parked send was not answered after the master was demoted")
	}
}

// TestReplicaSuggestBroker: a consumer far behind the master's end is
// sent to a live slave (the group's whichBrokerWhenConsumeSlowly, or the
// lowest live one when that is no slave); near the end it stays on the
// master; a slave sends it back to the master once it is close to the end
// or reads nothing there; ids that are not live slaves are never given.
func TestReplicaSuggestBroker(t *testing.T) {
	g := startReplTestGroup(t, 2, func(c *Config) { c.SlaveReadBehindBytes = 8 << 10 })
	m := g.master(2)
	s := g.slave(m)
	c := newClient(t, g.brokers[m])
	body := strings.Repeat("x", 1024)
	const n = 40
	for range n {
		mustOK(t, c.send("far", 0, body, nil))
	}
	for _, id := range []int64{m, s} {
		waitFor(t, 10*time.Second, "the messages dispatched", func() bool { return g.brokers[id].cq.MaxOffset("far", 0) == n })
	}
	suggest := func(b *Broker, offset int64) int64 {
		t.Helper()
		resp, _ := newClient(t, b).pull("g-far", "far", 0, offset, 0)
		v, err := resp.Int64("suggestWhichBrokerId")
		if err != nil {
			t.Fatalf("pull at %d: %v (code %d %s)", offset, err, resp.Code, resp.Remark)
		}
		return v
	}
	for _, which := range []int64{s, m, 7} {
		gc := DefaultGroupConfig("g-far", 16)
		gc.WhichBrokerWhenSlow = which
		if err := g.brokers[m].Admin().PutGroup(gc); err != nil {
			t.Fatal(err)
		}
		// which = s: that slave; which = the master's own replica id or an
		// id not in the group: the live slave there is.
		if got := suggest(g.brokers[m], 0); got != s {
			t.Fatalf("whichBrokerWhenConsumeSlowly %d: the master suggests %d for a consumer %d KiB behind, want slave %d", which, got, n, s)
		}
	}
	if got := suggest(g.brokers[m], n-2); got != 0 {
		t.Fatalf("the master suggests %d for a consumer 2 KiB behind", got)
	}
	if v := counterValue(g.brokers[m].repl.toSlave); v != 3 {
		t.Fatalf("the master counted %v redirects to a slave, want 3", v)
	}
	waitFor(t, 10*time.Second, "the slave to know the master's end", func() bool {
		return g.brokers[s].repl.Status().MasterEndOffset >= g.brokers[m].clog.WrittenOffset()
	})
	if got := suggest(g.brokers[s], 0); got != s {
		t.Fatalf("the slave suggests %d for a consumer far behind, want itself (%d)", got, s)
	}
	if got := suggest(g.brokers[s], n-2); got != 0 {
		t.Fatalf("the slave suggests %d for a consumer near the end, want the master", got)
	}
	if got := suggest(g.brokers[s], n); got != 0 {
		t.Fatalf("the slave suggests %d for a pull that found nothing, want the master", got)
	}
	// Counted: the answer near the end, not the one that found nothing
	// (a held pull's answer may not be sent).
	if v := counterValue(g.brokers[s].repl.toMaster); v != 1 {
		t.Fatalf("the slave counted %v redirects to the master, want 1", v)
	}
	// The slave gone (not acknowledging): the master keeps the consumer.
	if err := g.brokers[s].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.brokers[m].repl.mu.Lock()
	if p := g.brokers[m].repl.slaves[s]; p != nil {
		p.lastAck = time.Now().Add(-time.Hour)
	}
	g.brokers[m].repl.mu.Unlock()
	if got := suggest(g.brokers[m], 0); got != 0 {
		t.Fatalf("the master suggests %d with no live slave", got)
	}
}

// TestReplicaTopicDelete: a topic deleted on the master is gone from the
// slave too — its table, consume queues and routes — and after a
// switch-over the new master registers the topics as broker id 0.
func TestReplicaTopicDelete(t *testing.T) {
	g := startReplTestGroup(t, 2, nil)
	m := g.master(2)
	s := g.slave(m)
	for _, topic := range []string{"doomed", "kept"} {
		if err := g.brokers[m].Admin().CreateTopic(TopicConfig{TopicName: topic, ReadQueueNums: 2, WriteQueueNums: 2, Perm: 6}); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, g.brokers[m])
		mustOK(t, c.send(topic, 0, "a", nil))
		mustOK(t, c.send(topic, 1, "b", nil))
	}
	slave := g.brokers[s]
	waitFor(t, 10*time.Second, "the topics' queues on the slave", func() bool {
		return slave.cq.MaxOffset("doomed", 1) == 1 && slave.cq.MaxOffset("kept", 1) == 1
	})
	route := func(topic string) (*remoting.TopicRouteData, bool) { return g.ns.Registry().Route(topic) }
	waitFor(t, 10*time.Second, "the route", func() bool { _, ok := route("doomed"); return ok })
	if err := g.brokers[m].Admin().DeleteTopic("doomed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the topic gone on the slave", func() bool {
		_, ok := slave.topics.get("doomed")
		return !ok && !slices.Contains(slave.cq.Topics(), "doomed") && slave.cq.MaxOffset("doomed", 1) == 0
	})
	waitFor(t, 10*time.Second, "the route gone", func() bool { _, ok := route("doomed"); return !ok })
	if slave.cq.MaxOffset("kept", 1) != 1 {
		t.Fatal("the slave lost another topic's queue")
	}

	g.elect(s)
	waitFor(t, 15*time.Second, "the new master in the route", func() bool {
		r, ok := route("kept")
		if !ok {
			return false
		}
		for _, bd := range r.BrokerDatas {
			if bd.BrokerName == "broker-a" && bd.BrokerAddrs[0] == slave.Addr() {
				return true
			}
		}
		return false
	})
	// The new master's own queue offsets for the deleted topic start over,
	// as the old master's did.
	c := newClient(t, slave)
	var resp *remoting.Command
	waitFor(t, 15*time.Second, "a send on the new master", func() bool {
		resp = c.send("doomed", 1, "again", nil)
		return resp.Code == protocol.RespSuccess
	})
	if qo := resp.StringOr("queueOffset", ""); qo != "0" {
		t.Fatalf("the recreated topic's first message has queue offset %s", qo)
	}
}
