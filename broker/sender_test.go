package broker

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// testSender is a sender over the stores of a broker started in dir, with
// its own configuration, address and writability.
func testSender(t *testing.T, mut func(*Config)) *sender {
	t.Helper()
	b := testBroker(t, t.TempDir(), nil)
	cfg := b.Config()
	if mut != nil {
		mut(&cfg)
	}
	host := netip.MustParseAddrPort("10.1.2.3:10911")
	return &sender{cfg: func() *Config { return &cfg }, log: b.log, clog: b.clog, topics: b.topics, groups: b.groups,
		metrics: b.metrics, delayLevels: len(b.delays), storeHost: func() netip.AddrPort { return host },
		writable: func() string { return "" }, checkTopic: b.checkSendTopic}
}

func TestSenderCheckWritable(t *testing.T) {
	s := testSender(t, nil)
	if err := s.checkWritable(); err != nil {
		t.Fatalf("a writable sender refused: %v", err)
	}
	s.writable = func() string { return protocol.DrainedReason }
	err := s.checkWritable()
	if !errors.Is(err, ErrNotWritable) || !strings.Contains(err.Error(), protocol.DrainedReason) {
		t.Fatalf("a drained sender answered %v", err)
	}
}

func TestSenderResolveSendTopic(t *testing.T) {
	s := testSender(t, func(c *Config) { c.AutoCreateTopic = false })
	if _, err := s.resolveSendTopic(&sendHeader{topic: "Nowhere", queueID: -1}); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("unknown topic without auto-creation: %v", err)
	}
	if _, err := s.resolveSendTopic(&sendHeader{topic: protocol.DLQTopic("g"), queueID: 0}); !errors.Is(err, ErrTopicSystem) {
		t.Fatalf("a client's send to a DLQ: %v", err)
	}
	rw := int32(protocol.PermRead | protocol.PermWrite)
	if _, err := s.topics.ensure(TopicConfig{TopicName: "four", ReadQueueNums: 4, WriteQueueNums: 4, Perm: rw}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.resolveSendTopic(&sendHeader{topic: "four", queueID: 4}); !errors.Is(err, ErrQueueIllegal) {
		t.Fatalf("queue 4 of 4: %v", err)
	}
	for range 20 {
		h := sendHeader{topic: "four", queueID: -1}
		if _, err := s.resolveSendTopic(&h); err != nil || h.queueID < 0 || h.queueID >= 4 {
			t.Fatalf("any queue: picked %d, %v", h.queueID, err)
		}
	}
	if _, err := s.topics.ensure(TopicConfig{TopicName: "readonly", ReadQueueNums: 1, WriteQueueNums: 1, Perm: protocol.PermRead}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.resolveSendTopic(&sendHeader{topic: "readonly", queueID: 0}); !errors.Is(err, ErrNoPermission) {
		t.Fatalf("a read-only topic: %v", err)
	}

	auto := testSender(t, func(c *Config) { c.AutoCreateTopic = true })
	tc, err := auto.resolveSendTopic(&sendHeader{topic: "Fresh", defaultQueueNums: 2, queueID: 1})
	if err != nil || tc.WriteQueueNums != 2 {
		t.Fatalf("auto-created topic %+v, %v; want 2 queues", tc, err)
	}
	if _, ok := auto.topics.get("Fresh"); !ok {
		t.Fatal("the auto-created topic is not in the table")
	}
}

func TestSenderRouteSpecial(t *testing.T) {
	s := testSender(t, nil)
	delayed := commitlog.Message{Topic: "orders", QueueID: 3,
		Properties: protocol.EncodeProperties(map[string]string{protocol.PropDelayLevel: "3"})}
	if err := s.routeSpecial(&delayed, &sendHeader{}); err != nil {
		t.Fatal(err)
	}
	p := protocol.ParseProperties(delayed.Properties)
	if delayed.Topic != protocol.ScheduleTopic || delayed.QueueID != 2 || p[protocol.PropRealTopic] != "orders" || p[protocol.PropRealQueueID] != "3" {
		t.Fatalf("DELAY 3 went to %s queue %d with %v", delayed.Topic, delayed.QueueID, p)
	}

	past := commitlog.Message{Topic: "orders", Properties: protocol.EncodeProperties(map[string]string{protocol.PropDelayLevel: "99"})}
	if err := s.routeSpecial(&past, &sendHeader{}); err != nil || past.QueueID != int32(s.delayLevels-1) {
		t.Fatalf("DELAY past the last level: queue %d, %v", past.QueueID, err)
	}
	bad := commitlog.Message{Topic: "orders", Properties: protocol.EncodeProperties(map[string]string{protocol.PropDelayLevel: "soon"})}
	if err := s.routeSpecial(&bad, &sendHeader{}); !errors.Is(err, ErrDelayInvalid) {
		t.Fatalf("DELAY soon: %v", err)
	}

	timed := commitlog.Message{Topic: "orders", Properties: protocol.EncodeProperties(map[string]string{protocol.PropTimerDelaySec: "60"})}
	if err := s.routeSpecial(&timed, &sendHeader{}); err != nil || timed.Topic != protocol.TimerTopic {
		t.Fatalf("a timer message went to %s, %v", timed.Topic, err)
	}

	tired := commitlog.Message{Topic: protocol.RetryTopic("g"), ReconsumeTimes: 5,
		Properties: protocol.EncodeProperties(map[string]string{protocol.PropDelayLevel: "4"})}
	if err := s.routeSpecial(&tired, &sendHeader{hasMaxReconsume: true, maxReconsumeTimes: 5}); err != nil {
		t.Fatal(err)
	}
	p = protocol.ParseProperties(tired.Properties)
	if tired.Topic != protocol.DLQTopic("g") || tired.QueueID != 0 || p[protocol.PropDelayLevel] != "" || p[protocol.PropRetryTopic] != protocol.RetryTopic("g") {
		t.Fatalf("a retry past its limit went to %s queue %d with %v", tired.Topic, tired.QueueID, p)
	}
	if _, ok := s.topics.get(protocol.DLQTopic("g")); !ok {
		t.Fatal("the dead-letter topic was not created")
	}
}

func TestSenderSendBackMessage(t *testing.T) {
	s := testSender(t, nil)
	rec := protocol.Record{Topic: []byte("orders"), Body: []byte("x"), ReconsumeTimes: 1, PhysicalOffset: 42,
		StoreHost: netip.MustParseAddrPort("10.9.9.9:10911")}
	gc := DefaultGroupConfig("g", 16)
	m, err := s.sendBackMessage(rec, "g", gc, "", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	p := protocol.ParseProperties(m.Properties)
	// Level 3 + reconsumeTimes, in the schedule topic's queue level-1.
	if m.Topic != protocol.ScheduleTopic || m.QueueID != 3 || p[protocol.PropDelayLevel] != "4" || m.ReconsumeTimes != 2 {
		t.Fatalf("send-back went to %s queue %d, level %s, reconsume %d", m.Topic, m.QueueID, p[protocol.PropDelayLevel], m.ReconsumeTimes)
	}
	if p[protocol.PropRealTopic] != protocol.RetryTopic("g") || p[protocol.PropRetryTopic] != "orders" ||
		p[protocol.PropOriginMessageID] != protocol.OffsetMsgID(rec.StoreHost, 42) || m.StoreHost != s.storeHost() {
		t.Fatalf("send-back properties %v, store host %s", p, m.StoreHost)
	}
	m, err = s.sendBackMessage(rec, "g", gc, "", 0, 1)
	if err != nil || m.Topic != protocol.DLQTopic("g") {
		t.Fatalf("send-back past maxReconsumeTimes went to %s, %v", m.Topic, err)
	}
}

func TestSenderStore(t *testing.T) {
	s := testSender(t, nil)
	req := remoting.NewRequest(protocol.ReqSendMessage, nil, nil)
	for want := int64(0); want < 2; want++ {
		resp := s.store(req, []commitlog.Message{{Topic: "stored", QueueID: 1, Body: []byte("b"), StoreHost: s.storeHost()}})
		mustOK(t, resp)
		rh, ok := resp.Header.(*remoting.SendResponseHeader)
		if !ok || rh.QueueOffset != want || rh.QueueID != 1 {
			t.Fatalf("answer %+v, want queue 1 offset %d", resp.Header, want)
		}
		host, _, err := protocol.ParseOffsetMsgID(rh.MsgID)
		if err != nil || host != s.storeHost() {
			t.Fatalf("msgId %s names %s, %v", rh.MsgID, host, err)
		}
	}
	if resp := s.sendResponse(req, nil, nil, ErrTopicNotFound); resp.Code != protocol.RespTopicNotExist {
		t.Fatalf("a failed append answered %d", resp.Code)
	}
	if resp := s.sendResponse(req, []commitlog.Message{{Topic: "stored"}}, nil, nil); resp.Code != protocol.RespSystemError {
		t.Fatalf("an append without results answered %d", resp.Code)
	}
}
