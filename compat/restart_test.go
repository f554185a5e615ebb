package compat

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// redeliveryTolerance is how many already-consumed messages a restarted
// consumer may see again. Delivery is at least once, and the client has
// an offset-store quirk that can hold a commit back; anything beyond a
// couple means offsets were lost.
const redeliveryTolerance = 2

// TestOffsetsSurviveRestarts consumes with a group, restarts the consumer
// and then the broker, and checks each time that the group resumes where
// it stopped: nothing lost, (almost) nothing redelivered.
func TestOffsetsSurviveRestarts(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, group, queues, n = "Offsets", "cg-offsets", 4, 40
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, queues)
	cl := newRemotingClient(t)
	committed := func() int64 {
		var sum int64
		for q := range queues {
			if off := queryOffset(t, cl, s.Broker, group, topic, q); off > 0 {
				sum += off
			}
		}
		return sum
	}

	// phase runs one consumer of the group until it has every message of
	// want, shuts it down, and returns how many earlier messages it saw.
	var consumed []string
	phase := func(name string, want []string) {
		t.Helper()
		rec := &recorder{}
		c := startPushConsumer(t, s.NameSrv, group, topic, "*", rec.handle)
		waitFor(t, receiveTimeout, func() bool { return rec.hasAll(want) }, "%s: missing %v", name, rec.missing(want))
		c.stop()
		got := rec.bodies()
		redelivered := 0
		for _, b := range consumed {
			redelivered += got[b]
		}
		if redelivered > redeliveryTolerance {
			t.Errorf("%s: %d messages consumed before were delivered again (tolerance %d)", name, redelivered, redeliveryTolerance)
		}
		t.Logf("%s: %d deliveries, %d of them redeliveries", name, rec.count(), redelivered)
		consumed = append(consumed, want...)
		// Shutdown commits the offsets; all of them must have reached the
		// broker.
		waitFor(t, 30*time.Second, func() bool { return committed() == int64(len(consumed)) },
			"%s: committed offsets sum to %d after shutdown, want %d", name, committed(), len(consumed))
	}
	send := func(prefix string) []string {
		p := newProducer(t, s.NameSrv)
		defer p.Shutdown()
		bodies := bodiesOf(prefix, n)
		for _, b := range bodies {
			sendSync(t, p, primitive.NewMessage(topic, []byte(b)))
		}
		return bodies
	}

	phase("first consumer", send("first"))
	phase("consumer restart", send("second"))

	s.restart(t)
	// "broker ready" comes before the first registration with the name
	// server; clients need the route.
	waitRoute(t, s.NameSrv, topic, 1)
	if got := committed(); got != int64(len(consumed)) {
		t.Fatalf("after the broker restart the committed offsets sum to %d, want %d", got, len(consumed))
	}
	phase("broker restart", send("third"))

	// A consumer that stays up while the broker restarts under it picks up
	// where it was: it reconnects, heart-beats again (the consumer registry
	// is not persisted, so this can take one 30 s heartbeat period) and
	// receives what is sent afterwards.
	rec := &recorder{}
	c := startPushConsumer(t, s.NameSrv, group, topic, "*", rec.handle)
	before := send("fourth")
	waitFor(t, receiveTimeout, func() bool { return rec.hasAll(before) }, "running consumer: missing %v", rec.missing(before))
	s.restart(t)
	waitRoute(t, s.NameSrv, topic, 1)
	after := send("fifth")
	waitFor(t, 2*receiveTimeout, func() bool { return rec.hasAll(after) }, "consumer across the restart: missing %v", rec.missing(after))
	c.stop()
	got := rec.bodies()
	redelivered := 0
	for _, b := range append(consumed, before...) {
		redelivered += got[b] - boolInt(slices.Contains(before, b))
	}
	t.Logf("consumer across the restart: %d deliveries, %d of them redeliveries", rec.count(), redelivered)
	if redelivered > redeliveryTolerance {
		t.Errorf("consumer across the restart: %d redeliveries (tolerance %d)", redelivered, redeliveryTolerance)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestKill9SyncFlush kills a --flush sync broker with SIGKILL while
// producers send synchronously (single messages and batches), restarts it
// on the same data directory, and checks that every send that returned
// SendOK can be consumed, at the queue offset it was acknowledged with:
// recovery must neither lose an acknowledged message nor hand its queue
// offset to a later one.
func TestKill9SyncFlush(t *testing.T) {
	t.Parallel()
	s := startServer(t, "sync")
	const topic, cycles, senders, perCycle, batch = "Crash", 3, 3, 40, 5
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 4)

	var (
		mu    sync.Mutex
		acked = map[string]sentAt{} // body → acknowledged position
	)
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for cycle := range cycles {
		p := newProducer(t, s.NameSrv, producer.WithSendMsgTimeout(3*time.Second), producer.WithRetry(0))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		before := ackedCount()
		for g := range senders {
			// The last sender sends batches, the others single messages.
			size := 1
			if g == senders-1 {
				size = batch
			}
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					msgs := make([]*primitive.Message, size)
					for j := range msgs {
						body := fmt.Sprintf("c%d-g%d-%d-%d", cycle, g, i, j)
						msgs[j] = primitive.NewMessage(topic, []byte(body))
						msgs[j].WithKeys([]string{body})
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					res, err := p.SendSync(ctx, msgs...)
					cancel()
					if err != nil || res.Status != primitive.SendOK {
						continue
					}
					mu.Lock()
					for j, m := range msgs {
						acked[string(m.Body)] = sentAt{res.MessageQueue.QueueId, res.QueueOffset + int64(j), ""}
					}
					mu.Unlock()
				}
			})
		}
		waitFor(t, receiveTimeout, func() bool { return ackedCount()-before >= perCycle },
			"cycle %d: only %d sends acknowledged", cycle, ackedCount()-before)
		// Kill while the senders are still sending.
		s.p.kill(t)
		close(stop)
		wg.Wait()
		_ = p.Shutdown()
		t.Logf("cycle %d: %d messages acknowledged before SIGKILL", cycle, ackedCount()-before)
		s.start(t)
		waitRoute(t, s.NameSrv, topic, 1)
	}

	mu.Lock()
	defer mu.Unlock()
	positions := map[[2]int64]string{}
	want := make([]string, 0, len(acked))
	for body, at := range acked {
		want = append(want, body)
		k := [2]int64{int64(at.queue), at.queueOffset}
		if other, dup := positions[k]; dup {
			t.Errorf("%s and %s were both acknowledged at queue %d offset %d", body, other, at.queue, at.queueOffset)
		}
		positions[k] = body
	}
	rec := &recorder{}
	startPushConsumer(t, s.NameSrv, "cg-crash", topic, "*", rec.handle)
	if !poll(receiveTimeout, func() bool { return rec.hasAll(want) }) {
		t.Fatalf("%d of %d acknowledged messages are gone after SIGKILL: %v", len(rec.missing(want)), len(want), rec.missing(want))
	}
	for _, m := range rec.all() {
		if m.GetKeys() != string(m.Body) {
			t.Errorf("message %q has keys %q", m.Body, m.GetKeys())
		}
		if at, ok := acked[string(m.Body)]; ok && (at.queue != m.Queue.QueueId || at.queueOffset != m.QueueOffset) {
			t.Errorf("%s consumed at queue %d offset %d, acknowledged at queue %d offset %d",
				m.Body, m.Queue.QueueId, m.QueueOffset, at.queue, at.queueOffset)
		}
	}
}

