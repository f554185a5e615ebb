package compat

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/ferrymq/ferry/protocol"
)

// TestOfficialClientDedupWindowMasterKill: the official client sends to a
// topic with a dedup window on a group of three replicas while the master
// is killed with SIGKILL three times. After an error the application sends
// the same message again (the client keeps the UNIQ_KEY it set) through a
// new producer, which reads the route at once and reaches the new master.
// A message the old master stored and replicated without answering is
// answered by the new master with the original result instead of being
// stored again: every message is stored exactly once.
func TestOfficialClientDedupWindowMasterKill(t *testing.T) {
	const topic, queues, kills = "dedup-failover", 4, 3
	g := startReplGroup(t, 3, "--acks", "all")
	m := g.master(startTimeout, 3)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post("http://"+g.replicas[m].HTTP+"/v1/topics", "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":%q,"read_queues":%d,"write_queues":%d,"dedup_window":"10m"}`, topic, queues, queues)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create topic: status %d", resp.StatusCode)
	}
	waitRoute(t, g.NameSrv, topic, 1)

	var mu sync.Mutex
	var acked []string
	resent := 0
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var p rocketmq.Producer
		defer func() {
			if p != nil {
				_ = p.Shutdown()
			}
		}()
		for i := 0; ; i++ {
			msg := primitive.NewMessage(topic, []byte(fmt.Sprintf("k%06d", i)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if p == nil {
					p = startDedupProducer(g.NameSrv)
				}
				if p != nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					res, err := p.SendSync(ctx, msg)
					cancel()
					if err == nil && res.Status == primitive.SendOK {
						break
					}
					_ = p.Shutdown() // the next one reads the route at once
					p = nil
				}
				mu.Lock()
				resent++
				mu.Unlock()
				select { // the application's pause before it sends again
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			mu.Lock()
			acked = append(acked, string(msg.Body))
			mu.Unlock()
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

	for k := 1; k <= kills; k++ {
		target := ackedN() + 50
		waitFor(t, startTimeout, func() bool { return ackedN() >= target }, "%d acknowledged sends before kill %d", target, k)
		g.kill9(m)
		start := time.Now()
		nm := g.master(startTimeout, 2)
		t.Logf("kill %d: replica %d killed, replica %d master after %v", k, m, nm, time.Since(start))
		g.start(m)
		g.master(startTimeout, 3)
		m = nm
	}
	target := ackedN() + 50
	waitFor(t, startTimeout, func() bool { return ackedN() >= target }, "%d acknowledged sends after the last kill", target)
	close(stop)
	<-done

	mu.Lock()
	defer mu.Unlock()
	// Acknowledged means committed; the queues show it once dispatched.
	var count map[string]int
	waitFor(t, receiveTimeout, func() bool {
		count = readAllQueues(t, g.replicas[m].HTTP, topic, queues)
		for _, body := range acked {
			if count[body] == 0 {
				return false
			}
		}
		return true
	}, "every acknowledged message readable")
	for body, n := range count {
		if n != 1 {
			t.Errorf("%s stored %d times", body, n)
		}
	}
	for _, body := range acked {
		if count[body] != 1 {
			t.Errorf("acknowledged %s stored %d times", body, count[body])
		}
	}
	if resent == 0 {
		t.Error("no message was sent again: the kills did not interrupt a send")
	}
	t.Logf("%d acknowledged, %d stored, %d sends repeated", len(acked), len(count), resent)
}

// startDedupProducer starts an official producer without retries of its
// own (the application repeats the send); nil when it cannot start.
func startDedupProducer(nameSrv string) rocketmq.Producer {
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{nameSrv}), producer.WithGroupName(unique("dedup-pg")),
		producer.WithInstanceName(unique("p")), producer.WithRetry(0), producer.WithSendMsgTimeout(3*time.Second))
	if err != nil {
		return nil
	}
	if err := p.Start(); err != nil {
		return nil
	}
	return p
}

// readAllQueues counts how often each body is in topic's queues, read
// from the replica whose HTTP API is at httpAddr.
func readAllQueues(t *testing.T, httpAddr, topic string, queues int) map[string]int {
	t.Helper()
	count := map[string]int{}
	for q := range queues {
		for off := int64(0); ; {
			var read protocol.HTTPQueueRead
			url := fmt.Sprintf("http://%s/v1/topics/%s/queues/%d/messages?offset=%d&max=500", httpAddr, topic, q, off)
			if err := getJSON(url, &read); err != nil {
				t.Fatal(err)
			}
			if len(read.Messages) == 0 {
				break
			}
			for _, m := range read.Messages {
				count[m.Body]++
			}
			off = read.NextOffset
		}
	}
	return count
}
