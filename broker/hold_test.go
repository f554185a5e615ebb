package broker

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// pullAsync sends a held pull from a goroutine; the answer (or the error)
// arrives on the returned channel.
func pullAsync(c *tclient, topic string, queue int, offset int64, suspend time.Duration) <-chan *remoting.Command {
	out := make(chan *remoting.Command, 1)
	req := remoting.NewRequest(protocol.ReqPullMessage, map[string]string{
		"consumerGroup": "g", "topic": topic, "queueId": strconv.Itoa(queue), "queueOffset": strconv.FormatInt(offset, 10),
		"maxMsgNums": "32", "sysFlag": strconv.Itoa(pullSubscription | pullSuspend), "commitOffset": "0",
		"suspendTimeoutMillis": strconv.FormatInt(suspend.Milliseconds(), 10), "subscription": "*", "subVersion": "0", "expressionType": "TAG",
	}, nil)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := c.c.Invoke(ctx, c.addr, req)
		if err != nil {
			resp = remoting.NewResponse(req, protocol.RespSystemError, err.Error())
		}
		out <- resp
	}()
	return out
}

func bodies(t *testing.T, resp *remoting.Command) []string {
	t.Helper()
	var out []string
	for b := resp.Body; len(b) > 0; {
		r, err := protocol.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(r.Body))
		b = b[r.Size:]
	}
	return out
}

// TestHeldPullsWakeTogether: every pull held on a queue is answered by one
// append to it, and a pull held on another queue stays held.
func TestHeldPullsWakeTogether(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	mustOK(t, c.send("hold", 0, "first", nil))
	mustOK(t, c.send("hold", 1, "other", nil))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("hold", 1) == 1 })

	const n = 5
	var answers []<-chan *remoting.Command
	for i := 0; i < n; i++ {
		answers = append(answers, pullAsync(newClient(t, b), "hold", 0, 1, 20*time.Second))
	}
	other := pullAsync(c, "hold", 1, 1, 20*time.Second)
	waitFor(t, 5*time.Second, "pulls held", func() bool { return b.holds.heldCount() == n+1 })

	mustOK(t, c.send("hold", 0, "second", nil))
	for i, ch := range answers {
		select {
		case resp := <-ch:
			mustOK(t, resp)
			if got := bodies(t, resp); len(got) != 1 || got[0] != "second" {
				t.Fatalf("pull %d got %q", i, got)
			}
			if next := resp.ExtFields["nextBeginOffset"]; next != "2" {
				t.Fatalf("pull %d: nextBeginOffset %s", i, next)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("pull %d was not woken by the append", i)
		}
	}
	select {
	case resp := <-other:
		t.Fatalf("pull on queue 1 answered by an append to queue 0: code %d", resp.Code)
	default:
	}
	if got := b.holds.heldCount(); got != 1 {
		t.Fatalf("%d pulls held, want 1", got)
	}
}

// TestHeldPullSuspendEnds: a held pull with nothing to read is answered
// PULL_NOT_FOUND once its suspend time ends and leaves its queue's list;
// the other pull held on the queue stays and is woken by the next append.
func TestHeldPullSuspendEnds(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	mustOK(t, c.send("quiet", 0, "only", nil))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("quiet", 0) == 1 })
	long := pullAsync(newClient(t, b), "quiet", 0, 1, 20*time.Second)
	waitFor(t, 5*time.Second, "pull held", func() bool { return b.holds.heldCount() == 1 })
	start := time.Now()
	resp := <-pullAsync(c, "quiet", 0, 1, 300*time.Millisecond)
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("answered after %v, before the suspend time", took)
	}
	if resp.Code != protocol.RespPullNotFound {
		t.Fatalf("code %d (%s), want PULL_NOT_FOUND", resp.Code, protocol.ResponseName(resp.Code))
	}
	// The other pull on the queue is still held, and still woken.
	if got := b.holds.heldCount(); got != 1 {
		t.Fatalf("%d pulls held after one expired, want 1", got)
	}
	mustOK(t, c.send("quiet", 0, "next", nil))
	if r := <-long; r.Code != protocol.RespSuccess || len(bodies(t, r)) != 1 {
		t.Fatalf("remaining pull answered code %d", r.Code)
	}
	if got := b.holds.heldCount(); got != 0 {
		t.Fatalf("%d pulls still held", got)
	}
}

// TestHeldPullOfClosedConnection: a pull whose connection closed is dropped
// when its queue grows; the other held pulls are answered as usual.
func TestHeldPullOfClosedConnection(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	gone := newClient(t, b)
	mustOK(t, c.send("cl", 0, "first", nil))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("cl", 0) == 1 })
	_ = pullAsync(gone, "cl", 0, 1, 20*time.Second)
	live := pullAsync(c, "cl", 0, 1, 20*time.Second)
	waitFor(t, 5*time.Second, "pulls held", func() bool { return b.holds.heldCount() == 2 })
	gone.c.Close()
	mustOK(t, c.send("cl", 0, "second", nil))
	resp := <-live
	mustOK(t, resp)
	waitFor(t, 5*time.Second, "held pulls gone", func() bool { return b.holds.heldCount() == 0 })
}

// TestShutdownAnswersHeldPulls: Shutdown answers held pulls at once instead
// of waiting out their suspend time, and a pull arriving while it stops is
// not held.
func TestShutdownAnswersHeldPulls(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	mustOK(t, c.send("sd", 0, "only", nil))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("sd", 0) == 1 })
	held := pullAsync(c, "sd", 0, 1, 30*time.Second)
	waitFor(t, 5*time.Second, "pull held", func() bool { return b.holds.heldCount() == 1 })
	start := time.Now()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-held:
		if resp.Code != protocol.RespPullNotFound {
			t.Fatalf("code %d (%s), want PULL_NOT_FOUND", resp.Code, protocol.ResponseName(resp.Code))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held pull not answered by Shutdown")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Shutdown took %v", took)
	}
}

// TestHeldPullsRace holds and wakes pulls on a few queues from many
// goroutines while sends go on: every message is delivered to the pull
// loop of its queue, in order (run with -race).
func TestHeldPullsRace(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	const queues, per = 3, 60
	for q := 0; q < queues; q++ {
		mustOK(t, c.send("race", q, "seed", nil))
	}
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("race", queues-1) == 1 })
	var wg sync.WaitGroup
	errs := make(chan string, queues)
	for q := 0; q < queues; q++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := newClient(t, b)
			off := int64(1)
			want := 0
			for want < per {
				resp := <-pullAsync(pc, "race", q, off, 5*time.Second)
				if resp.Code == protocol.RespPullNotFound {
					continue
				}
				if resp.Code != protocol.RespSuccess {
					errs <- resp.Remark
					return
				}
				for b := resp.Body; len(b) > 0; {
					r, err := protocol.Decode(b)
					if err != nil {
						errs <- err.Error()
						return
					}
					if got := string(r.Body); got != strconv.Itoa(want) {
						errs <- "queue " + strconv.Itoa(q) + ": got " + got + ", want " + strconv.Itoa(want)
						return
					}
					want++
					b = b[r.Size:]
				}
				off, _ = strconv.ParseInt(resp.ExtFields["nextBeginOffset"], 10, 64)
			}
		}()
	}
	for i := 0; i < per; i++ {
		for q := 0; q < queues; q++ {
			mustOK(t, c.send("race", q, strconv.Itoa(i), nil))
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
