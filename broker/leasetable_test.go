package broker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// leaseRig drives a broker's lease table directly, on a clock of its own
// (nothing starts the sweeper: expiry happens when the test moves the
// clock and receives or sweeps).
type leaseRig struct {
	t   *testing.T
	b   *Broker
	lt  *leaseTable
	now time.Time
}

func newLeaseRig(t *testing.T, mut func(*Config)) *leaseRig {
	b := testBroker(t, t.TempDir(), mut)
	r := &leaseRig{t: t, b: b, lt: b.leases, now: time.Now()}
	r.lt.now = func() time.Time { return r.now }
	return r
}

// send stores bodies on queue 0 of topic and waits until they are
// dispatched.
func (r *leaseRig) send(topic string, bodies ...string) {
	r.t.Helper()
	c := newClient(r.t, r.b)
	for _, body := range bodies {
		mustOK(r.t, c.send(topic, 0, body, nil))
	}
	end := r.b.cq.MaxOffset(topic, 0)
	waitFor(r.t, 5*time.Second, "dispatch", func() bool { return r.b.cq.MaxOffset(topic, 0) >= end })
}

// receive leases up to want messages of topic (and the group's retry
// queue) for vis, as one receive that finds something does.
func (r *leaseRig) receive(group, topic string, want int, vis time.Duration) []apiMessage {
	r.t.Helper()
	gc, err := r.lt.consumerGroup(group)
	if err != nil {
		r.t.Fatal(err)
	}
	msgs, err := r.lt.receiveOnce(r.lt.group(group, true), group, gc, r.lt.receiveQueues(group, topic), want, vis, tagFilter{all: true}, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return msgs
}

func (r *leaseRig) ack(group string, handles ...string) (int, []ReceiptFailure) {
	r.t.Helper()
	n, failed, err := HTTPConsumeView{r.lt}.Ack(group, handles)
	if err != nil {
		r.t.Fatal(err)
	}
	return n, failed
}

func (r *leaseRig) committed(group, topic string) int64 {
	off, ok := r.b.offsets.get(group, topic, 0)
	if !ok {
		return -1
	}
	return off
}

func bodiesOf(msgs []apiMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	return out
}

// TestLeaseTableCommitsPastSettled: the group's offset is the smallest
// offset still leased; settling a later message does not move it.
func TestLeaseTableCommitsPastSettled(t *testing.T) {
	r := newLeaseRig(t, nil)
	r.send("jobs", "m0", "m1", "m2")
	msgs := r.receive("g", "jobs", 3, time.Minute)
	if got := fmt.Sprint(bodiesOf(msgs)); got != "[m0 m1 m2]" {
		t.Fatalf("received %s", got)
	}
	if more := r.receive("g", "jobs", 3, time.Minute); len(more) != 0 {
		t.Fatalf("leased messages handed out again: %v", bodiesOf(more))
	}
	if n, failed := r.ack("g", msgs[1].ReceiptHandle, msgs[2].ReceiptHandle); n != 2 || len(failed) != 0 {
		t.Fatalf("acked %d, failed %v", n, failed)
	}
	if got := r.committed("g", "jobs"); got != 0 {
		t.Fatalf("committed %d with offset 0 still leased, want 0", got)
	}
	if n, _ := r.ack("g", msgs[0].ReceiptHandle); n != 1 {
		t.Fatalf("acked %d", n)
	}
	if got := r.committed("g", "jobs"); got != 3 {
		t.Fatalf("committed %d once all are acked, want 3", got)
	}
}

// TestLeaseTableStaleReceipt: a receipt handle settles its lease once; a
// handle of a lease that ended (acked, or expired and sent to retry) or
// one that was never handed out is refused.
func TestLeaseTableStaleReceipt(t *testing.T) {
	r := newLeaseRig(t, nil)
	r.send("jobs", "a", "b")
	msgs := r.receive("g", "jobs", 2, time.Second)
	if len(msgs) != 2 {
		t.Fatalf("received %v", bodiesOf(msgs))
	}
	if n, _ := r.ack("g", msgs[0].ReceiptHandle); n != 1 {
		t.Fatalf("first ack settled %d", n)
	}
	r.now = r.now.Add(2 * time.Second) // b's lease expires
	r.lt.expireAll(r.now)
	n, failed := r.ack("g", msgs[0].ReceiptHandle, msgs[1].ReceiptHandle, "forged")
	if n != 0 || len(failed) != 3 {
		t.Fatalf("settled %d, failed %d; want 0 and 3", n, len(failed))
	}
	for _, f := range failed[:2] {
		if !errors.Is(f.Err, protocol.ErrHTTPReceiptExpired) {
			t.Fatalf("stale handle refused with %v, want a receipt-expired error", f.Err)
		}
	}
	if got := r.committed("g", "jobs"); got != 2 {
		t.Fatalf("committed %d, want 2 (one acked, one sent to retry)", got)
	}
}

// TestLeaseTableExpiryHandsOutAgain: a lease whose visibility deadline
// passes sends its message back, and a later receive hands it out again
// from the group's retry queue, showing its own topic. The send-back here
// skips the retry delay.
func TestLeaseTableExpiryHandsOutAgain(t *testing.T) {
	r := newLeaseRig(t, nil)
	sendBack := r.lt.sendBack
	r.lt.sendBack = func(rec protocol.Record, group string, gc GroupConfig, origin string, level, maxTimes int32) (commitlog.Message, error) {
		m, err := sendBack(rec, group, gc, origin, level, maxTimes)
		m.Topic, m.QueueID = protocol.RetryTopic(group), 0
		return m, err
	}
	r.send("jobs", "once")
	first := r.receive("g", "jobs", 1, time.Second)
	if len(first) != 1 {
		t.Fatalf("received %v", bodiesOf(first))
	}
	r.now = r.now.Add(time.Second - time.Millisecond)
	if more := r.receive("g", "jobs", 1, time.Second); len(more) != 0 {
		t.Fatalf("handed out again before the deadline: %v", bodiesOf(more))
	}
	r.now = r.now.Add(time.Millisecond)
	var again []apiMessage
	waitFor(t, 5*time.Second, "the message again", func() bool {
		again = r.receive("g", "jobs", 1, time.Minute)
		return len(again) > 0
	})
	m := again[0]
	if m.Body != "once" || m.Topic != "jobs" || m.StoredTopic != protocol.RetryTopic("g") || m.ReconsumeTimes != 1 {
		t.Fatalf("handed out again as %+v", m)
	}
	if m.ReceiptHandle == first[0].ReceiptHandle {
		t.Fatal("the new lease has the old receipt handle")
	}
	if got := r.committed("g", "jobs"); got != 1 {
		t.Fatalf("committed %d on jobs, want 1", got)
	}
}

// TestLeaseTableRetryThenDLQ: a nacked message goes down the retry path
// (the schedule topic, due back on the group's retry topic); once it has
// been consumed the group's retry limit of times, an expired lease sends
// it to the dead-letter queue.
func TestLeaseTableRetryThenDLQ(t *testing.T) {
	r := newLeaseRig(t, fastDelays)
	if err := r.b.groups.put(GroupConfig{GroupName: "g", ConsumeEnable: true, RetryMaxTimes: 1}); err != nil {
		t.Fatal(err)
	}
	r.send("jobs", "flaky")
	msgs := r.receive("g", "jobs", 1, time.Minute)
	if len(msgs) != 1 {
		t.Fatalf("received %v", bodiesOf(msgs))
	}
	n, failed, err := HTTPConsumeView{r.lt}.Nack("g", []string{msgs[0].ReceiptHandle})
	if err != nil || n != 1 || len(failed) != 0 {
		t.Fatalf("nack: %d, %v, %v", n, failed, err)
	}
	var retried []apiMessage
	waitFor(t, 10*time.Second, "the retry", func() bool {
		retried = r.receive("g", "jobs", 1, time.Second)
		return len(retried) > 0
	})
	if m := retried[0]; m.Body != "flaky" || m.StoredTopic != protocol.RetryTopic("g") || m.ReconsumeTimes != 1 {
		t.Fatalf("retried as %+v", m)
	}
	dlq := protocol.DLQTopic("g")
	if _, ok := r.b.topics.get(dlq); ok {
		t.Fatal("dead-letter topic before the limit")
	}
	r.now = r.now.Add(2 * time.Second)
	r.lt.expireAll(r.now)
	waitFor(t, 5*time.Second, "the dead letter", func() bool { return r.b.cq.MaxOffset(dlq, 0) == 1 })
	if more := r.receive("g", "jobs", 1, time.Second); len(more) != 0 {
		t.Fatalf("a dead letter was handed out again: %+v", more[0])
	}
}
