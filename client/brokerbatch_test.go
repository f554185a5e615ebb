package client

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type asyncOutcome struct {
	res SendResult
	err error
}

// sendAllAsync sends msgs with SendAsync, in order, and waits for every
// answer.
func sendAllAsync(t *testing.T, p *Producer, msgs []*Message) []asyncOutcome {
	t.Helper()
	ctx := ctxT(t)
	out := make([]asyncOutcome, len(msgs))
	var wg sync.WaitGroup
	wg.Add(len(msgs))
	for i, m := range msgs {
		p.SendAsync(ctx, m, func(r SendResult, err error) {
			out[i] = asyncOutcome{r, err}
			wg.Done()
		})
	}
	wg.Wait()
	return out
}

// TestBrokerBatchOrderPerQueue: messages to many queues of many topics, sent
// with SendAsync as fast as possible, are stored in each queue in the order
// they were sent, in fewer requests than messages.
func TestBrokerBatchOrderPerQueue(t *testing.T) {
	c := newCluster(t, 1, nil)
	for i := range 3 {
		c.createTopic(fmt.Sprint("order-", i), 4)
	}
	p := newTestProducer(t, c.endpoint(), WithQueueSelector(HashSelector()))
	var msgs []*Message
	for i := range 600 {
		msgs = append(msgs, &Message{Topic: fmt.Sprint("order-", i%3), Keys: []string{fmt.Sprint("k", i%7)}, Body: []byte(fmt.Sprint(i))})
	}
	out := sendAllAsync(t, p, msgs)
	last := map[MessageQueue]int64{}
	for i, o := range out {
		if o.err != nil {
			t.Fatalf("message %d: %v", i, o.err)
		}
		if prev, ok := last[o.res.Queue]; ok && o.res.QueueOffset <= prev {
			t.Fatalf("message %d stored at %v offset %d after offset %d", i, o.res.Queue, o.res.QueueOffset, prev)
		}
		last[o.res.Queue] = o.res.QueueOffset
	}
	if s := p.Stats(); s.Messages != 600 || s.Requests >= 600 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("%+v", p.Stats())
}

// TestBrokerBatchManyTopicsOneRequest: messages of 64 topics on one broker
// travel in one request.
func TestBrokerBatchManyTopicsOneRequest(t *testing.T) {
	c := newCluster(t, 1, nil)
	p := newTestProducer(t, c.endpoint(), WithLinger(time.Minute), WithBatchSize(64))
	var msgs []*Message
	for i := range 64 {
		msgs = append(msgs, &Message{Topic: fmt.Sprint("many-", i), Body: []byte("x")})
	}
	// Warm the routes first, so that the count below is of sends only.
	for _, m := range msgs {
		if _, err := p.tr.queues(ctxT(t), m.Topic); err != nil {
			t.Fatal(err)
		}
	}
	for i, o := range sendAllAsync(t, p, msgs) {
		if o.err != nil || o.res.Queue.Topic != msgs[i].Topic || o.res.OffsetMsgID == "" {
			t.Fatalf("message %d: %+v %v", i, o.res, o.err)
		}
	}
	if s := p.Stats(); s.Requests != 1 || s.Messages != 64 {
		t.Fatalf("stats %+v: want 64 messages in one request", s)
	}
}

