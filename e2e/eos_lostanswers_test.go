package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// answerDropper forwards connections from listen to target frame by
// frame and swallows, with probability 1/every, the broker's answer to a
// send request: the request was served, the connection stays up, and the
// sender hears nothing (every 0 swallows nothing).
type answerDropper struct {
	ln      net.Listener
	target  string
	every   atomic.Int64
	dropped atomic.Int64
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
}

func newAnswerDropper(t *testing.T, listen, target string, every int) *answerDropper {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &answerDropper{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.every.Store(int64(every))
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *answerDropper) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *answerDropper) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = true, true
		p.mu.Unlock()
		var sends sync.Map // opaque of a send request → true
		p.wg.Add(2)
		go p.pipe(in, out, func(c *remoting.Command) bool {
			if !c.IsResponse() && (c.Code == protocol.ReqSendMessage || c.Code == protocol.ReqSendMessageV2 || c.Code == protocol.ReqSendBatchMessage) {
				sends.Store(c.Opaque, true)
			}
			return true
		})
		go p.pipe(out, in, func(c *remoting.Command) bool {
			if _, send := sends.LoadAndDelete(c.Opaque); !send || !c.IsResponse() {
				return true
			}
			if n := p.every.Load(); n > 0 && rand.Int64N(n) == 0 {
				p.dropped.Add(1)
				return false
			}
			return true
		})
	}
}

// pipe copies frames from one side to the other while pass lets them.
func (p *answerDropper) pipe(from, to net.Conn, pass func(*remoting.Command) bool) {
	defer p.wg.Done()
	defer func() {
		from.Close()
		to.Close()
		p.mu.Lock()
		delete(p.conns, from)
		delete(p.conns, to)
		p.mu.Unlock()
	}()
	r := bufio.NewReader(from)
	for {
		payload, err := remoting.ReadFrame(r, 64<<20)
		if err != nil {
			return
		}
		c, err := remoting.DecodePayload(payload)
		if err != nil {
			return
		}
		if !pass(c) {
			continue
		}
		frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(payload)), uint32(len(payload)))
		if _, err := to.Write(append(frame, payload...)); err != nil {
			return
		}
	}
}

// duplicatesDropped reads ferry_duplicates_dropped_total{kind} from the
// broker's metrics.
func duplicatesDropped(t *testing.T, httpPort int, kind string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	prefix := `ferry_duplicates_dropped_total{kind="` + kind + `"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// An idempotent producer sends through a proxy that swallows some of
// the broker's answers to its sends while the connection stays up: the
// send was stored, the producer times out and sends it again on the same
// connection. Every message is acknowledged, stored exactly once and in
// send order per queue, and the broker counts the retries it answered
// with the original result.
func TestIdempotentProducerLostAnswers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	nsPort, brokerPort, httpPort := freePort(t), freePort(t), freePort(t)
	proxy := newAnswerDropper(t, "127.0.0.2:"+strconv.Itoa(brokerPort), "127.0.0.1:"+strconv.Itoa(brokerPort), 6)
	defer proxy.close()
	srv := startAdvertising(t, dir, nsPort, brokerPort, httpPort, "127.0.0.2")
	defer srv.kill9()
	ns := "127.0.0.1:" + strconv.Itoa(nsPort)

	p, err := client.NewProducer(ns, client.WithIdempotence("lost-answers-app"), client.WithRetries(16),
		client.WithSendTimeout(500*time.Millisecond), client.WithQueueSelector(client.HashSelector()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n, keys = 240, 4
	// One sender per sharding key, so that several queues have a send
	// in flight at once on the one connection.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += keys {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				_, err := p.Send(ctx, &client.Message{Topic: "lost", Body: fmt.Appendf(nil, "m%04d", i), ShardingKey: strconv.Itoa(k)})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("m%04d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	dropped := proxy.dropped.Load()
	if dropped == 0 {
		t.Fatal("the proxy swallowed no answer: the test did not test lost answers")
	}
	dups := duplicatesDropped(t, httpPort, "idempotent")
	if dups == 0 {
		t.Fatalf("%d answers swallowed but no retry was answered as a duplicate", dropped)
	}
	proxy.every.Store(0) // the check reads through the same proxy

	pc, err := client.NewPullConsumer(ns, client.WithGroup("lost-check"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	qs, err := pc.Queues(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, q := range qs {
		prev := map[int]int{} // by sender (i % keys)
		for off := int64(0); ; {
			r, err := pc.Pull(ctx, q, off, 64)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Messages) == 0 {
				break
			}
			for _, m := range r.Messages {
				seen[string(m.Body)]++
				i, _ := strconv.Atoi(string(m.Body[1:]))
				if last, ok := prev[i%keys]; ok && i <= last {
					t.Errorf("queue %d: %s after m%04d", q.QueueID, m.Body, last)
				}
				prev[i%keys] = i
			}
			off = r.NextOffset
		}
	}
	for i := range n {
		if b := fmt.Sprintf("m%04d", i); seen[b] != 1 {
			t.Errorf("%s stored %d times", b, seen[b])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages stored, want %d", len(seen), n)
	}
	t.Logf("%d answers swallowed, %.0f retries answered as duplicates", dropped, dups)
}
