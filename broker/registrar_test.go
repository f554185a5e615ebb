package broker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// testRegistrar is a registrar of a broker b1 with the topic orders,
// refusing sends while *why is not "".
func testRegistrar(t *testing.T, namesrvs []string, why *atomic.Pointer[string]) (*registrar, chan struct{}) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BrokerName, cfg.ClusterName, cfg.NamesrvAddrs = "b1", "c1", namesrvs
	rw := int32(protocol.PermRead | protocol.PermWrite)
	topics := &topicTable{topics: map[string]TopicConfig{"orders": {TopicName: "orders", ReadQueueNums: 2, WriteQueueNums: 2, Perm: rw}}}
	stop := make(chan struct{})
	return &registrar{
		cfg: &cfg, log: zerolog.Nop(), topics: topics, stop: stop,
		writable: func() string { return *why.Load() },
		brokerID: func() int64 { return 0 }, httpAddr: func() string { return "" },
		now: make(chan struct{}, 1), rounds: regRounds{wake: make(chan struct{})},
	}, stop
}

// nsRoutes looks topics up on the name server at addr: route is the
// answer, perm the permission of a topic's one queue entry.
func nsRoutes(t *testing.T, addr string) (route func(string) (*remoting.TopicRouteData, error), perm func(string) int32) {
	cl := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { cl.Close() })
	route = func(topic string) (*remoting.TopicRouteData, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return remoting.GetRouteInfo(ctx, cl, addr, topic)
	}
	perm = func(topic string) int32 {
		t.Helper()
		r, err := route(topic)
		if err != nil {
			t.Fatalf("route of %s: %v", topic, err)
		}
		if len(r.QueueDatas) != 1 {
			t.Fatalf("route of %s: %+v", topic, r)
		}
		return r.QueueDatas[0].Perm
	}
	return route, perm
}

// TestRegistrarTellsNameServer: start registers the topics; a change is
// routed when wait returns, and so is a broker refusing sends (its queues
// read-only); unregister takes the broker's routes away.
func TestRegistrarTellsNameServer(t *testing.T) {
	ns := testNamesrv(t)
	var why atomic.Pointer[string]
	why.Store(new(string))
	r, stop := testRegistrar(t, []string{ns.Addr()}, &why)
	cl := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { cl.Close() })
	route, perm := nsRoutes(t, ns.Addr())

	r.wait() // before start: no loop to wait for
	r.start("127.0.0.1:10911", cl)
	if p := perm("orders"); p != protocol.PermRead|protocol.PermWrite {
		t.Fatalf("registered at start: perm %d", p)
	}
	if rd, _ := route("orders"); len(rd.BrokerDatas) != 1 || rd.BrokerDatas[0].BrokerAddrs[0] != "127.0.0.1:10911" {
		t.Fatalf("registered at start: %+v", rd.BrokerDatas)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.loop() }()
	defer func() { close(stop); <-done }()

	r.topics.applyPut(TopicConfig{TopicName: "later", ReadQueueNums: 1, WriteQueueNums: 1, Perm: protocol.PermRead | protocol.PermWrite})
	r.wait()
	if p := perm("later"); p != protocol.PermRead|protocol.PermWrite {
		t.Fatalf("topic added: perm %d", p)
	}
	drained := protocol.DrainedReason
	why.Store(&drained)
	r.wait()
	if p := perm("orders"); protocol.PermWritable(p) {
		t.Fatalf("sends refused: perm %d, want read-only", p)
	}
	why.Store(new(string))
	r.wait()
	if p := perm("orders"); !protocol.PermWritable(p) {
		t.Fatalf("sends accepted again: perm %d", p)
	}

	r.unregister(context.Background())
	if rd, err := route("orders"); err == nil {
		t.Fatalf("routed after unregister: %+v", rd)
	}
}

// TestRegistrarWaitEnds: wait returns at once without name servers or
// before start, and when the broker stops while it waits; trigger never
// blocks.
func TestRegistrarWaitEnds(t *testing.T) {
	soon := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(registerWaitTimeout / 2):
			t.Fatalf("%s: wait went on", what)
		}
	}
	var why atomic.Pointer[string]
	why.Store(new(string))
	none, _ := testRegistrar(t, nil, &why)
	none.running.Store(true)
	soon("no name servers", none.wait)

	r, stop := testRegistrar(t, []string{"127.0.0.1:1"}, &why)
	soon("before start", r.wait)
	r.trigger()
	r.trigger()

	r.running.Store(true) // a loop that never registers
	soon("broker stopping", func() {
		go close(stop)
		r.wait()
	})
}
