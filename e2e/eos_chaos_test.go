package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
)

// The chaos producer runs in a process of its own: the test binary
// re-executed with these variables set. It sends bodies <prefix><n> with
// n counting from 0, sharded over 4 keys, and prints "ack <body>" for
// each acknowledged send, until it is killed.
const (
	envChaosNS     = "FERRY_E2E_CHAOS_NAMESRV"
	envChaosPrefix = "FERRY_E2E_CHAOS_PREFIX"
	chaosProducer  = "e2e-chaos-app"
)

func init() {
	if ns := os.Getenv(envChaosNS); ns != "" {
		os.Exit(chaosProducerMain(ns, os.Getenv(envChaosPrefix)))
	}
}

func chaosProducerMain(ns, prefix string) int {
	p, err := client.NewProducer(ns, client.WithIdempotence(chaosProducer), client.WithRetries(16),
		client.WithSendTimeout(time.Second), client.WithQueueSelector(client.HashSelector()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	// pace: one send per tick, a few hundred sends a second at most
	pace := time.NewTicker(2 * time.Millisecond)
	defer pace.Stop()
	for i := 0; ; i++ {
		<-pace.C
		body := fmt.Sprintf("%s%06d", prefix, i)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := p.Send(ctx, &client.Message{Topic: "chaos", Body: []byte(body), ShardingKey: strconv.Itoa(i % 4)})
		cancel()
		if err == nil {
			fmt.Fprintln(out, "ack", body)
			out.Flush()
		}
	}
}

// chaosProxy forwards connections from listen to target. Each chunk read
// from either side is, with probability 1/every, not forwarded and both
// connections are reset: a request or a response is lost and the sender
// sees its connection break.
type chaosProxy struct {
	ln     net.Listener
	target string
	every  int
	resets atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
}

func newChaosProxy(t *testing.T, listen, target string, every int) *chaosProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &chaosProxy{ln: ln, target: target, every: every, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *chaosProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *chaosProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *chaosProxy) accept() {
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
		p.track(in, true)
		p.track(out, true)
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	c.Close()
}

func (p *chaosProxy) pipe(from, to net.Conn) {
	defer p.wg.Done()
	defer func() { p.track(from, false); p.track(to, false) }()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if rand.IntN(p.every) == 0 {
				p.resets.Add(1)
				reset(from)
				reset(to)
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				from.Close()
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				reset(to)
			} else {
				to.Close()
			}
			return
		}
	}
}

// chaosProducerProc is a running chaos producer process.
type chaosProducerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChaosProducer(t *testing.T, ns, prefix string, ack func(string)) *chaosProducerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChaosNS+"="+ns, envChaosPrefix+"="+prefix)
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &chaosProducerProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if body, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				ack(body)
			}
		}
	}()
	return p
}

func (p *chaosProducerProc) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.cmd.Wait()
}

// startAdvertising is startFixed with the broker advertised at
// advertise (another loopback address, where the chaos proxy listens).
func startAdvertising(t *testing.T, dir string, ns, broker, httpPort int, advertise string) *server {
	t.Helper()
	args := []string{"server", "--data-dir", dir, "--namesrv-port", strconv.Itoa(ns),
		"--broker-port", strconv.Itoa(broker), "--http-port", strconv.Itoa(httpPort), "--host", "127.0.0.1",
		"--advertise-host", advertise, "--log-format", "json"}
	s := &server{cmd: exec.Command(ferryBin, args...), ready: make(chan struct{}), exited: make(chan struct{})}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.read(stderr)
	select {
	case <-s.ready:
	case <-s.exited:
		t.Fatalf("ferry exited before it was ready:\n%s", strings.Join(s.log, "\n"))
	case <-time.After(60 * time.Second):
		t.Fatal("ferry not ready after 60 s")
	}
	return s
}

// An idempotent producer process sends through a proxy that loses
// requests and responses and resets connections at random, while the
// broker is killed with kill -9 and restarted three times and the
// producer process is itself killed with kill -9 and started again with
// the same producer id: every acknowledged message is stored exactly
// once, in send order per queue, and nothing is stored twice.
func TestIdempotentProducerChaos(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	nsPort, brokerPort, httpPort := freePort(t), freePort(t), freePort(t)
	// The broker listens on 127.0.0.1 and is advertised at 127.0.0.2,
	// where the proxy forwards to it.
	proxy := newChaosProxy(t, "127.0.0.2:"+strconv.Itoa(brokerPort), "127.0.0.1:"+strconv.Itoa(brokerPort), 40)
	defer func() { proxy.close() }()
	srv := startAdvertising(t, dir, nsPort, brokerPort, httpPort, "127.0.0.2")
	defer func() { srv.kill9() }()
	ns := "127.0.0.1:" + strconv.Itoa(nsPort)

	var mu sync.Mutex
	acked := map[string]bool{}
	ack := func(body string) { mu.Lock(); acked[body] = true; mu.Unlock() }
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	step := func(n int) {
		t.Helper()
		target := ackedN() + n
		waitFor(t, 120*time.Second, fmt.Sprintf("%d acknowledged sends", target), func() bool { return ackedN() >= target })
	}

	prod := startChaosProducer(t, ns, "a", ack)
	step(150)
	srv.kill9()
	srv = startAdvertising(t, dir, nsPort, brokerPort, httpPort, "127.0.0.2")
	step(150)
	prod.kill9() // the producer process dies; a new one with the same id takes over
	prod = startChaosProducer(t, ns, "b", ack)
	step(150)
	srv.kill9()
	srv = startAdvertising(t, dir, nsPort, brokerPort, httpPort, "127.0.0.2")
	step(150)
	srv.kill9()
	srv = startAdvertising(t, dir, nsPort, brokerPort, httpPort, "127.0.0.2")
	step(150)
	prod.kill9()
	resets := proxy.resets.Load()
	if resets == 0 {
		t.Fatal("the proxy lost nothing: the test did not test lost answers")
	}

	// Read every queue directly (not through the proxy).
	pc, err := client.NewPullConsumer(ns, client.WithGroup("chaos-check"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// The check reads through a proxy that loses nothing.
	proxy.close()
	proxy = newChaosProxy(t, "127.0.0.2:"+strconv.Itoa(brokerPort), "127.0.0.1:"+strconv.Itoa(brokerPort), 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	qs, err := pc.Queues(ctx, "chaos")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, q := range qs {
		prev := map[byte]int{}
		for off := int64(0); ; {
			r, err := pc.Pull(ctx, q, off, 64)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Messages) == 0 {
				break
			}
			for _, m := range r.Messages {
				body := string(m.Body)
				seen[body]++
				n, _ := strconv.Atoi(body[1:])
				// Each producer process's messages are in its send order.
				if p, ok := prev[body[0]]; ok && n <= p {
					t.Errorf("queue %d: %s after %c%06d", q.QueueID, body, body[0], p)
				}
				prev[body[0]] = n
			}
			off = r.NextOffset
		}
	}
	for body, n := range seen {
		if n > 1 {
			t.Errorf("%s stored %d times", body, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for body := range acked {
		if seen[body] != 1 {
			t.Errorf("acknowledged %s stored %d times", body, seen[body])
		}
	}
	t.Logf("%d acknowledged, %d stored, %d connections reset by the proxy", len(acked), len(seen), resets)
}
