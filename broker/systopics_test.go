package broker

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

var systemTopics = []string{
	protocol.ScheduleTopic, protocol.TimerTopic, protocol.AutoCreateTopicTemplate, protocol.TransHalfTopic, protocol.TransOpHalfTopic,
	protocol.TraceTopic, protocol.RetryTopic("billing"), protocol.DLQTopic("billing"), protocol.DLQTopic("nobody"),
}

// TestSystemTopicsRefuseSends: ordinary sends to a system topic are
// refused, over remoting (NO_PERMISSION) and HTTP (403), saying why, and
// create nothing (no DLQ for a group that does not exist). A send-back
// made as a plain send to %RETRY%<group> is accepted for a group that
// exists; the broker's own writes to system topics (delay levels,
// send-back, dead letters) go on.
func TestSystemTopicsRefuseSends(t *testing.T) {
	b, a := testHTTPBroker(t, fastDelays)
	c := newClient(t, b)
	for _, topic := range systemTopics {
		resp := c.send(topic, 0, "x", nil)
		if resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "reserved for the broker") {
			t.Errorf("send to %s: code %d %q, want NO_PERMISSION saying it is reserved", topic, resp.Code, resp.Remark)
		}
		p := a.fails("POST", "/v1/topics/"+url.PathEscape(topic)+"/messages", map[string]any{"messages": []map[string]any{{"body": "x"}}}, 403, 16)
		if !strings.Contains(p.Detail, "reserved for the broker") {
			t.Errorf("HTTP send to %s: %q", topic, p.Detail)
		}
	}
	if _, ok := b.topics.get(protocol.DLQTopic("nobody")); ok {
		t.Fatal("a refused send created a DLQ")
	}

	// A send-back made as a plain send: only for a group that exists.
	sendBack := map[string]string{protocol.PropRetryTopic: "orders"}
	if resp := c.send(protocol.RetryTopic("ghost"), 0, "x", sendBack); resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "does not exist") {
		t.Fatalf("send-back for a missing group: code %d %q", resp.Code, resp.Remark)
	}
	if err := b.PutGroup(GroupConfig{GroupName: "billing", RetryMaxTimes: 16, ConsumeEnable: true}); err != nil {
		t.Fatal(err)
	}
	mustOK(t, c.send(protocol.RetryTopic("billing"), 0, "x", sendBack))

	// The broker's own writes: a delayed message comes out on its topic,
	// and a send-back goes to the retry topic.
	mustOK(t, c.send("orders", 0, "later", map[string]string{protocol.PropDelayLevel: "1"}))
	var recs []protocol.Record
	waitFor(t, 5*time.Second, "the delayed message", func() bool {
		_, recs = c.pull("billing", "orders", 0, 0, 0)
		return len(recs) == 1
	})
	mustOK(t, c.sendBack("billing", recs[0]))
	waitFor(t, 5*time.Second, "the sent-back message", func() bool {
		_, rr := c.pull("billing", protocol.RetryTopic("billing"), 0, 1, 0)
		return len(rr) == 1 && string(rr[0].Body) == "later"
	})
}

// TestSystemTopicsRefuseAdmin: topic administration cannot create,
// update or delete a system topic; a DLQ can be deleted, over HTTP only
// with ?confirm=<topic>; the retry topic of a group that no longer exists
// can be deleted.
func TestSystemTopicsRefuseAdmin(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	c := newClient(t, b)
	for _, topic := range systemTopics {
		resp := c.invoke(remoting.NewRequest(protocol.ReqUpdateAndCreateTopic, map[string]string{
			"topic": topic, "readQueueNums": "1", "writeQueueNums": "1", "perm": "6"}, nil))
		if resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "reserved for the broker") {
			t.Errorf("create %s: code %d %q", topic, resp.Code, resp.Remark)
		}
		a.fails("POST", "/v1/topics", map[string]any{"name": topic}, 403, 16)
	}
	a.fails("PUT", "/v1/topics/"+protocol.AutoCreateTopicTemplate, map[string]any{"perm": "r"}, 403, 16)
	a.fails("PUT", "/v1/topics/"+protocol.ScheduleTopic, map[string]any{"write_queues": 1}, 403, 16)
	for _, topic := range []string{protocol.ScheduleTopic, protocol.TimerTopic, protocol.AutoCreateTopicTemplate} {
		a.fails("DELETE", "/v1/topics/"+topic, nil, 403, 16)
		if resp := c.invoke(remoting.NewRequest(protocol.ReqDeleteTopicInBroker, map[string]string{"topic": topic}, nil)); resp.Code != protocol.RespNoPermission {
			t.Errorf("delete %s: code %d %q", topic, resp.Code, resp.Remark)
		}
	}

	// Dead letters of a group, and its retry topic.
	if err := b.PutGroup(GroupConfig{GroupName: "billing", RetryMaxTimes: 16, ConsumeEnable: true}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{protocol.DLQTopic("billing"), protocol.RetryTopic("billing")} {
		if _, err := b.sender.ensureGroupTopic(topic); err != nil {
			t.Fatal(err)
		}
	}
	dlqPath := "/v1/topics/" + url.PathEscape(protocol.DLQTopic("billing"))
	p := a.fails("DELETE", dlqPath, nil, 400, 1002)
	if !strings.Contains(p.Detail, "confirm=") {
		t.Fatalf("unconfirmed DLQ delete: %q", p.Detail)
	}
	a.fails("DELETE", dlqPath+"?confirm=%25DLQ%25other", nil, 400, 1002)
	a.ok("DELETE", dlqPath+"?confirm="+url.QueryEscape(protocol.DLQTopic("billing")), nil, 204, nil)
	if _, ok := b.topics.get(protocol.DLQTopic("billing")); ok {
		t.Fatal("confirmed DLQ delete left the topic")
	}
	retryPath := "/v1/topics/" + url.PathEscape(protocol.RetryTopic("billing"))
	if p := a.fails("DELETE", retryPath, nil, 403, 16); !strings.Contains(p.Detail, "delete the group first") {
		t.Fatalf("retry topic delete: %q", p.Detail)
	}
	if err := b.DeleteGroup("billing"); err != nil {
		t.Fatal(err)
	}
	a.ok("DELETE", retryPath, nil, 204, nil)
}
