package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

func TestProducerSendModes(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("modes", 4)
	p := newTestProducer(t, c.endpoint())
	ctx := ctxT(t)

	r, err := p.Send(ctx, &Message{Topic: "modes", Body: []byte("sync"), Tags: "T1", Keys: []string{"k1", "k2"},
		Properties: map[string]string{"color": "red"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.MsgID) != 32 || len(r.OffsetMsgID) != 32 || r.Queue.Topic != "modes" || r.Queue.BrokerName != "broker-a" {
		t.Fatalf("sync result %+v", r)
	}
	f := p.SendFuture(ctx, &Message{Topic: "modes", Body: []byte("future")})
	if _, err := f.Get(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	p.SendAsync(ctx, &Message{Topic: "modes", Body: []byte("async")}, func(_ SendResult, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.SendOneway(ctx, &Message{Topic: "modes", Body: []byte("oneway")}); err != nil {
		t.Fatal(err)
	}
	var batch []*Message
	for i := 0; i < 5; i++ {
		batch = append(batch, &Message{Topic: "modes", Body: []byte(fmt.Sprintf("batch-%d", i)), Keys: []string{fmt.Sprint("b", i)}})
	}
	rs, err := p.SendBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, br := range rs {
		if br.Queue != rs[0].Queue || br.QueueOffset != rs[0].QueueOffset+int64(i) || br.MsgID == "" || ids[br.MsgID] {
			t.Fatalf("batch result %d: %+v", i, br)
		}
		ids[br.MsgID] = true
	}
	if s := p.Stats(); s.Requests != 5 {
		t.Fatalf("requests %d, want 5 (4 single + 1 batch)", s.Requests)
	}

	var got []*MessageExt
	waitFor(t, 10*time.Second, "all 9 messages stored", func() bool {
		got = drainAll(t, c.endpoint(), "modes")
		return len(got) == 9
	})
	bodies := map[string]*MessageExt{}
	for _, m := range got {
		bodies[string(m.Body)] = m
	}
	m := bodies["sync"]
	if m == nil || m.MsgID != r.MsgID || m.Tags != "T1" || len(m.Keys) != 2 || m.Properties["color"] != "red" || m.Topic != "modes" {
		t.Fatalf("sync message decoded as %+v", m)
	}
	for i, br := range rs {
		bm := bodies[fmt.Sprintf("batch-%d", i)]
		if bm == nil || bm.MsgID != br.MsgID {
			t.Fatalf("batch member %d: want UNIQ_KEY %s, got %+v", i, br.MsgID, bm)
		}
	}
}

func TestProducerAutoBatching(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("auto", 2)
	p := newTestProducer(t, c.endpoint(), WithLinger(20*time.Millisecond), WithBatchSize(50))
	ctx := ctxT(t)
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := p.Send(ctx, &Message{Topic: "auto", Body: []byte(fmt.Sprint("m", i))}); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := p.Stats()
	if s.Messages != n || s.Requests >= n/4 {
		t.Fatalf("stats %+v: want %d messages in far fewer requests", s, n)
	}
	t.Logf("%d messages in %d requests", s.Messages, s.Requests)
	waitFor(t, 10*time.Second, "stored", func() bool { return len(drainAll(t, c.endpoint(), "auto")) == n })
}

func TestProducerBufferBackPressure(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("bp", 1)
	// A long linger keeps the first message buffered; the buffer holds only
	// one message of this size, so the second waits for room.
	p := newTestProducer(t, c.endpoint(), WithLinger(time.Minute), WithMaxMessageSize(4096), WithMaxBufferedBytes(6000))
	ctx := ctxT(t)
	body := make([]byte, 4000)
	first := p.SendFuture(ctx, &Message{Topic: "bp", Body: body})
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := p.Send(short, &Message{Topic: "bp", Body: body})
	if !errors.Is(err, ErrBufferFull) {
		t.Fatalf("second send with a full buffer: %v, want ErrBufferFull", err)
	}
	select {
	case <-first.Done():
		t.Fatal("first message sent before its linger time")
	default:
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestProducerHashSelectorOrder(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("ordered", 4)
	p := newTestProducer(t, c.endpoint(), WithQueueSelector(HashSelector()))
	ctx := ctxT(t)
	keys := []string{"order-1", "order-2", "order-3", "order-4", "order-5"}
	queueOf := map[string]MessageQueue{}
	for i := 0; i < 10; i++ {
		for _, k := range keys {
			r, err := p.Send(ctx, &Message{Topic: "ordered", Body: []byte(fmt.Sprintf("%s:%d", k, i)), ShardingKey: k})
			if err != nil {
				t.Fatal(err)
			}
			if q, ok := queueOf[k]; ok && q != r.Queue {
				t.Fatalf("key %s went to %v and %v", k, q, r.Queue)
			}
			queueOf[k] = r.Queue
		}
	}
	var got []*MessageExt
	waitFor(t, 10*time.Second, "all 50 messages readable", func() bool {
		got = drainAll(t, c.endpoint(), "ordered")
		return len(got) == 50
	})
	seq := map[string][]string{}
	sort.SliceStable(got, func(i, j int) bool { return got[i].QueueOffset < got[j].QueueOffset })
	for _, m := range got {
		seq[m.ShardingKey] = append(seq[m.ShardingKey], string(m.Body))
	}
	for _, k := range keys {
		for i, b := range seq[k] {
			if b != fmt.Sprintf("%s:%d", k, i) {
				t.Fatalf("key %s out of order: %v", k, seq[k])
			}
		}
	}
}

func TestProducerNonRetriableNotRetried(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.createTopic("big", 2)
	p := newTestProducer(t, c.endpoint(), WithMaxMessageSize(4<<20), WithRetries(3))
	ctx := ctxT(t)
	_, err := p.Send(ctx, &Message{Topic: "big", Body: make([]byte, 1<<20+100<<10)}) // broker limit is 1 MiB
	var se *ServerError
	if !errors.As(err, &se) || se.Code != protocol.RespMessageIllegal || se.Retriable() {
		t.Fatalf("oversized send: %v", err)
	}
	if s := p.Stats(); s.Requests != 1 || s.Retries != 0 {
		t.Fatalf("stats %+v: a non-retriable error must not be retried", s)
	}
	// Client-side limit: not even sent.
	_, err = p.Send(ctx, &Message{Topic: "big", Body: make([]byte, 5<<20)})
	if !errors.Is(err, ErrMessageTooLarge) || p.Stats().Requests != 1 {
		t.Fatalf("client-side limit: %v, stats %+v", err, p.Stats())
	}
}

func TestProducerRetriesOnAnotherBroker(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.createTopic("retry-me", 2)
	first := SelectorFunc(func(_ *Message, qs []MessageQueue) MessageQueue { return qs[0] })
	p := newTestProducer(t, c.endpoint(), WithQueueSelector(first))
	ctx := ctxT(t)
	r, err := p.Send(ctx, &Message{Topic: "retry-me", Body: []byte("warm")})
	if err != nil || r.Queue.BrokerName != "broker-a" {
		t.Fatalf("warm-up send: %+v %v", r, err)
	}
	// broker-a stops accepting sends (SERVICE_NOT_AVAILABLE); the cached
	// route still names it, so the next send tries it first.
	c.brokers[0].Admin().Drain(true)
	r, err = p.Send(ctx, &Message{Topic: "retry-me", Body: []byte("moved")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Queue.BrokerName != "broker-b" {
		t.Fatalf("retry went to %v", r.Queue)
	}
	if s := p.Stats(); s.Retries != 1 || s.Requests != 3 {
		t.Fatalf("stats %+v: want one retry", s)
	}
}

func TestProducerAutoCreateTopic(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.waitRoute(protocol.AutoCreateTopicTemplate, 8)
	p := newTestProducer(t, c.endpoint())
	if _, err := p.Send(ctxT(t), &Message{Topic: "brand-new", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, tc := range []struct {
		ep   string
		opts []ProducerOption
	}{
		{"", nil},
		{"localhost:9876", nil},
		{"127.0.0.1:9876", []ProducerOption{WithLinger(-1)}},
		{"127.0.0.1:9876", []ProducerOption{WithBatchSize(0)}},
		{"127.0.0.1:9876", []ProducerOption{WithRetries(-1)}},
		{"127.0.0.1:9876", []ProducerOption{WithQueueSelector(nil)}},
		{"127.0.0.1:9876", []ProducerOption{WithGroup("bad group")}},
	} {
		if _, err := NewProducer(tc.ep, tc.opts...); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("NewProducer(%q, %d opts): %v", tc.ep, len(tc.opts), err)
		}
	}
	if _, err := NewPushConsumer("127.0.0.1:9876", func(context.Context, []*MessageExt) error { return nil }); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("push consumer without group: %v", err)
	}
	if _, err := NewPushConsumer("127.0.0.1:9876", func(context.Context, []*MessageExt) error { return nil },
		WithGroup("g"), WithOrderly(true), WithBroadcast(true)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("orderly broadcast: %v", err)
	}
	// A pull consumer cannot be given the time to start from.
	if _, err := NewPullConsumer("127.0.0.1:9876", WithGroup("g"), WithConsumeFromWhere(ConsumeFromTimestamp)); !errors.Is(err, ErrInvalidOption) ||
		!strings.Contains(err.Error(), "for push consumers") {
		t.Errorf("pull consumer from a timestamp: %v", err)
	}
	p, err := NewProducer("127.0.0.1:9876;127.0.0.1:9877")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.cfg.namesrvAddrs) != 2 {
		t.Fatalf("name servers %v", p.cfg.namesrvAddrs)
	}
	_ = p.Close()
}