// ---------------------------------------------------------------------------
// two brokers

// startNamesrv runs `ferry namesrv` and returns its address.
func startNamesrv(t *testing.T) string {
	t.Helper()
	p := startProc(t, "ferry namesrv", "namesrv", "--namesrv-port", "0", "--host", "127.0.0.1", "--log-format", "json")
	ns := p.waitLog(t, "name server ready", startTimeout)
	return "127.0.0.1:" + fieldString(t, ns, "port")
}

// startBroker runs `ferry broker run` registering with nameSrv and returns its
// advertised address.
func startBroker(t *testing.T, nameSrv, name string) string {
	t.Helper()
	p := startProc(t, "ferry broker "+name, "broker", "run",
		"--namesrv", nameSrv, "--broker-name", name,
		"--data-dir", t.TempDir(),
		"--broker-port", "0", "--http-port", "0",
		"--host", "127.0.0.1", "--advertise-host", "127.0.0.1",
		"--log-format", "json")
	br := p.waitLog(t, "broker ready", startTimeout)
	waitHTTPReady(t, fieldString(t, br, "http"))
	return fieldString(t, br, "addr")
}

// TestTwoBrokers runs a name server and two brokers as separate
// processes: a topic created on both gets sends on both, and one consumer
// receives everything.
func TestTwoBrokers(t *testing.T) {
	t.Parallel()
	ns := startNamesrv(t)
	brokers := map[string]string{} // name → address
	var addrs []string
	for _, name := range []string{"broker-a", "broker-b"} {
		addr := startBroker(t, ns, name)
		brokers[name] = addr
		addrs = append(addrs, addr)
	}
	const topic, n = "TwoBrokers", 60
	createTopic(t, ns, addrs, topic, 4)
	route := waitRoute(t, ns, topic, 2)
	for _, bd := range route.BrokerDatas {
		if brokers[bd.BrokerName] != bd.BrokerAddrs[0] {
			t.Errorf("route names %s at %v, started at %s", bd.BrokerName, bd.BrokerAddrs, brokers[bd.BrokerName])
		}
	}

	p := newProducer(t, ns)
	perBroker := map[string]int{}
	want := bodiesOf("two", n)
	for _, b := range want {
		res := sendSync(t, p, primitive.NewMessage(topic, []byte(b)))
		perBroker[res.MessageQueue.BrokerName]++
		checkOffsetMsgID(t, b, res.OffsetMsgID, brokers[res.MessageQueue.BrokerName])
	}
	if perBroker["broker-a"] == 0 || perBroker["broker-b"] == 0 {
		t.Errorf("sends were not spread over both brokers: %v", perBroker)
	}

	rec := &recorder{}
	startPushConsumer(t, ns, "cg-two", topic, "*", rec.handle)
	waitFor(t, receiveTimeout, func() bool { return rec.hasAll(want) }, "missing %v", rec.missing(want))
	stores := map[string]int{}
	for _, m := range rec.all() {
		stores[m.Queue.BrokerName]++
		if brokers[m.Queue.BrokerName] != m.StoreHost {
			t.Errorf("%s pulled from %s but stored at %s", m.Body, m.Queue.BrokerName, m.StoreHost)
		}
	}
	if stores["broker-a"] != perBroker["broker-a"] || stores["broker-b"] != perBroker["broker-b"] {
		t.Errorf("consumed per broker %v, sent %v", stores, perBroker)
	}
}
