package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client"
)

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startFixed starts ferry on fixed ports and data directory (so a restart
// is the same broker at the same address) and waits until it is ready.
func startFixed(t *testing.T, dir string, ns, broker, httpPort int) *server {
	t.Helper()
	args := []string{"server", "--data-dir", dir, "--namesrv-port", strconv.Itoa(ns),
		"--broker-port", strconv.Itoa(broker), "--http-port", strconv.Itoa(httpPort), "--host", "127.0.0.1",
		"--advertise-host", "127.0.0.1", "--log-format", "json"}
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

func (s *server) kill9() {
	_ = s.cmd.Process.Kill() // SIGKILL
	<-s.exited
}

// An idempotent producer sends with retries while the broker is killed
// with kill -9 and restarted twice and the producer itself is replaced
// once by a new instance with the same id: every acknowledged message is
// stored exactly once, in send order per queue, and nothing is stored
// twice.
func TestIdempotentProducerSurvivesKill9(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	nsPort, brokerPort, httpPort := freePort(t), freePort(t), freePort(t)
	srv := startFixed(t, dir, nsPort, brokerPort, httpPort)
	defer func() { srv.kill9() }()
	ns := "127.0.0.1:" + strconv.Itoa(nsPort)

	var mu sync.Mutex
	acked := map[string]bool{}
	ackedN := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	newProducer := func() *client.Producer {
		p, err := client.NewProducer(ns, client.WithIdempotence("e2e-app"), client.WithRetries(16),
			client.WithSendTimeout(time.Second), client.WithQueueSelector(client.HashSelector()))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var cur sync.Mutex // guards p
	p := newProducer()
	var attempts, retries int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		pace := time.NewTicker(time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			body := fmt.Sprintf("m%06d", i)
			key := strconv.Itoa(i % 4)
			cur.Lock()
			pp := p
			cur.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := pp.Send(ctx, &client.Message{Topic: "eos", Body: []byte(body), ShardingKey: key})
			cancel()
			attempts = i + 1
			if err == nil {
				mu.Lock()
				acked[body] = true
				mu.Unlock()
			}
		}
	}()
	step := func(n int) {
		t.Helper()
		target := ackedN() + n
		waitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged sends", target), func() bool { return ackedN() >= target })
	}
	step(200)
	srv.kill9()
	srv = startFixed(t, dir, nsPort, brokerPort, httpPort)
	step(200)
	// The producer process restarts: a new instance with the same id.
	cur.Lock()
	old := p
	p = newProducer()
	cur.Unlock()
	_ = old.Close()
	retries += int(old.Stats().Retries)
	step(200)
	srv.kill9()
	srv = startFixed(t, dir, nsPort, brokerPort, httpPort)
	step(200)
	close(stop)
	<-done
	cur.Lock()
	_ = p.Close()
	retries += int(p.Stats().Retries)
	cur.Unlock()
	if retries == 0 {
		t.Fatal("no send was retried: the test did not test retries across the restarts")
	}

	pc, err := client.NewPullConsumer(ns, client.WithGroup("check"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	qs, err := pc.Queues(ctx, "eos")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, q := range qs {
		prev := -1
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
				if n <= prev {
					t.Errorf("queue %d: %s after m%06d", q.QueueID, body, prev)
				}
				prev = n
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
	t.Logf("%d sends, %d acknowledged, %d stored, %d retries", attempts, len(acked), len(seen), retries)
}
