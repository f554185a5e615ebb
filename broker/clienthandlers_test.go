package broker

import (
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// serveHandler serves one request code with f alone (no ACL, no metrics,
// none of the broker's other routes) on a port of its own, and returns a
// client of it.
func serveHandler(t *testing.T, code int16, f func(c *remoting.Conn, req *remoting.Command)) *tclient {
	t.Helper()
	mux := remoting.NewMux()
	mux.HandleFunc(code, f)
	srv := remoting.NewServer(mux, remoting.ServerConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(t.Context())
		if err := <-done; err != nil && !errors.Is(err, remoting.ErrServerClosed) {
			t.Error(err)
		}
	})
	c := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { c.Close() })
	return &tclient{t: t, c: c, addr: ln.Addr().String()}
}

func TestClientHandlersPullUnknownTopic(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := serveHandler(t, protocol.ReqPullMessage, b.client.handlePull)
	resp, recs := c.pull("g1", "NoSuchTopic", 0, 0, 0)
	if resp.Code != protocol.RespTopicNotExist || len(recs) != 0 {
		t.Fatalf("pull of an unknown topic: code %d (%s), %d records", resp.Code, resp.Remark, len(recs))
	}
}

func TestClientHandlersQueryOffset(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	if _, err := b.topics.ensure(TopicConfig{TopicName: "offsets", ReadQueueNums: 2, WriteQueueNums: 2, Perm: int32(protocol.PermRead | protocol.PermWrite)}); err != nil {
		t.Fatal(err)
	}
	query := serveHandler(t, protocol.ReqQueryConsumerOffset, b.client.handleQueryOffset)
	update := serveHandler(t, protocol.ReqUpdateConsumerOffset, b.client.handleUpdateOffset)
	req := func(code int16, group string, q int, extra ...string) *remoting.Command {
		h := map[string]string{"consumerGroup": group, "topic": "offsets", "queueId": strconv.Itoa(q)}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return remoting.NewRequest(code, h, nil)
	}

	// A group never seen on a queue never written starts from 0.
	resp := query.invoke(req(protocol.ReqQueryConsumerOffset, "newcomer", 1))
	mustOK(t, resp)
	if got := resp.StringOr("offset", ""); got != "0" {
		t.Fatalf("unknown group's offset %q, want 0", got)
	}
	if resp := query.invoke(remoting.NewRequest(protocol.ReqQueryConsumerOffset, map[string]string{"topic": "offsets", "queueId": "0"}, nil)); resp.Code != protocol.RespSystemError {
		t.Fatalf("query without a group: code %d, want a system error", resp.Code)
	}

	mustOK(t, update.invoke(req(protocol.ReqUpdateConsumerOffset, "g1", 1, "commitOffset", "7")))
	resp = query.invoke(req(protocol.ReqQueryConsumerOffset, "g1", 1))
	mustOK(t, resp)
	if got := resp.StringOr("offset", ""); got != "7" {
		t.Fatalf("committed offset read back as %q, want 7", got)
	}
	if resp := update.invoke(req(protocol.ReqUpdateConsumerOffset, "g1", 1, "commitOffset", "-1")); resp.Code != protocol.RespSystemError {
		t.Fatalf("negative commit: code %d, want a system error", resp.Code)
	}
	if off, _ := b.offsets.get("g1", "offsets", 1); off != 7 {
		t.Fatalf("offset table holds %d, want 7", off)
	}
}

