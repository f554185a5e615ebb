package compat

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
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
	createDedupTopicHTTP(t, "http://"+g.replicas[m].HTTP, topic, queues)
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
	_, port, err := net.SplitHostPort(g.replicas[m].HTTP)
	if err != nil {
		t.Fatal(err)
	}
	httpPort, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	var count map[string]int
	waitFor(t, receiveTimeout, func() bool {
		count = readTopicAll(t, httpPort, queues, topic) // dedup_test.go
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

// createDedupTopicHTTP creates topic with queues queues and a dedup
// window of 10 minutes through the HTTP API at base.
func createDedupTopicHTTP(t *testing.T, base, topic string, queues int) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Post(base+"/v1/topics", "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":%q,"read_queues":%d,"write_queues":%d,"dedup_window":"10m"}`, topic, queues, queues)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create topic: status %d", resp.StatusCode)
	}
}
