package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Exactly-once producing across master failovers: a group of three
// replicas whose master is killed with kill -9 again and again while
// messages are sent with retries. The idempotent producers' state and the
// dedup keys are replicated with the log, so a retry that reaches the new
// master is answered with the original result instead of being stored
// again.

// failoverQueues is the number of queues of the tests' topics.
const failoverQueues = 4

// sendThroughFailovers calls send(i, stop) for i = 0, 1, … in a
// goroutine while it kills the master rounds times: each round waits for
// more acknowledged sends, kills the master, waits for a new one and
// restarts the killed replica, which rejoins as a slave, until every
// replica is in sync again. send returns the body it had acknowledged,
// or false when it was not (or stop closed). It returns every body
// acknowledged.
func (g *faultGroup) sendThroughFailovers(rounds int, send func(i int, stop <-chan struct{}) (string, bool)) map[string]bool {
	g.t.Helper()
	var mu sync.Mutex
	acked := map[string]bool{}
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if body, ok := send(i, stop); ok {
				mu.Lock()
				acked[body] = true
				mu.Unlock()
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	more := func(what string) {
		g.t.Helper()
		target := ackedN() + 40
		waitFor(g.t, 30*time.Second, fmt.Sprintf("%d acknowledged sends %s", target, what), func() bool { return ackedN() >= target })
	}
	m := g.master(30*time.Second, 3)
	for i := range rounds {
		more(fmt.Sprintf("before kill %d", i+1))
		g.kill(m)
		start := time.Now()
		nm := g.master(20*time.Second, 0, g.others(m)...)
		g.t.Logf("kill %d: replica %d killed, replica %d master after %v", i+1, m, nm, time.Since(start))
		g.start(m)
		g.inSync(nm, 3, 30*time.Second)
		m = nm
	}
	more("after the last kill")
	close(stop)
	<-done
	return acked
}

// createQueues creates topic with failoverQueues queues (and the extra
// settings) on master m.
func (g *faultGroup) createQueues(m int64, topic string, extra map[string]any) {
	body := map[string]any{"name": topic, "read_queues": failoverQueues, "write_queues": failoverQueues}
	for k, v := range extra {
		body[k] = v
	}
	g.reps[m].srv.call(g.t, "POST", "/v1/topics", body, 201, nil)
}

// readQueues returns the bodies of every queue of topic on the master, by
// queue, in queue order.
func (g *faultGroup) readQueues(topic string) [][]string {
	g.t.Helper()
	pc, err := client.NewPullConsumer(g.ns.namesrv, client.WithGroup("failover-check"))
	if err != nil {
		g.t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	qs, err := pc.Queues(ctx, topic)
	if err != nil {
		g.t.Fatal(err)
	}
	out := make([][]string, failoverQueues)
	for _, q := range qs {
		for off := int64(0); ; {
			r, err := pc.Pull(ctx, q, off, 256)
			if err != nil {
				g.t.Fatal(err)
			}
			if len(r.Messages) == 0 {
				break
			}
			for _, m := range r.Messages {
				out[q.QueueID] = append(out[q.QueueID], string(m.Body))
			}
			off = r.NextOffset
		}
	}
	return out
}

// checkExactlyOnce reads topic's queues once every acknowledged body is
// readable (acknowledged means committed; the queues show it once
// dispatched) and fails the test unless every acknowledged body is
// stored once, no body is stored twice, and each queue holds its bodies
// in send order (bodies are <prefix><6-digit n>).
func (g *faultGroup) checkExactlyOnce(topic string, acked map[string]bool, prefix int) {
	t := g.t
	t.Helper()
	var queues [][]string
	readable := func() bool {
		queues = g.readQueues(topic)
		n := 0
		for _, bodies := range queues {
			for _, b := range bodies {
				if acked[b] {
					n++
				}
			}
		}
		return n >= len(acked)
	}
	waitFor(t, 30*time.Second, "every acknowledged message readable", readable)
	seen := map[string]int{}
	for q, bodies := range queues {
		prev := -1
		for _, b := range bodies {
			seen[b]++
			n, err := strconv.Atoi(b[prefix:])
			if err != nil {
				t.Fatalf("queue %d holds %q", q, b)
			}
			if n <= prev {
				t.Errorf("queue %d: %s after %d", q, b, prev)
			}
			prev = n
		}
	}
	for b, n := range seen {
		if n > 1 {
			t.Errorf("%s stored %d times", b, n)
		}
	}
	for b := range acked {
		if seen[b] != 1 {
			t.Errorf("acknowledged %s stored %d times", b, seen[b])
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), len(seen))
}

// TestIdempotentProducerMasterFailover: an idempotent producer sends
// continuously, with retries, while the master of its group is killed
// with kill -9 three times: every send is acknowledged (its retries reach
// the new master of the same group, which knows the sequences), and the
// stream holds every acknowledged message exactly once, in send order per
// queue.
func TestIdempotentProducerMasterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startFaultGroup(t, "replica_lag_max = \"2s\"\n")
	m := g.master(30*time.Second, 3)
	const topic = "eos-failover"
	g.createQueues(m, topic, nil)
	p, err := client.NewProducer(g.ns.namesrv, client.WithIdempotence("failover-app"), client.WithRetries(16),
		client.WithSendTimeout(2*time.Second), client.WithQueueSelector(client.HashSelector()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	acked := g.sendThroughFailovers(3, func(i int, _ <-chan struct{}) (string, bool) {
		body := fmt.Sprintf("i%06d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		if _, err := p.Send(ctx, &client.Message{Topic: topic, Body: []byte(body), ShardingKey: strconv.Itoa(i % failoverQueues)}); err != nil {
			// Retries outlast a failover: the new master takes them.
			t.Errorf("%s not acknowledged: %v", body, err)
			return "", false
		}
		return body, true
	})
	g.checkExactlyOnce(topic, acked, 1)
}

// TestDedupWindowMasterFailover: a producer without sequences sends
// messages with fixed UNIQ_KEYs to a topic with a dedup window, and
// re-sends a message with the same key to whichever replica is master
// after any error, while the master is killed with kill -9 three times:
// every message is stored once, in send order per queue.
func TestDedupWindowMasterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startFaultGroup(t, "replica_lag_max = \"2s\"\n")
	m := g.master(30*time.Second, 3)
	const topic = "dedup-failover"
	g.createQueues(m, topic, map[string]any{"dedup_window": "10m"})

	target := g.reps[m].brokerAddr
	acked := g.sendThroughFailovers(3, func(i int, stop <-chan struct{}) (string, bool) {
		body := fmt.Sprintf("d%06d", i)
		// Re-sent until acknowledged: after an error, to the replica that
		// says it is the writable master.
		for {
			code, _, err := dedupSend(g.rc, target, topic, i%failoverQueues, body, "K-"+body)
			if err == nil && code == protocol.RespSuccess {
				return body, true
			}
			select { // a pause between re-sends, as a client's backoff
			case <-stop:
				return "", false
			case <-time.After(50 * time.Millisecond):
			}
			for _, id := range []int64{1, 2, 3} {
				if ri, ok := g.status(id); ok && ri.Replication.Role == "master" && ri.Writable {
					target = g.reps[id].brokerAddr
					break
				}
			}
		}
	})
	g.checkExactlyOnce(topic, acked, 1)
}

// dedupSend sends body with UNIQ_KEY key to queue of topic at addr.
func dedupSend(rc *remoting.Client, addr, topic string, queue int, body, key string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := rc.Invoke(ctx, addr, remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
		"producerGroup": "dedup-pg", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
		"queueId": strconv.Itoa(queue), "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag": "0", "properties": string(protocol.EncodeProperties(map[string]string{protocol.PropUniqKey: key})),
		"reconsumeTimes": "0", "unitMode": "false", "batch": "false",
	}, []byte(body)))
	if err != nil {
		return 0, "", err
	}
	return int(resp.Code), resp.Remark, nil
}