func TestClientHandlersLockRound(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	lock := serveHandler(t, protocol.ReqLockBatchMQ, b.client.handleLock)
	unlock := serveHandler(t, protocol.ReqUnlockBatchMQ, b.client.handleUnlock)
	mq := []remoting.MessageQueue{{Topic: "orders", BrokerName: "b", QueueID: 3}}
	body := func(client string) []byte {
		out, err := remoting.EncodeBody(remoting.LockBatchRequestBody{ConsumerGroup: "g", ClientID: client, MQSet: mq})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	locked := func(client string) int {
		t.Helper()
		resp := lock.invoke(remoting.NewRequest(protocol.ReqLockBatchMQ, nil, body(client)))
		mustOK(t, resp)
		var got remoting.LockBatchResponseBody
		if err := remoting.DecodeBody(resp.Body, &got); err != nil {
			t.Fatal(err)
		}
		return len(got.LockOKMQSet)
	}

	if n := locked("A"); n != 1 {
		t.Fatalf("A locked %d queues, want 1", n)
	}
	if n := locked("B"); n != 0 {
		t.Fatalf("B locked %d queues held by A, want 0", n)
	}
	if n := locked("A"); n != 1 {
		t.Fatalf("A's renewal locked %d queues, want 1", n)
	}
	mustOK(t, unlock.invoke(remoting.NewRequest(protocol.ReqUnlockBatchMQ, nil, body("A"))))
	if n := locked("B"); n != 1 {
		t.Fatalf("B locked %d queues after A's unlock, want 1", n)
	}
	if resp := lock.invoke(remoting.NewRequest(protocol.ReqLockBatchMQ, nil, []byte("{"))); resp.Code != protocol.RespSystemError {
		t.Fatalf("malformed lock body: code %d, want a system error", resp.Code)
	}
}

func TestClientHandlersConsumerList(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	hb := serveHandler(t, protocol.ReqHeartBeat, b.client.handleHeartbeat)
	list := serveHandler(t, protocol.ReqGetConsumerListByGroup, b.client.handleConsumerList)
	ask := func() *remoting.Command {
		return list.invoke(remoting.NewRequest(protocol.ReqGetConsumerListByGroup, map[string]string{"consumerGroup": "cg"}, nil))
	}
	if resp := ask(); resp.Code != protocol.RespSystemError {
		t.Fatalf("a group without consumers: code %d, want a system error", resp.Code)
	}
	body, err := remoting.EncodeBody(remoting.HeartbeatData{ClientID: "client-1", ConsumerDataSet: []remoting.ConsumerData{{
		GroupName: "cg", MessageModel: remoting.MessageModelClustering,
		SubscriptionDataSet: []remoting.SubscriptionData{{Topic: "orders", SubString: "*"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, hb.invoke(remoting.NewRequest(protocol.ReqHeartBeat, nil, body)))
	if _, ok := b.topics.get(protocol.RetryTopic("cg")); !ok {
		t.Fatal("the heartbeat of a clustering consumer did not create its group's retry topic")
	}
	resp := ask()
	mustOK(t, resp)
	var ids remoting.ConsumerListBody
	if err := remoting.DecodeBody(resp.Body, &ids); err != nil {
		t.Fatal(err)
	}
	if len(ids.ConsumerIDList) != 1 || ids.ConsumerIDList[0] != "client-1" {
		t.Fatalf("consumers %v, want [client-1]", ids.ConsumerIDList)
	}
}

func TestClientHandlersSendBackUnknownGroup(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.AutoCreateGroup = false })
	c := serveHandler(t, protocol.ReqConsumerSendMsgBack, b.client.handleSendBack)
	resp := c.invoke(remoting.NewRequest(protocol.ReqConsumerSendMsgBack, map[string]string{"group": "ghost", "offset": "0"}, nil))
	if resp.Code != protocol.RespSubscriptionGroupNotExist {
		t.Fatalf("send-back for an unknown group: code %d (%s)", resp.Code, resp.Remark)
	}
}

func TestClientHandlersSend(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.AutoCreateTopic = false })
	h := sendHandler{ch: b.client, obs: b.metrics.rpcLatency.WithLabelValues(strconv.Itoa(protocol.ReqSendMessage))}
	c := serveHandler(t, protocol.ReqSendMessage, h.ServeRemoting)
	if resp := c.send("Unknown", 0, "x", nil); resp.Code != protocol.RespTopicNotExist {
		t.Fatalf("a send to an unknown topic: code %d (%s)", resp.Code, resp.Remark)
	}
	if resp := c.send(protocol.ScheduleTopic, 0, "x", nil); resp.Code != protocol.RespNoPermission {
		t.Fatalf("a send to the schedule topic: code %d (%s)", resp.Code, resp.Remark)
	}
	if _, err := b.topics.ensure(TopicConfig{TopicName: "known", ReadQueueNums: 1, WriteQueueNums: 1, Perm: int32(protocol.PermRead | protocol.PermWrite)}); err != nil {
		t.Fatal(err)
	}
	resp := c.send("known", 0, "x", nil)
	mustOK(t, resp)
	if resp.StringOr("queueOffset", "") != "0" {
		t.Fatalf("the first send got queue offset %q", resp.StringOr("queueOffset", ""))
	}
	b.drained.Store(true)
	if resp := c.send("known", 0, "x", nil); resp.Code != protocol.RespServiceNotAvailable {
		t.Fatalf("a send to a drained broker: code %d (%s)", resp.Code, resp.Remark)
	}
}
