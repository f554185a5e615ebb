package broker

import (
	"fmt"
	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
	"testing"
	"time"
)

// TestAPIMessageTrace follows one message through two retries, the DLQ
// and a resend, and checks every stage shows in its trace; the dead-letter
// list then says it was resent.
func TestAPIMessageTrace(t *testing.T) {
	_, a := testHTTPBroker(t, fastDelays)
	a.ok("POST", "/v1/topics", map[string]any{"name": "pay", "read_queues": 1, "write_queues": 1}, 201, nil)
	a.ok("POST", "/v1/groups", map[string]any{"name": "billing", "retry_max_times": 2}, 201, nil)
	a.ok("POST", "/v1/groups", map[string]any{"name": "audit"}, 201, nil)
	res := a.produce("pay", map[string]any{"body": "charge", "keys": []string{"order-7"}})
	id := res.Results[0].MsgID
	for i := 0; i <= 2; i++ {
		m := a.receiveOne("billing", "pay")
		a.ok("POST", "/v1/groups/billing/nack", map[string]any{"receipt_handles": []string{m.ReceiptHandle}}, 200, nil)
	}
	// audit has consumed past it, billing's offset moved past it too.
	a.ok("PUT", "/v1/groups/audit/offsets", map[string]any{"offsets": []map[string]any{{"topic": "pay", "queue_id": 0, "offset": 1}}}, 200, nil)

	var tr protocol.HTTPTrace
	waitFor(t, 10*time.Second, "the dead letter in the trace", func() bool {
		a.ok("GET", "/v1/messages/"+id+"/trace", nil, 200, &tr)
		return len(tr.DeadLetter) == 1
	})
	if tr.Message.MsgID != id || tr.Message.Topic != "pay" || tr.Message.QueueOffset != 0 || tr.Scheduled != nil {
		t.Fatalf("trace message %+v", tr.Message)
	}
	if len(tr.Retries) != 2 || tr.Retries[0].ReconsumeTimes != 1 || tr.Retries[1].ReconsumeTimes != 2 ||
		tr.Retries[0].Group != "billing" || tr.Retries[0].Topic != "%RETRY%billing" || tr.Retries[0].StoredAtMs < tr.Message.StoredAtMs {
		t.Fatalf("retries %+v", tr.Retries)
	}
	if d := tr.DeadLetter[0]; d.Group != "billing" || d.Topic != "%DLQ%billing" || d.ReconsumeTimes != 3 {
		t.Fatalf("dead letter %+v", d)
	}
	groups := map[string]protocol.HTTPTraceGroup{}
	for _, g := range tr.Groups {
		groups[g.Group] = g
	}
	if !groups["audit"].Consumed || groups["audit"].CommittedOffset != 1 {
		t.Fatalf("groups %+v", tr.Groups)
	}
	if tr.Truncated || tr.Scanned < 3 || len(tr.Resent) != 0 {
		t.Fatalf("trace %+v", tr)
	}
	// A dead letter's id leads to the same trace.
	var tr2 protocol.HTTPTrace
	a.ok("GET", "/v1/messages/"+tr.DeadLetter[0].OffsetMsgID+"/trace", nil, 200, &tr2)
	if tr2.Message.CommitlogOffset != tr.Message.CommitlogOffset || len(tr2.Retries) != 2 {
		t.Fatalf("trace by dead-letter id %+v", tr2)
	}

	var dl struct {
		DeadLetters []dlq.DeadLetter `json:"dead_letters"`
	}
	a.ok("GET", "/v1/groups/billing/dlq", nil, 200, &dl)
	if len(dl.DeadLetters) != 1 || dl.DeadLetters[0].ResentAtMillis != 0 {
		t.Fatalf("dead letters before resend %+v", dl)
	}
	a.ok("POST", "/v1/groups/billing/dlq/resend", map[string]any{"all": true}, 200, nil)
	a.ok("GET", "/v1/groups/billing/dlq", nil, 200, &dl)
	// The resend is recorded at once; its copy is found by id once the
	// key index has it.
	waitFor(t, 10*time.Second, "the resent copy indexed", func() bool {
		a.ok("GET", "/v1/messages/"+id+"/trace", nil, 200, &tr)
		return len(tr.Resent) == 1
	})
	if d := dl.DeadLetters[0]; d.ResentTo != "topic" {
		t.Fatalf("dead letter after resend %+v", d)
	}
	a.ok("GET", "/v1/messages/"+id+"/trace", nil, 200, &tr)
	if len(tr.Resent) != 1 || tr.Resent[0].Topic != "pay" || tr.Resent[0].QueueOffset != 1 {
		t.Fatalf("resent %+v", tr.Resent)
	}
	a.fails("GET", "/v1/messages/NOSUCHID/trace", nil, 404, 22)
}

