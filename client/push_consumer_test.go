package client

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// recorder collects consumed messages.
type recorder struct {
	mu   sync.Mutex
	msgs []*MessageExt
}

func (r *recorder) handler(ctx context.Context, msgs []*MessageExt) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, msgs...)
	r.mu.Unlock()
	return nil
}

func (r *recorder) bodies() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, m := range r.msgs {
		out[string(m.Body)]++
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func startConsumer(t *testing.T, endpoint, topic string, h Handler, opts ...PushConsumerOption) *PushConsumer {
	t.Helper()
	opts = append([]PushConsumerOption{WithRebalanceInterval(300 * time.Millisecond), WithLongPollTimeout(2 * time.Second)}, opts...)
	c, err := NewPushConsumer(endpoint, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(topic, "*"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func sendN(t *testing.T, p *Producer, topic, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := p.Send(ctxT(t), &Message{Topic: topic, Body: []byte(fmt.Sprintf("%s-%d", prefix, i))}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPushClusteringSplitAndTakeover(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("split", 4)
	var r1, r2 recorder
	c1 := startConsumer(t, c.endpoint(), "split", r1.handler, WithGroup("g-split"))
	topicQueues := func(pc *PushConsumer) int {
		n := 0
		for _, q := range pc.Assigned() {
			if q.Topic == "split" {
				n++
			}
		}
		return n
	}
	waitFor(t, 10*time.Second, "c1 owns all 4 queues", func() bool { return topicQueues(c1) == 4 })
	c2 := startConsumer(t, c.endpoint(), "split", r2.handler, WithGroup("g-split"))
	waitFor(t, 10*time.Second, "2+2 split", func() bool { return topicQueues(c1) == 2 && topicQueues(c2) == 2 })
	owned := map[MessageQueue]bool{}
	for _, q := range append(c1.Assigned(), c2.Assigned()...) {
		if owned[q] {
			t.Fatalf("queue %v owned twice", q)
		}
		owned[q] = true
	}

	p := newTestProducer(t, c.endpoint())
	sendN(t, p, "split", "a", 40)
	waitFor(t, 10*time.Second, "40 messages between both", func() bool { return len(r1.bodies())+len(r2.bodies()) >= 40 })
	if r1.count() == 0 || r2.count() == 0 {
		t.Fatalf("one member got nothing: %d / %d", r1.count(), r2.count())
	}
	for b := range r1.bodies() {
		if r2.bodies()[b] > 0 {
			t.Fatalf("%s consumed by both members", b)
		}
	}

	// c2 leaves: the broker notifies c1, which takes the queues over and
	// resumes from c2's committed offsets.
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "c1 owns all 4 again", func() bool { return topicQueues(c1) == 4 })
	before := r2.count()
	sendN(t, p, "split", "b", 20)
	waitFor(t, 10*time.Second, "c1 got the 20 new messages", func() bool {
		got := r1.bodies()
		for i := 0; i < 20; i++ {
			if got[fmt.Sprintf("b-%d", i)] == 0 {
				return false
			}
		}
		return true
	})
	if r2.count() != before {
		t.Fatal("closed member still consuming")
	}
	for b, n := range r1.bodies() {
		if n > 1 && b[0] == 'a' {
			t.Logf("redelivered %s (at-least-once)", b)
		}
	}
}

func TestPushBroadcasting(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("bcast", 2)
	var r1, r2 recorder
	dir := t.TempDir()
	c1 := startConsumer(t, c.endpoint(), "bcast", r1.handler, WithGroup("g-bcast"), WithBroadcast(true), WithInstanceName("m1"), WithBroadcastOffsetDir(dir))
	c2 := startConsumer(t, c.endpoint(), "bcast", r2.handler, WithGroup("g-bcast"), WithBroadcast(true), WithInstanceName("m2"), WithBroadcastOffsetDir(dir))
	waitFor(t, 10*time.Second, "both own both queues", func() bool { return len(c1.Assigned()) == 2 && len(c2.Assigned()) == 2 })
	p := newTestProducer(t, c.endpoint())
	sendN(t, p, "bcast", "x", 10)
	waitFor(t, 10*time.Second, "both got all 10", func() bool { return len(r1.bodies()) == 10 && len(r2.bodies()) == 10 })

	// A broadcasting member resumes from the offsets it kept on disk, not
	// from its consume-from policy (first offset here).
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	sendN(t, p, "bcast", "y", 5)
	var r3 recorder
	startConsumer(t, c.endpoint(), "bcast", r3.handler, WithGroup("g-bcast"), WithBroadcast(true), WithInstanceName("m1"),
		WithBroadcastOffsetDir(dir), WithConsumeFromWhere(ConsumeFromFirstOffset))
	waitFor(t, 10*time.Second, "the restarted member got the 5 new messages", func() bool { return len(r3.bodies()) >= 5 })
	for b := range r3.bodies() {
		if b[0] != 'y' {
			t.Fatalf("restarted member got %q again: its offsets were not kept", b)
		}
	}
}

func TestPushRetryAfterFailure(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("flaky", 2)
	var mu sync.Mutex
	var deliveries []*MessageExt
	h := func(ctx context.Context, msgs []*MessageExt) error {
		mu.Lock()
		defer mu.Unlock()
		deliveries = append(deliveries, msgs...)
		if string(msgs[0].Body) == "fail-me" && msgs[0].ReconsumeTimes < 2 {
			return fmt.Errorf("not now")
		}
		return nil
	}
	startConsumer(t, c.endpoint(), "flaky", h, WithGroup("g-flaky"))
	p := newTestProducer(t, c.endpoint())
	res, err := p.Send(ctxT(t), &Message{Topic: "flaky", Body: []byte("fail-me"), Tags: "T", Properties: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []*MessageExt
	waitFor(t, 20*time.Second, "third delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got = append(got[:0], deliveries...)
		return len(got) >= 3
	})
	for i, m := range got[:3] {
		if m.ReconsumeTimes != i || m.MsgID != res.MsgID || m.Topic != "flaky" || m.Tags != "T" || m.Properties["k"] != "v" {
			t.Fatalf("delivery %d: reconsume %d id %s topic %s tags %s props %v", i, m.ReconsumeTimes, m.MsgID, m.Topic, m.Tags, m.Properties)
		}
	}
	if got[1].Queue.Topic != protocol.RetryTopic("g-flaky") {
		t.Fatalf("retry came from %v", got[1].Queue)
	}
}

// The send-back fallback writes the retry message itself; the broker
// delivers it through the retry topic with reconsumeTimes+1.
func TestSendToRetryFallback(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("fb", 1)
	p := newTestProducer(t, c.endpoint())
	res, err := p.Send(ctxT(t), &Message{Topic: "fb", Body: []byte("again")})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*MessageExt
	waitFor(t, 10*time.Second, "the message readable", func() bool {
		msgs = drainAll(t, c.endpoint(), "fb")
		return len(msgs) == 1
	})
	cons, err := NewPullConsumer(c.endpoint(), WithGroup("g-fb"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	rt := cons.tr.(*rmqPull)
	// The retry topic appears with the group's first heartbeat.
	startConsumer(t, c.endpoint(), "fb", func(context.Context, []*MessageExt) error { return nil }, WithGroup("g-fb"))
	c.waitRoute(protocol.RetryTopic("g-fb"), 1)
	if err := sendToRetry(ctxT(t), rt.cmd, rt.routes, rt.cfg, msgs[0], 0); err != nil {
		t.Fatal(err)
	}
	var retried []*MessageExt
	waitFor(t, 10*time.Second, "retry message", func() bool {
		retried = drainAll(t, c.endpoint(), protocol.RetryTopic("g-fb"))
		return len(retried) == 1
	})
	m := retried[0]
	if m.ReconsumeTimes != 1 || m.MsgID != res.MsgID || m.Topic != "fb" {
		t.Fatalf("retry message: reconsume %d id %s topic %s", m.ReconsumeTimes, m.MsgID, m.Topic)
	}
	if v, _ := m.Property(protocol.PropOriginMessageID); v != res.MsgID {
		t.Fatalf("ORIGIN_MESSAGE_ID %q", v)
	}
}

func TestPushOrderly(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("fifo", 4)
	var mu sync.Mutex
	seq := map[string][]int{}
	failed := map[string]bool{}
	h := func(ctx context.Context, msgs []*MessageExt) error {
		m := msgs[0]
		var key string
		var i int
		fmt.Sscanf(string(m.Body), "%s %d", &key, &i)
		mu.Lock()
		defer mu.Unlock()
		if i == 3 && !failed[key] { // fail once: consumed again in place
			failed[key] = true
			return fmt.Errorf("transient")
		}
		seq[key] = append(seq[key], i)
		return nil
	}
	oc := startConsumer(t, c.endpoint(), "fifo", h, WithGroup("g-fifo"), WithOrderly(true), WithSuspendInterval(10*time.Millisecond))
	waitFor(t, 10*time.Second, "4 queues locked", func() bool { return len(oc.Assigned()) >= 4 })
	p := newTestProducer(t, c.endpoint(), WithQueueSelector(HashSelector()), WithLinger(5*time.Millisecond))
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func(k string) { // each key in order, keys concurrently
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := p.Send(ctxT(t), &Message{Topic: "fifo", Body: []byte(fmt.Sprintf("%s %d", k, i)), ShardingKey: k}); err != nil {
					t.Error(err)
					return
				}
			}
		}(k)
	}
	wg.Wait()
	waitFor(t, 15*time.Second, "120 consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range seq {
			n += len(s)
		}
		return n == 120
	})
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		for i, v := range seq[k] {
			if v != i {
				t.Fatalf("key %s consumed out of order: %v", k, seq[k])
			}
		}
	}
}

func TestDelayLevelAndDeliveryTime(t *testing.T) {
	c := newCluster(t, 1, nil) // every level is 20 ms
	c.createTopic("later", 1)
	var r recorder
	startConsumer(t, c.endpoint(), "later", r.handler, WithGroup("g-later"))
	p := newTestProducer(t, c.endpoint())
	ctx := ctxT(t)
	if _, err := p.Send(ctx, &Message{Topic: "later", Body: []byte("level"), DelayLevel: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Send(ctx, &Message{Topic: "later", Body: []byte("at"), DeliverAt: time.Now().Add(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both delayed messages", func() bool {
		b := r.bodies()
		return b["level"] == 1 && b["at"] == 1
	})
}

func TestPushFlowControl(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("slow", 1)
	release := make(chan struct{})
	var r recorder
	h := func(ctx context.Context, msgs []*MessageExt) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return r.handler(ctx, msgs)
	}
	const maxCached, batch = 6, 2
	pc := startConsumer(t, c.endpoint(), "slow", h, WithGroup("g-slow"), WithMaxCachedMessagesPerQueue(maxCached),
		WithPullBatchSize(batch), WithConsumeGoroutines(10))
	eng := pc.eng.(*rmqPush)
	waitFor(t, 10*time.Second, "queue owned", func() bool { return len(pc.Assigned()) >= 1 })
	p := newTestProducer(t, c.endpoint())
	sendN(t, p, "slow", "s", 40)
	cachedOf := func() int {
		for _, q := range eng.owned() {
			if q.mq.Topic == "slow" {
				n, _ := q.cached()
				return n
			}
		}
		return 0
	}
	waitFor(t, 10*time.Second, "cache filled", func() bool { return cachedOf() >= maxCached })
	// The pull loop keeps running; sampled for 200 ms, the cache must
	// stay bounded (sampling, not waiting for a condition).
	sample := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < 20; i++ {
		if n := cachedOf(); n > maxCached+batch {
			t.Fatalf("%d messages cached, limit %d (+%d per pull)", n, maxCached, batch)
		}
		<-sample.C
	}
	sample.Stop()
	close(release)
	waitFor(t, 10*time.Second, "all 40 consumed", func() bool { return len(r.bodies()) == 40 })
	waitFor(t, 10*time.Second, "committed offset reaches 40", func() bool {
		for _, q := range eng.owned() {
			if q.mq.Topic == "slow" {
				return q.commitOffset() == 40
			}
		}
		return false
	})
}

func TestPullConsumerAssignPollCommit(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("pulled", 2)
	p := newTestProducer(t, c.endpoint())
	sendN(t, p, "pulled", "p", 10)
	ctx := ctxT(t)
	pc, err := NewPullConsumer(c.endpoint(), WithGroup("g-pull"), WithConsumeFromWhere(ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	qs, err := pc.Queues(ctx, "pulled")
	if err != nil || len(qs) != 2 {
		t.Fatalf("queues %v %v", qs, err)
	}
	pc.Assign(qs)
	var got []*MessageExt
	waitFor(t, 10*time.Second, "10 polled", func() bool {
		ms, err := pc.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ms...)
		return len(got) >= 10
	})
	if err := pc.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, q := range qs {
		off, err := pc.CommittedOffset(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		total += off
	}
	if total != 10 {
		t.Fatalf("committed offsets sum to %d, want 10", total)
	}
	// A new consumer of the group resumes at the committed offsets.
	pc2, err := NewPullConsumer(c.endpoint(), WithGroup("g-pull"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc2.Close()
	pc2.Assign(qs)
	ms, err := pc2.Poll(ctx)
	if err != nil || len(ms) != 0 {
		t.Fatalf("after commit: %d messages, %v", len(ms), err)
	}
	// Pull by offset leaves positions alone.
	r, err := pc2.Pull(ctx, qs[0], 0, 100)
	if err != nil || len(r.Messages) == 0 || r.MaxOffset != r.NextOffset {
		t.Fatalf("pull from 0: %+v %v", r, err)
	}
}