// TestBrokerBatchLingerBound: a lone message waits for the linger time,
// and not much longer.
func TestBrokerBatchLingerBound(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("linger", 1)
	const linger = 100 * time.Millisecond
	p := newTestProducer(t, c.endpoint(), WithLinger(linger))
	if _, err := p.tr.queues(ctxT(t), "linger"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := sendAllAsync(t, p, []*Message{{Topic: "linger", Body: []byte("x")}})
	took := time.Since(start)
	if out[0].err != nil {
		t.Fatal(out[0].err)
	}
	if took < linger || took > linger+5*time.Second {
		t.Fatalf("answered after %v, linger %v", took, linger)
	}
}

// TestBrokerBatchFailFast: with WithFailWhenBufferFull a SendAsync that
// finds the buffer full fails at once, and the message already buffered
// still goes out.
func TestBrokerBatchFailFast(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("ff", 1)
	p := newTestProducer(t, c.endpoint(), WithLinger(time.Minute), WithMaxMessageSize(4096),
		WithMaxBufferedBytes(6000), WithFailWhenBufferFull(true))
	ctx := ctxT(t)
	body := make([]byte, 4000)
	first := p.SendFuture(ctx, &Message{Topic: "ff", Body: body})
	second := p.SendFuture(ctx, &Message{Topic: "ff", Body: body})
	select {
	case <-second.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SendAsync on a full buffer waited")
	}
	if _, err := second.Get(ctx); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("second: %v, want ErrBufferFull", err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBrokerBatchFailedRequest: a request that fails fails exactly its own
// messages; those batched for another broker are stored.
func TestBrokerBatchFailedRequest(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.createTopic("split", 2)
	p := newTestProducer(t, c.endpoint(), WithRetries(0))
	if _, err := p.tr.queues(ctxT(t), "split"); err != nil {
		t.Fatal(err)
	}
	c.brokers[0].Admin().Drain(true)
	var msgs []*Message
	for range 40 {
		msgs = append(msgs, &Message{Topic: "split", Body: []byte("x")})
	}
	out := sendAllAsync(t, p, msgs)
	failed := 0
	for i, o := range out {
		var se *ServerError
		switch {
		case o.err == nil && o.res.Queue.BrokerName == "broker-b":
		case errors.As(o.err, &se):
			failed++
		default:
			t.Fatalf("message %d: %+v %v", i, o.res, o.err)
		}
	}
	if s := p.Stats(); failed != 20 || s.Failures != 20 || s.Messages != 20 {
		t.Fatalf("%d failed, stats %+v: want the 20 messages of broker-a failed", failed, s)
	}
}

// TestBrokerBatchRetriesOnAnotherBroker: the messages of a request that
// fails retriably move to a queue of another broker of their topic.
func TestBrokerBatchRetriesOnAnotherBroker(t *testing.T) {
	c := newCluster(t, 2, nil)
	c.createTopic("moves", 2)
	p := newTestProducer(t, c.endpoint())
	if _, err := p.tr.queues(ctxT(t), "moves"); err != nil {
		t.Fatal(err)
	}
	c.brokers[0].Admin().Drain(true)
	var msgs []*Message
	for range 40 {
		msgs = append(msgs, &Message{Topic: "moves", Body: []byte("x")})
	}
	for i, o := range sendAllAsync(t, p, msgs) {
		if o.err != nil || o.res.Queue.BrokerName != "broker-b" {
			t.Fatalf("message %d: %+v %v", i, o.res, o.err)
		}
	}
	if s := p.Stats(); s.Messages != 40 || s.Retries == 0 || s.Failures != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// BenchmarkProducerSendAsync: 1 KiB messages sent per message with
// SendAsync, 256 unanswered at a time, to one broker in this process (the
// broker's cost is in the figure), over 1 and 64 topics.
func BenchmarkProducerSendAsync(b *testing.B) {
	for _, topics := range []int{1, 64} {
		b.Run(fmt.Sprint("topics=", topics), func(b *testing.B) {
			c := newCluster(b, 1, nil)
			names := make([]string, topics)
			for i := range names {
				names[i] = fmt.Sprintf("bench-%d", i)
				c.createTopic(names[i], 8)
			}
			p := newTestProducer(b, c.endpoint())
			ctx := ctxT(b)
			window := make(chan struct{}, 256)
			var failed atomic.Int64
			body := make([]byte, 1024)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				window <- struct{}{}
				p.SendAsync(ctx, &Message{Topic: names[i%topics], Body: body}, func(_ SendResult, err error) {
					if err != nil {
						failed.Add(1)
					}
					<-window
				})
				i++
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d sends failed", n)
			}
		})
	}
}
