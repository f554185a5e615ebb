package namesrv

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(context.Background(), 5*time.Second, time.Millisecond, cond); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func startNamesrv(t *testing.T, clk *fakeClock) *Server {
	t.Helper()
	s, err := New(Config{ListenAddr: "127.0.0.1:0", Now: clk.Now, ScanInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(ctxT(t)); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func brokerBody(cfgs ...remoting.TopicConfig) *remoting.RegisterBrokerBody {
	return &remoting.RegisterBrokerBody{TopicConfigSerializeWrapper: remoting.TopicConfigSerializeWrapper{
		TopicConfigTable: topics(cfgs...),
		DataVersion:      remoting.DataVersion{Timestamp: 1700000000000, Counter: 1},
	}}
}

func invoke(t *testing.T, cl *remoting.Client, addr string, req *remoting.Command) *remoting.Command {
	t.Helper()
	resp, err := cl.Invoke(ctxT(t), addr, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestEndToEnd(t *testing.T) {
	clk := newFakeClock()
	ns := startNamesrv(t, clk)
	addr := ns.Addr()
	cl := remoting.NewClient(remoting.ClientConfig{})
	defer cl.Close()

	hdr := remoting.RegisterBrokerHeader{
		BrokerName: "broker-a", BrokerAddr: "127.0.0.1:10911", ClusterName: "DefaultCluster",
		HAServerAddr: "127.0.0.1:10912", BrokerID: 0,
	}
	res, err := remoting.RegisterBroker(ctxT(t), cl, addr, hdr,
		brokerBody(topicCfg("TopicTest", 4, 4, 6), topicCfg("TBW102", 8, 8, 7)))
	if err != nil {
		t.Fatal(err)
	}
	if res != (remoting.RegisterBrokerResult{}) {
		t.Fatalf("master got %+v", res)
	}

	// Route, byte for byte, as the Go client's parser needs it.
	resp := invoke(t, cl, addr, remoting.NewRequest(protocol.ReqGetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil))
	want := `{"queueDatas":[{"brokerName":"broker-a","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSysFlag":0}],` +
		`"brokerDatas":[{"cluster":"DefaultCluster","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911"}}],"filterServerTable":{}}`
	if resp.Code != protocol.RespSuccess || string(resp.Body) != want {
		t.Fatalf("route: code %d\n got %s\nwant %s", resp.Code, resp.Body, want)
	}
	if route, err := remoting.GetRouteInfo(ctxT(t), cl, addr, "TBW102"); err != nil || route.QueueDatas[0].Perm != 7 {
		t.Fatalf("TBW102 route %+v %v", route, err)
	}

	// Unknown topic: 17 with the Java remark, no body.
	resp = invoke(t, cl, addr, remoting.NewRequest(protocol.ReqGetRouteInfoByTopic, map[string]string{"topic": "nope"}, nil))
	if resp.Code != protocol.RespTopicNotExist || resp.Remark != "No topic route info in name server for the topic: nope" || len(resp.Body) != 0 {
		t.Fatalf("unknown topic: %+v", resp)
	}
	var re *remoting.ResponseError
	if _, err := remoting.GetRouteInfo(ctxT(t), cl, addr, "nope"); !errors.As(err, &re) || re.Code != protocol.RespTopicNotExist {
		t.Fatalf("GetRouteInfo unknown: %v", err)
	}

	// A slave learns its master.
	slave := hdr
	slave.BrokerAddr, slave.HAServerAddr, slave.BrokerID = "127.0.0.1:10921", "", 1
	res, err = remoting.RegisterBroker(ctxT(t), cl, addr, slave, brokerBody())
	if err != nil {
		t.Fatal(err)
	}
	if res.MasterAddr != "127.0.0.1:10911" || res.HAServerAddr != "127.0.0.1:10912" {
		t.Fatalf("slave got %+v", res)
	}

	// Cluster info and topic list.
	resp = invoke(t, cl, addr, remoting.NewRequest(protocol.ReqGetBrokerClusterInfo, nil, nil))
	wantCI := `{"brokerAddrTable":{"broker-a":{"cluster":"DefaultCluster","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"}}},` +
		`"clusterAddrTable":{"DefaultCluster":["broker-a"]}}`
	if string(resp.Body) != wantCI {
		t.Fatalf("cluster info\n got %s\nwant %s", resp.Body, wantCI)
	}
	resp = invoke(t, cl, addr, remoting.NewRequest(protocol.ReqGetAllTopicListFromNameServer, nil, nil))
	if string(resp.Body) != `{"topicList":["TBW102","TopicTest"]}` {
		t.Fatalf("topic list %s", resp.Body)
	}

	// Checksum mismatch, missing fields.
	bad := remoting.NewRequest(protocol.ReqRegisterBroker, hdr.Ext(), []byte(`{}`))
	bad.Set("bodyCrc32", "12345")
	if resp := invoke(t, cl, addr, bad); resp.Code != protocol.RespSystemError || resp.Remark != "crc32 not match" {
		t.Fatalf("bad crc: %+v", resp)
	}
	if resp := invoke(t, cl, addr, remoting.NewRequest(protocol.ReqRegisterBroker, map[string]string{"brokerName": "x"}, nil)); resp.Code != protocol.RespSystemError {
		t.Fatalf("missing fields: %+v", resp)
	}
	if resp := invoke(t, cl, addr, remoting.NewRequest(protocol.ReqGetRouteInfoByTopic, nil, nil)); resp.Code != protocol.RespSystemError {
		t.Fatalf("route without topic: %+v", resp)
	}
	if resp := invoke(t, cl, addr, remoting.NewRequest(protocol.ReqPullMessage, nil, nil)); resp.Code != protocol.RespRequestCodeNotSupported {
		t.Fatalf("unsupported: %+v", resp)
	}

	// Delete topic.
	resp = invoke(t, cl, addr, remoting.NewRequest(protocol.ReqDeleteTopicInNameServer, map[string]string{"topic": "TBW102"}, nil))
	if resp.Code != protocol.RespSuccess {
		t.Fatalf("delete: %+v", resp)
	}
	if _, ok := ns.Registry().Route("TBW102"); ok {
		t.Fatal("deleted topic still routed")
	}

	// Expiry: no registration for 121 s; the scanner drops the brokers.
	clk.Advance(121 * time.Second)
	waitFor(t, "broker expiry", func() bool {
		resp := invoke(t, cl, addr, remoting.NewRequest(protocol.ReqGetRouteInfoByTopic, map[string]string{"topic": "TopicTest"}, nil))
		return resp.Code == protocol.RespTopicNotExist
	})
	if n := ns.Registry().BrokerCount(); n != 0 {
		t.Fatalf("%d brokers left", n)
	}
}

func TestBrokerConnectionCloseAndUnregister(t *testing.T) {
	clk := newFakeClock()
	ns := startNamesrv(t, clk)
	addr := ns.Addr()

	// broker-b registers over its own client, then its connection drops.
	bcl := remoting.NewClient(remoting.ClientConfig{})
	hdrB := remoting.RegisterBrokerHeader{BrokerName: "broker-b", BrokerAddr: "127.0.0.1:20911", ClusterName: "C"}
	if _, err := remoting.RegisterBroker(ctxT(t), bcl, addr, hdrB, brokerBody(topicCfg("B", 2, 2, 6))); err != nil {
		t.Fatal(err)
	}
	if _, ok := ns.Registry().Route("B"); !ok {
		t.Fatal("no route after register")
	}
	_ = bcl.Close()
	waitFor(t, "removal on connection close", func() bool { _, ok := ns.Registry().Route("B"); return !ok })

	// broker-c unregisters explicitly.
	cl := remoting.NewClient(remoting.ClientConfig{})
	defer cl.Close()
	hdrC := remoting.RegisterBrokerHeader{BrokerName: "broker-c", BrokerAddr: "127.0.0.1:30911", ClusterName: "C"}
	if _, err := remoting.RegisterBroker(ctxT(t), cl, addr, hdrC, brokerBody(topicCfg("Ct", 2, 2, 6))); err != nil {
		t.Fatal(err)
	}
	err := remoting.UnregisterBroker(ctxT(t), cl, addr, remoting.UnregisterBrokerHeader{
		BrokerName: "broker-c", BrokerAddr: "127.0.0.1:30911", ClusterName: "C", BrokerID: 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ns.Registry().Route("Ct"); ok {
		t.Fatal("route after unregister")
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	if err := c.Validate(); err != nil || c.ListenAddr != DefaultListenAddr || c.BrokerExpiry != DefaultBrokerExpiry || c.ScanInterval != DefaultScanInterval {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := New(Config{BrokerExpiry: -1}); err == nil {
		t.Fatal("negative expiry accepted")
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	s, err := New(Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "listening", func() bool { return s.Addr() != "" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
