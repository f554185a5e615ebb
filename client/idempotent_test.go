package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lossyProxy forwards TCP connections to a broker and, for every dropEvery-th
// response frame, swallows it and resets the connection: the request was
// served but its sender never hears so.
type lossyProxy struct {
	ln        net.Listener
	target    string
	dropEvery int64
	frames    atomic.Int64
	dropped   atomic.Int64
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     []net.Conn
}

func newLossyProxy(t *testing.T, target string, dropEvery int64) *lossyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target, dropEvery: dropEvery}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *lossyProxy) addr() string { return p.ln.Addr().String() }

func (p *lossyProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *lossyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *lossyProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.track(in)
		p.track(out)
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
		go func() { defer p.wg.Done(); p.responses(in, out); in.Close() }()
	}
}

// responses copies length-prefixed frames from the broker to the client,
// dropping some.
func (p *lossyProxy) responses(in, out net.Conn) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(out, hdr[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(out, frame); err != nil {
			return
		}
		if p.frames.Add(1)%p.dropEvery == 0 {
			p.dropped.Add(1)
			out.Close()
			return
		}
		if _, err := in.Write(append(hdr[:], frame...)); err != nil {
			return
		}
	}
}

// routeVia makes p's remoting transport reach every broker through proxy.
func routeVia(t *testing.T, p *Producer, topic, proxy string) {
	t.Helper()
	tr := p.tr.(*rmqProducer)
	r, err := tr.routes.get(ctxT(t), topic, false)
	if err != nil {
		t.Fatal(err)
	}
	cp := &topicRoute{publish: r.publish, subscribe: r.subscribe, brokers: map[string]string{}}
	for name := range r.brokers {
		cp.brokers[name] = proxy
	}
	tr.routes.store(topic, cp)
}

// An idempotent producer whose responses are lost and connections reset
// stores every acknowledged message exactly once, in order per queue;
// a second instance with the same id fences the first and continues.
func TestIdempotentProducerThroughLossyProxy(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("eos", 2)
	proxy := newLossyProxy(t, c.brokers[0].Addr(), 4)
	opts := []ProducerOption{WithIdempotence("app-1"), WithRetries(16), WithSendTimeout(2 * time.Second),
		WithRouteRefreshInterval(time.Hour), WithQueueSelector(HashSelector())}
	p1 := newTestProducer(t, c.endpoint(), opts...)
	routeVia(t, p1, "eos", proxy.addr())
	ctx := ctxT(t)
	var acked []string
	send := func(p *Producer, i int) error {
		key := strconv.Itoa(i % 2)
		_, err := p.Send(ctx, &Message{Topic: "eos", Body: []byte(fmt.Sprintf("m%03d", i)), Keys: []string{key}, ShardingKey: key})
		if err == nil {
			acked = append(acked, fmt.Sprintf("m%03d", i))
		}
		return err
	}
	for i := 0; i < 60; i++ {
		if err := send(p1, i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	batch := []*Message{{Topic: "eos", Body: []byte("b0")}, {Topic: "eos", Body: []byte("b1")}, {Topic: "eos", Body: []byte("b2")}}
	for range 3 {
		if _, err := p1.SendBatch(ctx, batch); err != nil {
			t.Fatalf("batch: %v", err)
		}
		acked = append(acked, "b0", "b1", "b2")
	}
	p2 := newTestProducer(t, c.endpoint(), opts...)
	routeVia(t, p2, "eos", proxy.addr())
	for i := 60; i < 100; i++ {
		if err := send(p2, i); err != nil {
			t.Fatalf("send %d from the second instance: %v", i, err)
		}
	}
	if err := send(p1, 100); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("first instance after the second started: %v", err)
	}
	if proxy.dropped.Load() < 10 || p1.Stats().Retries == 0 {
		t.Fatalf("the proxy dropped %d answers, %d retries: the test did not test retries", proxy.dropped.Load(), p1.Stats().Retries)
	}
	var got []*MessageExt
	waitFor(t, 10*time.Second, "every acknowledged message", func() bool {
		got = drainAll(t, c.endpoint(), "eos")
		return len(got) >= len(acked)
	})
	count := map[string]int{}
	last := map[int]int{}
	for _, m := range got {
		body := string(m.Body)
		count[body]++
		if strings.HasPrefix(body, "m") {
			n, _ := strconv.Atoi(body[1:])
			if prev, ok := last[m.Queue.QueueID]; ok && n <= prev {
				t.Errorf("queue %d: %s after m%03d", m.Queue.QueueID, body, prev)
			}
			last[m.Queue.QueueID] = n
		}
	}
	want := map[string]int{}
	for _, b := range acked {
		want[b]++
	}
	for b, n := range want {
		if count[b] != n {
			t.Errorf("%s stored %d times, acknowledged %d times", b, count[b], n)
		}
	}
	if len(got) != len(acked) {
		t.Errorf("stored %d messages, acknowledged %d", len(got), len(acked))
	}
}

func TestIdempotenceOptionValidated(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		opt      ProducerOption
	}{
		{"127.0.0.1:9876", WithIdempotence("")},
		{"127.0.0.1:9876", WithIdempotence("a\x01b")},
		{"http://127.0.0.1:8080", WithIdempotence("p")},
	} {
		if _, err := NewProducer(tc.endpoint, tc.opt); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v", tc.endpoint, err)
		}
	}
	p, err := NewProducer("127.0.0.1:1", WithIdempotence("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SendOneway(ctxT(t), &Message{Topic: "t", Body: []byte("x")}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("one-way: %v", err)
	}
	if _, err := p.Send(ctxT(t), &Message{Topic: "t", Body: []byte("x"), DelayLevel: 2}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("delayed: %v", err)
	}
}

// An idempotent producer whose broker group's master moved (its cached
// route names an address nothing answers on) reads the route again and
// sends the same batch to the group's master where the name server says
// it is now.
func TestIdempotentRetryFollowsMovedMaster(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("moved", 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close() // the old master's address: connections are refused
	p := newTestProducer(t, c.endpoint(), WithIdempotence("moved-app"), WithRetries(3),
		WithSendTimeout(2*time.Second), WithRouteRefreshInterval(time.Hour))
	ctx := ctxT(t)
	if _, err := p.Send(ctx, &Message{Topic: "moved", Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	routeVia(t, p, "moved", gone)
	res, err := p.Send(ctx, &Message{Topic: "moved", Body: []byte("second")})
	if err != nil {
		t.Fatalf("send after the master moved: %v", err)
	}
	if res.QueueOffset != 1 || p.Stats().Retries == 0 {
		t.Fatalf("stored at queue offset %d after %d retries; want 1 after a retry", res.QueueOffset, p.Stats().Retries)
	}
}
