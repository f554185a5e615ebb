package broker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TestChangesRoutableAtOnce: a topic created by admin or by a first send,
// a permission change, a drain and an undrain, and a group's retry topic
// created by its first heartbeat are all in the name server's route when
// the call that made them returns — no wait for a later registration.
func TestChangesRoutableAtOnce(t *testing.T) {
	ns := testNamesrv(t)
	b := testBroker(t, t.TempDir(), func(c *Config) { c.NamesrvAddrs = []string{ns.Addr()} })
	c := newClient(t, b)
	route, perm := nsRoutes(t, ns.Addr())

	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "Demo2", ReadQueueNums: 4, WriteQueueNums: 4}); err != nil {
		t.Fatal(err)
	}
	if p := perm("Demo2"); p != protocol.PermRead|protocol.PermWrite {
		t.Fatalf("created topic: perm %d", p)
	}
	mustOK(t, c.send("Auto1", 0, "first", nil))
	perm("Auto1")

	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "Demo2", ReadQueueNums: 4, WriteQueueNums: 4, Perm: protocol.PermRead}); err != nil {
		t.Fatal(err)
	}
	if p := perm("Demo2"); p != protocol.PermRead {
		t.Fatalf("after a change to read-only: perm %d", p)
	}
	b.Admin().Drain(true)
	if p := perm("Auto1"); protocol.PermWritable(p) {
		t.Fatalf("drained: perm %d", p)
	}
	b.Admin().Drain(false)
	if p := perm("Auto1"); !protocol.PermWritable(p) {
		t.Fatalf("undrained: perm %d", p)
	}

	hb := remoting.HeartbeatData{ClientID: "cid-1", ConsumerDataSet: []remoting.ConsumerData{{GroupName: "fresh",
		ConsumeType: remoting.ConsumePassively, MessageModel: remoting.MessageModelClustering, ConsumeFromWhere: "CONSUME_FROM_LAST_OFFSET",
		SubscriptionDataSet: []remoting.SubscriptionData{{Topic: "Auto1", SubString: "*"}}}}}
	body, err := json.Marshal(hb)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, c.invoke(remoting.NewRequest(protocol.ReqHeartBeat, nil, body)))
	perm(protocol.RetryTopic("fresh"))

	if err := b.Admin().DeleteTopic("Demo2"); err != nil {
		t.Fatal(err)
	}
	if _, err := route("Demo2"); err == nil {
		t.Fatal("a deleted topic is still routed")
	}
}

// TestRetryReadersToldToRebalance: a send-back of a group whose consumers
// have not pulled its retry queue yet tells them to rebalance (they may
// have looked the retry topic up before it existed); once they pull it,
// send-backs tell them nothing.
func TestRetryReadersToldToRebalance(t *testing.T) {
	b := testBroker(t, t.TempDir(), fastDelays)
	notified := make(chan string, 16)
	rc := remoting.NewClient(remoting.ClientConfig{Handler: remoting.HandlerFunc(func(_ *remoting.Conn, req *remoting.Command) {
		if req.Code == protocol.ReqNotifyConsumerIDsChanged {
			notified <- req.StringOr("consumerGroup", "")
		}
	})})
	t.Cleanup(func() { rc.Close() })
	c := &tclient{t: t, c: rc, addr: b.Addr()}
	hb := remoting.HeartbeatData{ClientID: "cid-1", ConsumerDataSet: []remoting.ConsumerData{{GroupName: "late",
		ConsumeType: remoting.ConsumePassively, MessageModel: remoting.MessageModelClustering, ConsumeFromWhere: "CONSUME_FROM_LAST_OFFSET",
		SubscriptionDataSet: []remoting.SubscriptionData{{Topic: "orders", SubString: "*"}}}}}
	body, err := json.Marshal(hb)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, c.invoke(remoting.NewRequest(protocol.ReqHeartBeat, nil, body)))
	if g := <-notified; g != "late" { // joining the group
		t.Fatalf("notified %q", g)
	}
	mustOK(t, c.send("orders", 0, "fails", nil))
	var recs []protocol.Record
	waitFor(t, 5*time.Second, "the message", func() bool {
		_, recs = c.pull("late", "orders", 0, 0, 0)
		return len(recs) == 1
	})
	mustOK(t, c.sendBack("late", recs[0]))
	select {
	case g := <-notified:
		if g != "late" {
			t.Fatalf("notified %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a send-back of a group that does not read its retry queue told it nothing")
	}

	// Reading the retry queue: no more notifications.
	waitFor(t, 5*time.Second, "the retry", func() bool {
		_, rr := c.pull("late", protocol.RetryTopic("late"), 0, 0, 0)
		return len(rr) == 1
	})
	for len(notified) > 0 {
		<-notified
	}
	_, rr := c.pull("late", protocol.RetryTopic("late"), 0, 0, 0)
	mustOK(t, c.sendBack("late", rr[0]))
	select {
	case g := <-notified:
		t.Fatalf("notified %q although its consumers read the retry queue", g)
	case <-time.After(300 * time.Millisecond):
	}
}
