package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// lossyTCP forwards connections from listen to target; each chunk read
// from either side is, with probability 1/every, dropped and both
// connections reset.
type lossyTCP struct {
	ln     net.Listener
	target string
	every  int
	resets atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func newLossyTCP(t *testing.T, listen, target string, every int) *lossyTCP {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyTCP{ln: ln, target: target, every: every, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, time.Second)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns[in], p.conns[out] = true, true
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *lossyTCP) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *lossyTCP) pipe(from, to net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, from)
		delete(p.conns, to)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if rand.IntN(p.every) == 0 {
				p.resets.Add(1)
				resetConn(from)
				resetConn(to)
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				from.Close()
				return
			}
		}
		if err != nil {
			to.Close()
			return
		}
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDedupWindowChaosWithOfficialClient: the official client sends with
// retries through a proxy that loses requests and responses and resets
// connections at random, to a topic with a dedup window, while the broker
// is killed with kill -9 and restarted twice and the producer is replaced
// once: every acknowledged message is stored exactly once (its retries
// keep its UNIQ_KEY), in send order per queue.
func TestDedupWindowChaosWithOfficialClient(t *testing.T) {
	brokerPort := freeTCPPort(t)
	s := &server{name: "ferry server", dataDir: t.TempDir(), flush: "async", brokerPort: brokerPort, advertise: "127.0.0.2"}
	s.start(t)
	proxy := newLossyTCP(t, "127.0.0.2:"+strconv.Itoa(brokerPort), "127.0.0.1:"+strconv.Itoa(brokerPort), 40)
	const topic, queues = "DedupChaos", 4
	hc := &http.Client{Timeout: 10 * time.Second}
	createDedupTopicHTTP(t, fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), topic, queues) // dedup_failover_test.go
	waitRoute(t, s.NameSrv, topic, 1)

	group := unique("chaos")
	newP := func() rocketmq.Producer {
		return newProducer(t, s.NameSrv, producer.WithGroupName(group), producer.WithRetry(16),
			producer.WithSendMsgTimeout(time.Second))
	}
	var acked []string
	i := 0
	send := func(p rocketmq.Producer, n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for target := len(acked) + n; len(acked) < target; i++ {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d sends acknowledged in 2 minutes", len(acked), target)
			}
			body := fmt.Sprintf("c%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			r, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
			cancel()
			if err == nil && r.Status == primitive.SendOK {
				acked = append(acked, body)
			}
		}
	}
	p := newP()
	send(p, 100)
	s.kill9AndRestart(t)
	send(p, 100)
	_ = p.Shutdown()
	p = newP()
	send(p, 100)
	s.kill9AndRestart(t)
	send(p, 100)
	if proxy.resets.Load() == 0 {
		t.Fatal("the proxy lost nothing")
	}

	seen := map[string]int{}
	for q := range queues {
		prev := -1
		for off := 0; ; {
			resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/topics/%s/queues/%d/messages?offset=%d&max=200", s.httpPort, topic, q, off))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var read struct {
				Messages []struct {
					Body string `json:"body"`
				} `json:"messages"`
				NextOffset int `json:"next_offset"`
			}
			if err := json.Unmarshal(body, &read); err != nil {
				t.Fatalf("read %d: %v: %s", q, err, body)
			}
			if len(read.Messages) == 0 {
				break
			}
			for _, m := range read.Messages {
				seen[m.Body]++
				n, _ := strconv.Atoi(m.Body[1:])
				if n <= prev {
					t.Errorf("queue %d: %s after c%06d", q, m.Body, prev)
				}
				prev = n
			}
			off = read.NextOffset
		}
	}
	for b, n := range seen {
		if n > 1 {
			t.Errorf("%s stored %d times", b, n)
		}
	}
	for _, b := range acked {
		if seen[b] != 1 {
			t.Errorf("acknowledged %s stored %d times", b, seen[b])
		}
	}
	t.Logf("%d sends, %d acknowledged, %d stored, %d connections reset", i, len(acked), len(seen), proxy.resets.Load())
}
