package compat

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestDedupWindowWithOfficialClient: on a topic with a dedup window, a
// message the official client sends again (same UNIQ_KEY, as its retries
// do) is stored once and answered with the original offsets, also after
// the broker was killed with kill -9 and restarted.
func TestDedupWindowWithOfficialClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, queues, n = "Dedup", 4, 10
	createDedupTopicHTTP(t, fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), topic, queues) // dedup_failover_test.go
	waitRoute(t, s.NameSrv, topic, 1)
	p := newProducer(t, s.NameSrv)

	msgs := make([]*primitive.Message, n)
	first := make([]*primitive.SendResult, n)
	for i := range msgs {
		msgs[i] = primitive.NewMessage(topic, []byte(fmt.Sprintf("d-%d", i)))
		first[i] = sendSync(t, p, msgs[i])
	}
	check := func(when string) {
		t.Helper()
		for i, m := range msgs {
			again := sendSync(t, p, m) // the client keeps the UNIQ_KEY it set
			if again.MsgID != first[i].MsgID || again.OffsetMsgID != first[i].OffsetMsgID || again.QueueOffset != first[i].QueueOffset {
				t.Errorf("%s: %s answered %s/%s@%d, first %s/%s@%d", when, m.Body, again.MsgID, again.OffsetMsgID, again.QueueOffset,
					first[i].MsgID, first[i].OffsetMsgID, first[i].QueueOffset)
			}
		}
	}
	check("sent again")
	s.kill9AndRestart(t)
	check("after kill -9")

	var count map[string]int
	read := func() bool {
		var err error
		count, err = tryReadTopic(s.httpPort, queues, topic)
		return err == nil && len(count) >= n
	}
	waitFor(t, receiveTimeout, read, "the %d messages readable", n)
	for i := range n {
		if b := fmt.Sprintf("d-%d", i); count[b] != 1 {
			t.Errorf("%s stored %d times", b, count[b])
		}
	}
	if len(count) != n {
		t.Errorf("stored %v", count)
	}
}

// answerGate forwards connections from listen to target; while swallow
// is set it drops what the broker sends (its answers) and keeps the
// connections up, so a send reaches the broker and is stored but its
// sender hears nothing.
type answerGate struct {
	ln      net.Listener
	target  string
	swallow atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
}

func newAnswerGate(t *testing.T, listen, target string) *answerGate {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	g := &answerGate{ln: ln, target: target, conns: map[net.Conn]bool{}}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(g.close)
	return g
}

func (g *answerGate) close() {
	g.ln.Close()
	g.mu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *answerGate) accept() {
	defer g.wg.Done()
	for {
		in, err := g.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", g.target, time.Second)
		if err != nil {
			in.Close()
			continue
		}
		g.mu.Lock()
		g.conns[in], g.conns[out] = true, true
		g.mu.Unlock()
		g.wg.Add(2)
		go g.pipe(in, out, false)
		go g.pipe(out, in, true)
	}
}

func (g *answerGate) pipe(from, to net.Conn, answers bool) {
	defer g.wg.Done()
	defer func() {
		from.Close()
		to.Close()
		g.mu.Lock()
		delete(g.conns, from)
		delete(g.conns, to)
		g.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !(answers && g.swallow.Load()) {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// readTopicAll counts the stored messages of topic by body, every page
// of every queue.
func readTopicAll(t *testing.T, httpPort, queues int, topic string) map[string]int {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	seen := map[string]int{}
	for q := range queues {
		for off := 0; ; {
			resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/topics/%s/queues/%d/messages?offset=%d&max=200", httpPort, topic, q, off))
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
				t.Fatalf("read %s/%d: %v: %s", topic, q, err, body)
			}
			if len(read.Messages) == 0 {
				break
			}
			for _, m := range read.Messages {
				seen[m.Body]++
			}
			off = read.NextOffset
		}
	}
	return seen
}

// outboxApp is one run of the outbox producer program.
type outboxApp struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	acks map[int]bool
	done chan struct{} // closed when it printed "done"
	gone chan struct{} // closed when its stdout ended
}

func startOutboxApp(t *testing.T, bin string, args ...string) *outboxApp {
	t.Helper()
	a := &outboxApp{cmd: exec.Command(bin, args...), acks: map[int]bool{}, done: make(chan struct{}), gone: make(chan struct{})}
	a.cmd.Stderr = os.Stderr
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(a.gone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "done" {
				close(a.done)
				continue
			}
			if s, ok := strings.CutPrefix(line, "ack "); ok {
				i, _ := strconv.Atoi(s)
				a.mu.Lock()
				a.acks[i] = true
				a.mu.Unlock()
			}
		}
	}()
	t.Cleanup(a.kill9)
	return a
}

func (a *outboxApp) acked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acks)
}

func (a *outboxApp) kill9() {
	_ = a.cmd.Process.Kill()
	<-a.gone
	_ = a.cmd.Wait()
}

