package compat

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/ferrymq/ferry/remoting"
)

// The official client's producers, consumers and the recorders the tests
// collect deliveries with.

var instanceSeq atomic.Int64

// unique returns a name no other client in this process uses: clients
// that share an instance name share one connection and one clientID.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), instanceSeq.Add(1))
}

func newProducer(t *testing.T, nameSrv string, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	all := append([]producer.Option{
		producer.WithNameServer([]string{nameSrv}),
		producer.WithGroupName(unique("pg")),
		producer.WithInstanceName(unique("p")),
		producer.WithRetry(2),
	}, opts...)
	p, err := rocketmq.NewProducer(all...)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("start producer: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = p.Shutdown() }) })
	return p
}

// recorder is a push consumer's handler that keeps what arrived.
type recorder struct {
	mu   sync.Mutex
	msgs []*primitive.MessageExt
}

func (r *recorder) handle(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msgs...)
	r.mu.Unlock()
	return consumer.ConsumeSuccess, nil
}

func (r *recorder) all() []*primitive.MessageExt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*primitive.MessageExt(nil), r.msgs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// bodies counts deliveries per body.
func (r *recorder) bodies() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]int, len(r.msgs))
	for _, msg := range r.msgs {
		m[string(msg.Body)]++
	}
	return m
}

// hasAll reports whether every body in want has arrived at least once.
func (r *recorder) hasAll(want []string) bool {
	got := r.bodies()
	for _, b := range want {
		if got[b] == 0 {
			return false
		}
	}
	return true
}

// missing lists the bodies of want that have not arrived.
func (r *recorder) missing(want []string) []string {
	got := r.bodies()
	var out []string
	for _, b := range want {
		if got[b] == 0 {
			out = append(out, b)
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("... (%d in all)", len(out)))
	}
	return out
}

// pushConsumer is a started push consumer that can be shut down once,
// by the test or at cleanup.
type pushConsumer struct {
	rocketmq.PushConsumer
	once sync.Once
}

func (c *pushConsumer) stop() { c.once.Do(func() { _ = c.Shutdown() }) }

// startPushConsumer starts a clustering push consumer of group on topic
// that reads from the first offset of new queues.
func startPushConsumer(t *testing.T, nameSrv, group, topic, expr string,
	handler func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error),
	opts ...consumer.Option) *pushConsumer {
	t.Helper()
	all := append([]consumer.Option{
		consumer.WithNameServer([]string{nameSrv}),
		consumer.WithGroupName(group),
		consumer.WithInstance(unique("c")),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}, opts...)
	c, err := rocketmq.NewPushConsumer(all...)
	if err != nil {
		t.Fatalf("new push consumer: %v", err)
	}
	if err := c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: expr}, handler); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("start push consumer: %v", err)
	}
	pc := &pushConsumer{PushConsumer: c}
	t.Cleanup(pc.stop)
	return pc
}

// sendSync sends one message and requires SendOK.
func sendSync(t *testing.T, p rocketmq.Producer, msg *primitive.Message) *primitive.SendResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := p.SendSync(ctx, msg)
	if err != nil {
		t.Fatalf("send %q: %v", msg.Body, err)
	}
	if res.Status != primitive.SendOK {
		t.Fatalf("send %q: status %v", msg.Body, res.Status)
	}
	return res
}

// bodiesOf formats n message bodies prefix-0 … prefix-(n-1).
func bodiesOf(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// newRemotingClient is a raw protocol client (from the main module) for
// checks the official client has no API for.
func newRemotingClient(t *testing.T) *remoting.Client {
	cl := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// startPullConsumer starts a clustering pull consumer of group on topic in
// subscribe mode, reading new queues from their first offset.
func startPullConsumer(t *testing.T, nameSrv, group, topic string, opts ...consumer.Option) rocketmq.PullConsumer {
	t.Helper()
	all := append([]consumer.Option{
		consumer.WithNameServer([]string{nameSrv}),
		consumer.WithGroupName(group),
		consumer.WithInstance(unique("pull")),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}, opts...)
	c, err := rocketmq.NewPullConsumer(all...)
	if err != nil {
		t.Fatalf("new pull consumer: %v", err)
	}
	if err := c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("start pull consumer: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = c.Shutdown() }) })
	return c
}
