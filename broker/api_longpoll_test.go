package broker

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// parked is the number of requests of any kind in the held-wait table.
func (hs *heldPulls) parked() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.table.Len()
}

// answerWithin waits for a held request's answer for at most d (a
// deadline, not a pause: it returns as soon as the answer comes).
func answerWithin[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: no answer within %v", what, d)
		panic("unreachable")
	}
}

// TestAPILongPollAnsweredPromptly: a message produced while an HTTP
// receive and an HTTP queue read are held (60 s waits) answers both at
// once, through the dispatcher's wake-up, not a rescan.
func TestAPILongPollAnsweredPromptly(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "lp", "read_queues": 2, "write_queues": 2}, 201, nil)
	recv := make(chan []apiMessage, 1)
	read := make(chan []apiMessage, 1)
	go func() {
		var got received
		r := a.do("POST", "/v1/groups/g/receive", map[string]any{"topic": "lp", "wait_ms": 60000}, "")
		_ = json.Unmarshal(r.body, &got)
		recv <- got.Messages
	}()
	go func() {
		var got queueRead
		r := a.do("GET", "/v1/topics/lp/queues/1/messages?offset=0&wait_ms=60000", nil, "")
		_ = json.Unmarshal(r.body, &got)
		read <- got.Messages
	}()
	waitFor(t, 10*time.Second, "two held polls", func() bool { return b.holds.parked() == 2 })
	start := time.Now()
	a.produce("lp", map[string]any{"body": "now", "queue_id": 1})
	got := answerWithin(t, recv, 10*time.Second, "held receive")
	recvLatency := time.Since(start)
	got2 := answerWithin(t, read, 10*time.Second, "held read")
	readLatency := time.Since(start)
	if len(got) != 1 || got[0].Body != "now" || len(got2) != 1 || got2[0].Body != "now" {
		t.Fatalf("receive %+v, read %+v", got, got2)
	}
	t.Logf("produce → answer: receive %v, read %v", recvLatency, readLatency)
	if recvLatency > 2*time.Second || readLatency > 2*time.Second {
		t.Fatalf("held polls answered %v / %v after the produce", recvLatency, readLatency)
	}
	waitFor(t, 5*time.Second, "waiters gone", func() bool { return b.holds.waiters.Load() == 0 && b.holds.parked() == 0 })
}

// TestAPILongPollTimesOut: held with nothing to read, a receive and a read
// answer empty at their wait, not before, and leave nothing parked.
func TestAPILongPollTimesOut(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "idle", "read_queues": 1, "write_queues": 1}, 201, nil)
	const wait = 300 * time.Millisecond
	start := time.Now()
	if msgs := a.receive("g", map[string]any{"topic": "idle", "wait_ms": wait.Milliseconds()}); len(msgs) != 0 {
		t.Fatalf("receive %+v", msgs)
	}
	recvTook := time.Since(start)
	start = time.Now()
	var empty queueRead
	a.ok("GET", fmt.Sprintf("/v1/topics/idle/queues/0/messages?wait_ms=%d", wait.Milliseconds()), nil, 200, &empty)
	readTook := time.Since(start)
	t.Logf("wait %v: receive answered after %v, read after %v", wait, recvTook, readTook)
	for _, took := range []time.Duration{recvTook, readTook} {
		if took < wait || took > wait+5*time.Second {
			t.Fatalf("a %v wait answered after %v", wait, took)
		}
	}
	if len(empty.Messages) != 0 {
		t.Fatalf("read %+v", empty)
	}
	if n, h := b.holds.waiters.Load(), b.holds.parked(); n != 0 || h != 0 {
		t.Fatalf("%d waiters counted, %d parked after the waits", n, h)
	}
}

// TestAPIReceiveWakesOnNewRetryQueue: a receive held while its group has
// no retry topic yet is woken when a nack creates it (the message comes
// back after the first retry level, 20 ms here), well before its wait.
func TestAPIReceiveWakesOnNewRetryQueue(t *testing.T) {
	b, a := testHTTPBroker(t, fastDelays)
	a.ok("POST", "/v1/topics", map[string]any{"name": "jobs", "read_queues": 1, "write_queues": 1}, 201, nil)
	a.produce("jobs", map[string]any{"body": "again"})
	m := a.receiveOne("rg", "jobs")
	if _, ok := b.topics.get(protocol.RetryTopic("rg")); ok {
		t.Fatal("the retry topic exists before any nack")
	}
	held := make(chan []apiMessage, 1)
	go func() {
		var got received
		r := a.do("POST", "/v1/groups/rg/receive", map[string]any{"topic": "jobs", "wait_ms": 60000}, "")
		_ = json.Unmarshal(r.body, &got)
		held <- got.Messages
	}()
	waitFor(t, 10*time.Second, "held receive", func() bool { return b.holds.parked() == 1 })
	start := time.Now()
	a.ok("POST", "/v1/groups/rg/nack", map[string]any{"receipt_handles": []string{m.ReceiptHandle}}, 200, nil)
	got := answerWithin(t, held, 20*time.Second, "held receive after a nack")
	t.Logf("nack → retried message answered after %v", time.Since(start))
	if len(got) != 1 || got[0].Body != "again" {
		t.Fatalf("held receive got %+v", got)
	}
}

// TestAPIManyHeldPollsOneAppend: many receives of different groups held
// on one queue are all answered by one append.
func TestAPIManyHeldPollsOneAppend(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "fan", "read_queues": 1, "write_queues": 1}, 201, nil)
	const n = 40
	out := make(chan []apiMessage, n)
	for i := range n {
		go func() {
			var got received
			r := a.do("POST", fmt.Sprintf("/v1/groups/fan%d/receive", i), map[string]any{"topic": "fan", "wait_ms": 60000}, "")
			_ = json.Unmarshal(r.body, &got)
			out <- got.Messages
		}()
	}
	waitFor(t, 20*time.Second, "held receives", func() bool { return b.holds.parked() == n })
	a.produce("fan", map[string]any{"body": "all"})
	for range n {
		if got := answerWithin(t, out, 10*time.Second, "a held receive"); len(got) != 1 || got[0].Body != "all" {
			t.Fatalf("got %+v", got)
		}
	}
	waitFor(t, 5*time.Second, "nothing parked", func() bool { return b.holds.parked() == 0 })
}
