package broker

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// fakeHeldQueues is a consume-queue store of queue ends only; it counts
// the reads of held pulls.
type fakeHeldQueues struct {
	mu    sync.Mutex
	end   map[holdKey]int64
	reads int
}

func (q *fakeHeldQueues) Notify(string, int32) <-chan struct{} { return nil }

func (q *fakeHeldQueues) MaxOffset(topic string, queueID int32) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.end[holdKey{topic, queueID}]
}

func (q *fakeHeldQueues) read(topic string, queueID int32) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reads++
	return q.end[holdKey{topic, queueID}]
}

func (q *fakeHeldQueues) readCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.reads
}

func (q *fakeHeldQueues) grow(topic string, queueID int32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.end[holdKey{topic, queueID}]++
}

// heldPullsRig is a heldPulls over fake queues whose pulls come from real
// connections: a remoting server holds every pull it gets (queue 0 of the
// topic in the request, from offset 0, for the suspend time asked).
type heldPullsRig struct {
	hs     *heldPulls
	queues *fakeHeldQueues
	addr   string
	stop   chan struct{}
}

// heldPullCode is the rig's request code: its server holds every request,
// and a code of no decoded header keeps the fields as sent.
const heldPullCode = 1 << 14

func newHeldPullsRig(t *testing.T) *heldPullsRig {
	cfg := DefaultConfig()
	r := &heldPullsRig{queues: &fakeHeldQueues{end: map[holdKey]int64{}}, stop: make(chan struct{})}
	pullOnce := func(req *remoting.Command, p *pullRequest, _ tagFilter) (*remoting.Command, bool) {
		if r.queues.read(p.topic, p.queueID) <= p.offset {
			return remoting.NewResponse(req, protocol.RespPullNotFound, "empty"), true
		}
		return remoting.NewResponse(req, protocol.RespSuccess, "found"), false
	}
	r.hs = newHeldPulls(func() *Config { return &cfg }, r.stop)
	r.hs.queues, r.hs.pullOnce = r.queues, pullOnce
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := remoting.NewServer(remoting.HandlerFunc(func(c *remoting.Conn, req *remoting.Command) {
		suspend, _ := time.ParseDuration(req.ExtFields["suspend"])
		r.hs.holdPull(c, req, pullRequest{topic: req.ExtFields["topic"], suspend: suspend}, tagFilter{all: true})
	}), remoting.ServerConfig{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		r.hs.releaseHeld()
		_ = srv.Shutdown(context.Background())
	})
	r.addr = ln.Addr().String()
	return r
}

// pull sends a pull from a client of its own (closed by close) and
// returns where its answer arrives.
func (r *heldPullsRig) pull(t *testing.T, topic string, suspend time.Duration) (answer <-chan *remoting.Command, close func()) {
	c := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { c.Close() })
	out := make(chan *remoting.Command, 1)
	req := remoting.NewRequest(heldPullCode, map[string]string{"topic": topic, "suspend": suspend.String()}, nil)
	go func() {
		resp, err := c.Invoke(context.Background(), r.addr, req)
		if err != nil {
			resp = remoting.NewResponse(req, protocol.RespSystemError, err.Error())
		}
		out <- resp
	}()
	return out, func() { c.Close() }
}

func (r *heldPullsRig) held(t *testing.T, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, "held pulls", func() bool { return r.hs.heldCount() == n })
}

