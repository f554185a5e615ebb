package compat

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// sentAt is where the broker said it stored a message.
type sentAt struct {
	queue       int
	queueOffset int64
	offsetMsgID string
}

// TestSendModes sends with every mode the client has — sync, async,
// oneway and batch — checks each acknowledgement, then consumes
// everything and checks each message sits where its acknowledgement said.
func TestSendModes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic = "SendModes"
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 4)
	p := newProducer(t, s.NameSrv)
	const n = 25

	where := map[string]sentAt{} // body → acknowledged position
	checkResult := func(body string, res *primitive.SendResult) {
		t.Helper()
		if res.Status != primitive.SendOK {
			t.Errorf("%s: status %v, want SendOK", body, res.Status)
		}
		if res.MessageQueue == nil || res.MessageQueue.Topic != topic || res.MessageQueue.QueueId < 0 || res.MessageQueue.QueueId >= 4 {
			t.Errorf("%s: implausible queue %v", body, res.MessageQueue)
			return
		}
		if res.QueueOffset < 0 || res.QueueOffset >= 4*n {
			t.Errorf("%s: implausible queue offset %d", body, res.QueueOffset)
		}
		checkOffsetMsgID(t, body, res.OffsetMsgID, s.Broker)
		where[body] = sentAt{res.MessageQueue.QueueId, res.QueueOffset, res.OffsetMsgID}
	}

	// sync
	for _, body := range bodiesOf("sync", n) {
		res := sendSync(t, p, primitive.NewMessage(topic, []byte(body)))
		if len(res.MsgID) != 32 {
			t.Errorf("%s: MsgID (UNIQ_KEY) %q, want 32 hex digits", body, res.MsgID)
		}
		checkResult(body, res)
	}

	// async: every callback must come back with SendOK.
	type asyncResult struct {
		body string
		res  *primitive.SendResult
		err  error
	}
	results := make(chan asyncResult, n)
	for _, body := range bodiesOf("async", n) {
		err := p.SendAsync(context.Background(), func(_ context.Context, res *primitive.SendResult, err error) {
			results <- asyncResult{body, res, err}
		}, primitive.NewMessage(topic, []byte(body)))
		if err != nil {
			t.Fatalf("send async %s: %v", body, err)
		}
	}
	timeout := time.After(30 * time.Second)
	for i := range n {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("async %s: %v", r.body, r.err)
			}
			checkResult(r.body, r.res)
		case <-timeout:
			t.Fatalf("async sends: only %d of %d callbacks within 30s", i, n)
		}
	}

	// oneway: no acknowledgement, checked by consuming below.
	for _, body := range bodiesOf("oneway", n) {
		if err := p.SendOneWay(context.Background(), primitive.NewMessage(topic, []byte(body))); err != nil {
			t.Fatalf("send oneway %s: %v", body, err)
		}
	}

	// batch: one request, one queue, consecutive offsets, one offset id per
	// message (the client leaves MsgID empty for batches).
	batchBodies := bodiesOf("batch", n)
	batch := make([]*primitive.Message, n)
	for i, b := range batchBodies {
		batch[i] = primitive.NewMessage(topic, []byte(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	res, err := p.SendSync(ctx, batch...)
	cancel()
	if err != nil {
		t.Fatalf("send batch: %v", err)
	}
	if res.Status != primitive.SendOK {
		t.Fatalf("batch: status %v", res.Status)
	}
	ids := strings.Split(res.OffsetMsgID, ",")
	if len(ids) != n {
		t.Fatalf("batch: %d offset msgIds (%q), want %d", len(ids), res.OffsetMsgID, n)
	}
	for i, b := range batchBodies {
		checkOffsetMsgID(t, b, ids[i], s.Broker)
		where[b] = sentAt{res.MessageQueue.QueueId, res.QueueOffset + int64(i), ids[i]}
	}

	// Acknowledged offsets are distinct per queue.
	seen := map[[2]int64]string{}
	for body, at := range where {
		k := [2]int64{int64(at.queue), at.queueOffset}
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s both acknowledged at queue %d offset %d", body, other, at.queue, at.queueOffset)
		}
		seen[k] = body
	}

	// Everything is consumed, each message once, where it was acknowledged.
	want := append(append(append(bodiesOf("sync", n), bodiesOf("async", n)...), bodiesOf("oneway", n)...), batchBodies...)
	rec := &recorder{}
	startPushConsumer(t, s.NameSrv, "cg-sendmodes", topic, "*", rec.handle)
	waitFor(t, receiveTimeout, func() bool { return rec.hasAll(want) }, "missing %v", rec.missing(want))
	for _, m := range rec.all() {
		at, ok := where[string(m.Body)]
		if !ok {
			continue // oneway: nothing was acknowledged
		}
		if m.Queue.QueueId != at.queue || m.QueueOffset != at.queueOffset || m.OffsetMsgId != at.offsetMsgID {
			t.Errorf("%s consumed at queue %d offset %d id %s; acknowledged at queue %d offset %d id %s",
				m.Body, m.Queue.QueueId, m.QueueOffset, m.OffsetMsgId, at.queue, at.queueOffset, at.offsetMsgID)
		}
	}
	var dups []string
	for b, c := range rec.bodies() {
		if c > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", b, c))
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Errorf("delivered more than once: %v", dups)
	}
	if got := rec.count(); got != len(want) {
		t.Errorf("consumed %d messages, sent %d", got, len(want))
	}
}

// checkOffsetMsgID checks that an offset message id names the broker's
// advertised address.
func checkOffsetMsgID(t *testing.T, body, id, brokerAddr string) {
	t.Helper()
	mid, err := primitive.UnmarshalMsgID([]byte(id))
	if err != nil || len(id) != 32 {
		t.Errorf("%s: offset msgId %q does not decode: %v", body, id, err)
		return
	}
	if got := fmt.Sprintf("%s:%d", mid.Addr, mid.Port); got != brokerAddr {
		t.Errorf("%s: offset msgId %s names %s, want the broker %s", body, id, got, brokerAddr)
	}
	if mid.Offset < 0 {
		t.Errorf("%s: offset msgId %s has commitlog offset %d", body, id, mid.Offset)
	}
}
