package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// skipWithoutRoute skips when the broker does not serve the HTTP API route
// (404 with no problem type of ours).
func skipWithoutRoute(t *testing.T, err error) {
	t.Helper()
	var se *ServerError
	if errors.As(err, &se) && se.Status == http.StatusNotFound && se.Code == 0 {
		t.Skipf("HTTP API route missing on this broker: %v", err)
	}
}

func TestHTTPProducerAndPullConsumer(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("web", 2)
	ep := c.httpEndpoint(0)
	p := newTestProducer(t, ep, WithQueueSelector(HashSelector()))
	ctx := ctxT(t)
	r, err := p.Send(ctx, &Message{Topic: "web", Body: []byte("hello"), Tags: "T", Keys: []string{"k"},
		Properties: map[string]string{"a": "b"}, ShardingKey: "s1"})
	skipWithoutRoute(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.MsgID) != 32 || r.QueueOffset != 0 {
		t.Fatalf("result %+v", r)
	}
	rs, err := p.SendBatch(ctx, []*Message{
		{Topic: "web", Body: []byte{0xff, 0x00, 0x01}, ShardingKey: "s1"}, // not UTF-8: sent as base64
		{Topic: "web", Body: []byte("two"), ShardingKey: "s1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Queue.QueueID != r.Queue.QueueID || rs[1].QueueOffset != 2 {
		t.Fatalf("batch %+v after %+v", rs, r)
	}
	done := make(chan error, 1)
	p.SendAsync(ctx, &Message{Topic: "web", Body: []byte("async"), ShardingKey: "s1"}, func(_ SendResult, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	pc, err := NewPullConsumer(ep, WithGroup("g-web"), WithConsumeFromWhere(ConsumeFromFirstOffset))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	qs, err := pc.Queues(ctx, "web")
	if err != nil || len(qs) != 2 {
		t.Fatalf("queues %v %v", qs, err)
	}
	pc.Assign(qs)
	var got []*MessageExt
	waitFor(t, 10*time.Second, "4 messages polled", func() bool {
		ms, err := pc.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ms...)
		return len(got) >= 4
	})
	if string(got[0].Body) != "hello" || got[0].MsgID != r.MsgID || got[0].Tags != "T" || got[0].Properties["a"] != "b" ||
		len(got[0].Keys) != 1 || got[0].ShardingKey != "s1" {
		t.Fatalf("first message %+v", got[0])
	}
	if string(got[1].Body) != "\xff\x00\x01" {
		t.Fatalf("binary body %q", got[1].Body)
	}
	if err := pc.Commit(ctx); err != nil {
		t.Fatalf("commit over HTTP: %v", err)
	}
	for _, mq := range qs {
		pos, _ := pc.Position(mq)
		off, err := pc.CommittedOffset(ctx, mq)
		if err != nil || off != pos {
			t.Fatalf("committed offset of %v: %d (%v), position %d", mq, off, err, pos)
		}
	}
}

func TestHTTPPushConsumerRetry(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("web-push", 2)
	ep := c.httpEndpoint(0)
	p := newTestProducer(t, ep)
	if _, err := p.Send(ctxT(t), &Message{Topic: "web-push", Body: []byte("probe")}); err != nil {
		skipWithoutRoute(t, err)
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string][]int{}
	h := func(ctx context.Context, msgs []*MessageExt) error {
		mu.Lock()
		defer mu.Unlock()
		m := msgs[0]
		seen[string(m.Body)] = append(seen[string(m.Body)], m.ReconsumeTimes)
		if string(m.Body) == "fail-once" && m.ReconsumeTimes == 0 {
			return fmt.Errorf("later")
		}
		return nil
	}
	cons, err := NewPushConsumer(ep, h, WithGroup("g-web-push"), WithConsumeFromWhere(ConsumeFromFirstOffset),
		WithLongPollTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Subscribe("web-push", "*"); err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(ctxT(t)); err != nil {
		skipWithoutRoute(t, err)
		t.Fatal(err)
	}
	defer cons.Close()
	for i := 0; i < 5; i++ {
		if _, err := p.Send(ctxT(t), &Message{Topic: "web-push", Body: []byte(fmt.Sprint("m", i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Send(ctxT(t), &Message{Topic: "web-push", Body: []byte("fail-once")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "all consumed, the failed one again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < 5; i++ {
			if len(seen[fmt.Sprint("m", i)]) == 0 {
				return false
			}
		}
		return len(seen["fail-once"]) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if r := seen["fail-once"]; r[0] != 0 || r[1] != 1 {
		t.Fatalf("reconsume times of the failed message: %v", r)
	}
}

func TestHTTPOrderlyRefused(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("web-o", 1)
	cons, err := NewPushConsumer(c.httpEndpoint(0), func(context.Context, []*MessageExt) error { return nil },
		WithGroup("g"), WithOrderly(true))
	if err != nil {
		t.Fatal(err)
	}
	_ = cons.Subscribe("web-o", "*")
	if err := cons.Start(ctxT(t)); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("orderly over HTTP: %v", err)
	}
	_ = cons.Close()
}