// TestHeldPullsAnsweredWhenQueueGrows: a held pull stays held through a
// wake-up that finds its queue still empty, and is answered by the one
// after an append; a pull on another queue stays held.
func TestHeldPullsAnsweredWhenQueueGrows(t *testing.T) {
	r := newHeldPullsRig(t)
	answer, _ := r.pull(t, "t", time.Minute)
	other, _ := r.pull(t, "u", time.Minute)
	r.held(t, 2)

	r.hs.wakeHeld("t", 0) // nothing appended: read, found empty, parked again
	if got := r.hs.heldCount(); got != 2 {
		t.Fatalf("%d pulls held after an empty wake-up, want 2", got)
	}
	r.queues.grow("t", 0)
	r.hs.wakeHeld("t", 0)
	select {
	case resp := <-answer:
		if resp.Code != protocol.RespSuccess {
			t.Fatalf("answered code %d (%s), want SUCCESS", resp.Code, resp.Remark)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held pull was not answered after its queue grew")
	}
	select {
	case resp := <-other:
		t.Fatalf("pull on another queue answered: code %d", resp.Code)
	default:
	}
	r.held(t, 1)
}

// TestHeldPullsExpireAtDeadline: a held pull on a queue that never grows
// is answered with what its queue holds (nothing) once its suspend time
// ends, not before.
func TestHeldPullsExpireAtDeadline(t *testing.T) {
	r := newHeldPullsRig(t)
	start := time.Now()
	answer, _ := r.pull(t, "t", 300*time.Millisecond)
	select {
	case resp := <-answer:
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Fatalf("answered after %v, before its deadline: %d %s", took, resp.Code, resp.Remark)
		}
		if resp.Code != protocol.RespPullNotFound {
			t.Fatalf("answered code %d (%s), want PULL_NOT_FOUND", resp.Code, resp.Remark)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held pull was not answered at its deadline")
	}
	r.held(t, 0)
}

// TestHeldPullsOfClosedConnection: a pull whose connection closed is
// dropped unread when its queue grows; the release at shutdown answers
// the others at once and later pulls are answered without being held.
func TestHeldPullsOfClosedConnection(t *testing.T) {
	r := newHeldPullsRig(t)
	_, closeGone := r.pull(t, "t", time.Minute)
	r.held(t, 1)
	closeGone()
	waitFor(t, 5*time.Second, "the server to see the close", func() bool {
		r.hs.mu.Lock()
		defer r.hs.mu.Unlock()
		var gone bool
		for _, w := range r.hs.table.entries {
			gone = gone || isClosed(w.w.pull.c)
		}
		return gone
	})
	reads := r.queues.readCount()
	r.queues.grow("t", 0)
	r.hs.wakeHeld("t", 0)
	if got := r.queues.readCount(); got != reads {
		t.Fatalf("the pull of a closed connection was read (%d reads, want %d)", got, reads)
	}
	r.held(t, 0)

	live, _ := r.pull(t, "u", time.Minute)
	r.held(t, 1)
	r.hs.releaseHeld()
	if resp := <-live; resp.Code != protocol.RespPullNotFound {
		t.Fatalf("released pull answered code %d, want PULL_NOT_FOUND", resp.Code)
	}
	late, _ := r.pull(t, "u", time.Minute)
	if resp := <-late; resp.Code != protocol.RespPullNotFound {
		t.Fatalf("pull after the release answered code %d, want PULL_NOT_FOUND", resp.Code)
	}
	r.held(t, 0)
}

// TestHeldPullsHTTPPoll: an HTTP long poll parks on its queues, blocks
// until one grows, and stops waiting when the broker stops; it counts
// as a held HTTP request from its first wait to its end.
func TestHeldPullsHTTPPoll(t *testing.T) {
	r := newHeldPullsRig(t)
	p := r.hs.newHTTPPoll(time.Minute)
	keys := []holdKey{{"t", 0}, {"t", 1}}
	if err := p.wait(keys); err != nil || p.over() {
		t.Fatalf("first wait: %v (over %v)", err, p.over())
	}
	if n := r.hs.waiters.Load(); n != 1 {
		t.Fatalf("%d HTTP waits counted, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- p.wait(keys) }()
	r.hs.wakeHeld("t", 1)
	if err := <-done; err != nil || p.over() {
		t.Fatalf("woken wait: %v (over %v)", err, p.over())
	}
	if err := p.wait(keys); err != nil { // parks again
		t.Fatal(err)
	}
	go func() { done <- p.wait(keys) }()
	close(r.stop)
	if err := <-done; err != nil || !p.over() {
		t.Fatalf("wait at stop: %v (over %v)", err, p.over())
	}
	p.end()
	if n, h := r.hs.waiters.Load(), r.hs.table.Len(); n != 0 || h != 0 {
		t.Fatalf("%d HTTP waits counted, %d parked after the end", n, h)
	}
}
