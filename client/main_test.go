package client

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/httpapi"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/namesrv"
	"github.com/ferrymq/ferry/remoting"
)

// TestMain checks that no goroutine outlives the test run: every client
// is closed by its test. The fasthttp server (the broker's HTTP side, not
// the SDK) parks a worker-pool janitor for a while after shutdown and
// keeps a process-wide date updater.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// cluster is a name server and brokers started in-process on 127.0.0.1.
type cluster struct {
	t       testing.TB
	ns      *namesrv.Server
	brokers []*broker.Broker
}

// endpoint is the name server endpoint of the remoting transport.
func (c *cluster) endpoint() string { return c.ns.Addr() }

// httpEndpoint is broker i's HTTP API.
func (c *cluster) httpEndpoint(i int) string { return "http://" + c.brokers[i].HTTPAddr() }

// shortDelays makes every delay level 20 ms, so retries come back at once.
var shortDelays = strings.TrimSpace(strings.Repeat("20ms ", 18))

func newCluster(t testing.TB, n int, mut func(i int, cfg *broker.Config)) *cluster {
	t.Helper()
	ns, err := namesrv.New(namesrv.Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Shutdown(context.Background()) })
	c := &cluster{t: t, ns: ns}
	for i := 0; i < n; i++ {
		cfg := broker.DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.BrokerName = fmt.Sprintf("broker-%c", 'a'+i)
		cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
		cfg.HTTPHost, cfg.HTTPPort = "127.0.0.1", 0
		cfg.SegmentSize = 16 << 20
		cfg.MaxMessageSize = 1 << 20
		cfg.NamesrvAddrs = []string{ns.Addr()}
		cfg.DelayLevels = shortDelays
		if mut != nil {
			mut(i, &cfg)
		}
		b, err := broker.New(cfg, broker.WithHTTP(httpapi.Mount()))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
		c.brokers = append(c.brokers, b)
	}
	return c
}

// createTopic creates topic with queues queues on every broker and waits
// until the name server routes it to all of them.
func (c *cluster) createTopic(topic string, queues int) {
	c.t.Helper()
	for _, b := range c.brokers {
		if err := b.Admin().CreateTopic(broker.TopicConfig{TopicName: topic, ReadQueueNums: int32(queues), WriteQueueNums: int32(queues)}); err != nil {
			c.t.Fatal(err)
		}
	}
	c.waitRoute(topic, len(c.brokers)*queues)
}

// waitRoute waits until the name server lists n readable queues of topic.
func (c *cluster) waitRoute(topic string, n int) {
	c.t.Helper()
	cfg := &config{namesrvAddrs: []string{c.ns.Addr()}, logger: nopLogger{}}
	rc := remoting.NewClient(remoting.ClientConfig{})
	defer rc.Close()
	rt := newRouteTable(cfg, rc)
	waitFor(c.t, 10*time.Second, "route of "+topic, func() bool {
		r, err := rt.fetch(context.Background(), topic)
		return err == nil && len(r.subscribe) == n && len(r.publish) == n
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(context.Background(), timeout, 5*time.Millisecond, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newTestProducer(t testing.TB, endpoint string, opts ...ProducerOption) *Producer {
	t.Helper()
	p, err := NewProducer(endpoint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// drainAll pulls every message of topic from offset 0 on all queues. It
// reads what is dispatched now: callers wait for the count they expect.
func drainAll(t *testing.T, endpoint, topic string) []*MessageExt {
	t.Helper()
	pc, err := NewPullConsumer(endpoint, WithGroup("drain"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx := ctxT(t)
	qs, err := pc.Queues(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*MessageExt
	for _, q := range qs {
		off := int64(0)
		for {
			r, err := pc.Pull(ctx, q, off, 64)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Messages...)
			if len(r.Messages) == 0 {
				break
			}
			off = r.NextOffset
		}
	}
	return out
}