// outboxUnacked lists the messages the outbox says were sent without an
// answer.
func outboxUnacked(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sent := map[int]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		i, err := strconv.Atoi(fs[1])
		if err != nil {
			continue
		}
		switch fs[0] {
		case "send":
			sent[i] = true
		case "ack":
			delete(sent, i)
		}
	}
	var out []int
	for i := range sent {
		out = append(out, i)
	}
	return out
}

// TestDedupWindowOutboxProducerRestarts: an application process using
// the official client, with an outbox of the messages it sent, is killed
// with kill -9 twice while a send is stored but unanswered (a proxy
// swallows the broker's answers), the broker once with it; each new run
// sends its unanswered messages again with the same UNIQ_KEY. The topic
// has a dedup window: the consumed stream holds every message exactly
// once.
func TestDedupWindowOutboxProducerRestarts(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "outboxproducer")
	build := exec.Command(goTool(), "build", "-o", bin, "./internal/outboxproducer")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build the producer program: %v", err)
	}
	brokerPort := freeTCPPort(t)
	s := &server{name: "ferry server", dataDir: t.TempDir(), flush: "async", brokerPort: brokerPort, advertise: "127.0.0.2"}
	s.start(t)
	gate := newAnswerGate(t, "127.0.0.2:"+strconv.Itoa(brokerPort), "127.0.0.1:"+strconv.Itoa(brokerPort))
	const topic, queues, n = "DedupOutbox", 4, 240
	createDedupTopicHTTP(t, fmt.Sprintf("http://127.0.0.1:%d", s.httpPort), topic, queues) // dedup_failover_test.go
	waitRoute(t, s.NameSrv, topic, 1)

	outbox := filepath.Join(t.TempDir(), "outbox")
	args := []string{"-namesrv", s.NameSrv, "-topic", topic, "-group", unique("outbox"), "-outbox", outbox, "-n", strconv.Itoa(n)}
	// killUnanswered runs the program until it has sent atLeast
	// messages, swallows the answers until a send is stored but
	// unanswered, and kills it; it returns that message, unanswered in
	// the outbox as the killed run left it. (An answer already past the
	// proxy may still arrive before the kill: then it runs again.)
	killUnanswered := func(atLeast int) (stored int, ran []*outboxApp) {
		t.Helper()
		for range 5 {
			app := startOutboxApp(t, bin, args...)
			ran = append(ran, app)
			waitFor(t, 2*time.Minute, func() bool { return app.acked() >= atLeast }, "%d acknowledged sends", atLeast)
			gate.swallow.Store(true)
			var last string
			inFlight := func() []int {
				var out []int
				counts := readTopicAll(t, s.httpPort, queues, topic)
				for _, i := range outboxUnacked(t, outbox) {
					if counts["body-"+strconv.Itoa(i)] == 1 {
						out = append(out, i)
					}
				}
				last = fmt.Sprintf("unanswered %v, stored %d distinct", outboxUnacked(t, outbox), len(counts))
				return out
			}
			if !poll(time.Minute, func() bool { return len(inFlight()) > 0 }) {
				t.Fatalf("no send stored but unanswered after 1m0s: %s", last)
			}
			app.kill9()
			gate.swallow.Store(false)
			if got := inFlight(); len(got) > 0 {
				return got[0], ran
			}
		}
		t.Fatal("no run was killed with a stored send unanswered")
		return 0, nil
	}

	first, _ := killUnanswered(60)
	s.kill9AndRestart(t)
	second, runs := killUnanswered(60)
	if !runs[0].acks[first] {
		t.Fatalf("the run after the kill did not send body-%d again", first)
	}
	run3 := startOutboxApp(t, bin, args...)
	select {
	case <-run3.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the last run did not finish: %d acknowledged", run3.acked())
	}
	if !run3.acks[second] {
		t.Fatalf("the last run did not send body-%d again", second)
	}

	want := make([]string, n)
	for i := range want {
		want[i] = "body-" + strconv.Itoa(i)
	}
	stored := readTopicAll(t, s.httpPort, queues, topic)
	for _, b := range want {
		if stored[b] != 1 {
			t.Errorf("%s stored %d times", b, stored[b])
		}
	}
	if len(stored) != n {
		t.Errorf("%d distinct bodies stored, want %d", len(stored), n)
	}
	rec := &recorder{}
	startPushConsumer(t, s.NameSrv, unique("outbox-cg"), topic, "*", rec.handle)
	waitFor(t, receiveTimeout, func() bool { return rec.hasAll(want) }, "all %d messages consumed; missing %v", n, rec.missing(want))
	for b, k := range rec.bodies() {
		if k != 1 {
			t.Errorf("%s consumed %d times", b, k)
		}
	}
	t.Logf("body-%d and body-%d were stored, their producer killed before the answer, and sent again", first, second)
}
