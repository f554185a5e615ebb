package broker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// TestAdminTopicRoundTrip: a topic created is listed with the default
// permission, changed in place, reported queue by queue, and gone with
// its offsets once deleted; names, windows and system topics the
// administration may not touch are refused.
func TestAdminTopicRoundTrip(t *testing.T) {
	a := testBroker(t, t.TempDir(), nil).Admin()
	if err := a.CreateTopic(TopicConfig{TopicName: "orders", ReadQueueNums: 2, WriteQueueNums: 2}); err != nil {
		t.Fatal(err)
	}
	tc, ok := a.Topic("orders")
	if !ok || tc.Perm != protocol.PermRead|protocol.PermWrite || !slices.Contains(a.Topics(), "orders") {
		t.Fatalf("created: %+v %v, topics %v", tc, ok, a.Topics())
	}
	if err := a.CreateTopic(TopicConfig{TopicName: "orders", ReadQueueNums: 3, WriteQueueNums: 3, Perm: protocol.PermRead}); err != nil {
		t.Fatal(err)
	}
	st, err := a.TopicStats("orders")
	if err != nil || len(st) != 3 || st[2].QueueID != 2 || st[2].MaxOffset != 0 {
		t.Fatalf("stats after the change: %+v %v", st, err)
	}
	for _, c := range []struct {
		tc   TopicConfig
		want error
	}{
		{TopicConfig{TopicName: "bad name", ReadQueueNums: 1, WriteQueueNums: 1}, ErrTopicInvalid},
		{TopicConfig{TopicName: "win", ReadQueueNums: 1, WriteQueueNums: 1, DedupWindowMs: -1}, ErrInvalidRequest},
		{TopicConfig{TopicName: protocol.DLQTopic("g"), ReadQueueNums: 1, WriteQueueNums: 1}, ErrTopicSystem},
	} {
		if err := a.CreateTopic(c.tc); !errors.Is(err, c.want) {
			t.Fatalf("create %q: %v, want %v", c.tc.TopicName, err, c.want)
		}
	}
	if err := a.DeleteTopic(protocol.ScheduleTopic); !errors.Is(err, ErrTopicSystem) {
		t.Fatalf("delete the schedule topic: %v", err)
	}

	if _, err := a.ResetOffset("g", "orders", func(int32) (int64, error) { return 0, nil }); err != nil {
		t.Fatal(err)
	}
	if n := len(a.ConsumeStats("g")); n != 3 {
		t.Fatalf("%d queues with offsets of g, want 3", n)
	}
	if err := a.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Topic("orders"); ok {
		t.Fatal("deleted topic still there")
	}
	if _, err := a.TopicStats("orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("stats of a deleted topic: %v", err)
	}
	if lags := a.ConsumeStats("g"); len(lags) != 0 {
		t.Fatalf("offsets of a deleted topic: %+v", lags)
	}
}

// TestAdminOffsetsAndGroups: offsets are reset within the queue's bounds
// and the lag follows; a group put is listed, and deleting it drops its
// offsets.
func TestAdminOffsetsAndGroups(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	a := b.Admin()
	c := newClient(t, b)
	for range 3 {
		mustOK(t, c.send("shop", 0, "m", nil))
	}
	waitFor(t, 5*time.Second, "the messages indexed", func() bool {
		st, err := a.TopicStats("shop")
		return err == nil && st[0].MaxOffset == 3
	})
	if _, err := a.QueueOffsetAt("shop", 0, "soon", 0); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("unknown reset target: %v", err)
	}
	if _, err := a.ResetOffset("g", "nowhere", func(int32) (int64, error) { return 0, nil }); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("reset on a missing topic: %v", err)
	}
	res, err := a.ResetOffset("g", "shop", func(q int32) (int64, error) { return a.QueueOffsetAt("shop", q, "offset", 100) })
	if err != nil || res[0] != 3 {
		t.Fatalf("reset past the end: %v %v, want 3 on queue 0", res, err)
	}
	res, err = a.ResetOffset("g", "shop", func(q int32) (int64, error) { return a.QueueOffsetAt("shop", q, "offset", 1) })
	if err != nil || res[0] != 1 {
		t.Fatalf("reset to 1: %v %v", res, err)
	}
	lags := a.ConsumeStats("g")
	if len(lags) == 0 || lags[0].QueueID != 0 || lags[0].ConsumerOffset != 1 || lags[0].Lag != 2 {
		t.Fatalf("lag after the reset: %+v", lags)
	}

	if err := a.PutGroup(DefaultGroupConfig("g", 16)); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Group("g"); !ok || !slices.ContainsFunc(a.Groups(), func(gi GroupInfo) bool { return gi.GroupName == "g" && gi.Online == 0 }) {
		t.Fatalf("group put: %+v", a.Groups())
	}
	if err := a.DeleteGroup("g"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Group("g"); ok {
		t.Fatal("deleted group still there")
	}
	if lags := a.ConsumeStats("g"); len(lags) != 0 {
		t.Fatalf("offsets of a deleted group: %+v", lags)
	}
}

// TestAdminConfigDrainRuntime: a configuration change reads back, a drain
// shows in the status, and dead letters of a group without any are none.
func TestAdminConfigDrainRuntime(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	a := b.Admin()
	if err := a.SetConfig("pull_max_messages", "7"); err != nil {
		t.Fatal(err)
	}
	if got := a.ConfigMap()["pull_max_messages"]; got != "7" || b.Config().PullMaxMessages != 7 {
		t.Fatalf("pull_max_messages %q in the map, %d in force", got, b.Config().PullMaxMessages)
	}
	if err := a.SetConfig("port", "1"); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("a key fixed at start: %v", err)
	}

	if ri := a.Runtime(); !ri.Writable || ri.Addr != b.Addr() || ri.BrokerName != b.Config().BrokerName {
		t.Fatalf("runtime: %+v", ri)
	}
	a.Drain(true)
	if ri := a.Runtime(); ri.Writable || ri.NotWritableWhy != protocol.DrainedReason {
		t.Fatalf("drained: writable %v, why %q", ri.Writable, ri.NotWritableWhy)
	}
	a.Drain(false)
	if ri := a.Runtime(); !ri.Writable {
		t.Fatalf("undrained: %q", ri.NotWritableWhy)
	}

	if list, next, err := a.DLQList("quiet", 0, 10); list != nil || next != 0 || err != nil {
		t.Fatalf("dead letters of a group without any: %v %d %v", list, next, err)
	}
	if _, _, err := a.DLQResend("quiet", nil, dlq.ToRetry); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("resend without dead letters: %v", err)
	}
}