// TestAPITraceDelayed: a delayed message's trace shows the copy waiting in
// the schedule topic and its destination.
func TestAPITraceDelayed(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "later"}, 201, nil)
	res := a.produce("later", map[string]any{"body": "x", "deliver_at_ms": time.Now().Add(time.Hour).UnixMilli()})
	var tr protocol.HTTPTrace
	waitFor(t, 10*time.Second, "the message indexed", func() bool {
		r := a.do("GET", "/v1/messages/"+res.Results[0].MsgID+"/trace", nil, "")
		if r.status != 200 {
			return false
		}
		a.ok("GET", "/v1/messages/"+res.Results[0].MsgID+"/trace", nil, 200, &tr)
		return true
	})
	if tr.Scheduled == nil || tr.Scheduled.Topic != protocol.TimerTopic || tr.Scheduled.SystemProperties["REAL_TOPIC"] != "later" {
		t.Fatalf("trace %+v", tr)
	}
}

// TestAPIMessageResend resends a stored message to one group (its retry
// topic) and to its topic.
func TestAPIMessageResend(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "orders", "read_queues": 1, "write_queues": 1}, 201, nil)
	a.ok("POST", "/v1/groups", map[string]any{"name": "ship"}, 201, nil)
	res := a.produce("orders", map[string]any{"body": "o1", "keys": []string{"k1"}})
	id := res.Results[0].MsgID
	m := a.receiveOne("ship", "orders")
	a.ok("POST", "/v1/groups/ship/ack", map[string]any{"receipt_handles": []string{m.ReceiptHandle}}, 200, nil)

	var out struct {
		Topic       string `json:"topic"`
		QueueOffset int64  `json:"queue_offset"`
	}
	waitFor(t, 10*time.Second, "the message indexed", func() bool {
		return a.do("GET", "/v1/messages/"+id, nil, "").status == 200
	})
	a.ok("POST", "/v1/messages/"+id+"/resend", map[string]any{"group": "ship"}, 200, &out)
	if out.Topic != "%RETRY%ship" {
		t.Fatalf("resend to group: %+v", out)
	}
	m = a.receiveOne("ship", "orders")
	if m.MsgID != id || m.Body != "o1" || m.StoredTopic != "%RETRY%ship" {
		t.Fatalf("resent to the group %+v", m)
	}
	a.ok("POST", "/v1/groups/ship/ack", map[string]any{"receipt_handles": []string{m.ReceiptHandle}}, 200, nil)
	a.ok("POST", "/v1/messages/"+id+"/resend", nil, 200, &out)
	if out.Topic != "orders" || out.QueueOffset != 1 {
		t.Fatalf("resend to topic: %+v", out)
	}
	a.fails("POST", "/v1/messages/"+id+"/resend", map[string]any{"group": "nobody"}, 404, 26)
	a.fails("POST", "/v1/messages/"+id+"/resend", map[string]any{"grup": "x"}, 400, 1002)
	a.fails("POST", "/v1/messages/NOSUCH/resend", map[string]any{"group": "ship"}, 404, 22)
}

// TestAPIMessagesByTime searches a topic by store time across queues.
func TestAPIMessagesByTime(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "ticks", "read_queues": 2, "write_queues": 2}, 201, nil)
	before := time.Now().UnixMilli()
	for i := range 6 {
		a.produce("ticks", map[string]any{"body": fmt.Sprint("t", i), "queue_id": i % 2})
	}
	after := time.Now().UnixMilli()
	var got struct {
		Messages []apiMessage `json:"messages"`
	}
	waitFor(t, 10*time.Second, "six messages by time", func() bool {
		a.ok("GET", fmt.Sprintf("/v1/topics/ticks/messages?begin_ms=%d&end_ms=%d", before, after), nil, 200, &got)
		return len(got.Messages) == 6
	})
	for i := 1; i < len(got.Messages); i++ {
		if got.Messages[i].StoredAtMs < got.Messages[i-1].StoredAtMs {
			t.Fatalf("not oldest first: %+v", got.Messages)
		}
	}
	a.ok("GET", fmt.Sprintf("/v1/topics/ticks/messages?begin_ms=%d&max=2", before), nil, 200, &got)
	if len(got.Messages) != 2 {
		t.Fatalf("max=2: %d", len(got.Messages))
	}
	a.ok("GET", fmt.Sprintf("/v1/topics/ticks/messages?begin_ms=%d", after+60_000), nil, 200, &got)
	if len(got.Messages) != 0 {
		t.Fatalf("future range: %d", len(got.Messages))
	}
	a.fails("GET", "/v1/topics/ticks/messages", nil, 400, 1002)
	a.fails("GET", fmt.Sprintf("/v1/topics/ticks/messages?begin_ms=%d&end_ms=%d", after, before-1), nil, 400, 1002)
	a.fails("GET", "/v1/topics/nope/messages?begin_ms=0", nil, 404, 17)
}
