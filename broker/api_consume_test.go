package broker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// fastDelays is a compressed delay table: every level is 20ms.
func fastDelays(c *Config) { c.DelayLevels = strings.TrimSpace(strings.Repeat("20ms ", 18)) }

type received struct {
	Messages []apiMessage `json:"messages"`
}

type settled struct {
	Acked  int `json:"acked"`
	Nacked int `json:"nacked"`
	Failed []struct {
		ReceiptHandle string  `json:"receipt_handle"`
		Error         problem `json:"error"`
	} `json:"failed"`
}

type lagAnswer struct {
	Rows  []protocol.HTTPLagRow `json:"rows"`
	Total int64                 `json:"total"`
}

func (a *apiClient) receive(group string, req map[string]any) []apiMessage {
	a.t.Helper()
	var got received
	a.ok("POST", "/v1/groups/"+group+"/receive", req, 200, &got)
	return got.Messages
}

// receiveOne polls receive until one message comes back.
func (a *apiClient) receiveOne(group, topic string) apiMessage {
	a.t.Helper()
	var msgs []apiMessage
	waitFor(a.t, 10*time.Second, "a message for "+group, func() bool {
		msgs = a.receive(group, map[string]any{"topic": topic, "max": 1, "wait_ms": 200})
		return len(msgs) > 0
	})
	return msgs[0]
}

func TestAPIReceiveAckNack(t *testing.T) {
	_, a := testHTTPBroker(t, fastDelays)
	a.ok("POST", "/v1/topics", map[string]any{"name": "jobs", "read_queues": 2, "write_queues": 2}, 201, nil)
	a.ok("POST", "/v1/groups", map[string]any{"name": "workers"}, 201, nil)
	for i := 0; i < 4; i++ {
		a.produce("jobs", map[string]any{"body": fmt.Sprint("job", i), "queue_id": i % 2, "tags": []string{"A", "B"}[i/2]})
	}
	// Receive all four, in two calls.
	var got []apiMessage
	waitFor(t, 10*time.Second, "4 messages", func() bool {
		got = append(got, a.receive("workers", map[string]any{"topic": "jobs", "max": 3})...)
		return len(got) >= 4
	})
	if len(got) != 4 {
		t.Fatalf("received %d", len(got))
	}
	seen := map[string]bool{}
	for _, m := range got {
		if m.ReceiptHandle == "" || seen[m.Body] {
			t.Fatalf("message %+v (seen %v)", m, seen)
		}
		seen[m.Body] = true
	}
	// Nothing left; in flight shows in the lag.
	if more := a.receive("workers", map[string]any{"topic": "jobs"}); len(more) != 0 {
		t.Fatalf("received %d more", len(more))
	}
	var lag lagAnswer
	a.ok("GET", "/v1/groups/workers/lag", nil, 200, &lag)
	inflight := 0
	for _, r := range lag.Rows {
		if r.Topic == "jobs" {
			inflight += r.Inflight
		}
	}
	if inflight != 4 || lag.Total != 4 {
		t.Fatalf("lag %+v", lag)
	}

	// Ack three; acking one twice fails the second time; a garbage handle fails.
	var s settled
	a.ok("POST", "/v1/groups/workers/ack", map[string]any{"receipt_handles": []string{got[0].ReceiptHandle, got[1].ReceiptHandle, got[2].ReceiptHandle}}, 200, &s)
	if s.Acked != 3 || len(s.Failed) != 0 {
		t.Fatalf("ack %+v", s)
	}
	// A forged handle (a genuine one with another queue offset) is
	// invalid, not expired.
	raw, err := base64.RawURLEncoding.DecodeString(got[3].ReceiptHandle)
	if err != nil {
		t.Fatal(err)
	}
	raw[9]++
	forged := base64.RawURLEncoding.EncodeToString(raw)
	a.ok("POST", "/v1/groups/workers/ack", map[string]any{"receipt_handles": []string{got[0].ReceiptHandle, "garbage", forged}}, 200, &s)
	if s.Acked != 0 || len(s.Failed) != 3 || s.Failed[0].Error.Code != 1006 || s.Failed[0].Error.Status != 409 || s.Failed[1].Error.Code != 1005 ||
		s.Failed[2].Error.Code != 1005 || s.Failed[2].Error.Title != "invalid receipt handle" || !strings.Contains(s.Failed[2].Error.Detail, "not issued by this broker") {
		t.Fatalf("second ack %+v", s)
	}
	a.ok("GET", "/v1/groups/workers/lag", nil, 200, &lag)
	if lag.Total != 1 {
		t.Fatalf("lag after 3 acks %+v", lag)
	}

	// Nack the fourth: it comes back from the retry topic, reconsumed once,
	// showing its own topic.
	last := got[3]
	a.ok("POST", "/v1/groups/workers/nack", map[string]any{"receipt_handles": []string{last.ReceiptHandle}}, 200, &s)
	if s.Nacked != 1 || len(s.Failed) != 0 {
		t.Fatalf("nack %+v", s)
	}
	back := a.receiveOne("workers", "jobs")
	if back.Body != last.Body || back.MsgID != last.MsgID || back.ReconsumeTimes != 1 || back.Topic != "jobs" || back.StoredTopic != "%RETRY%workers" {
		t.Fatalf("retried message %+v", back)
	}
	// Let its visibility run out: it comes back again, reconsumed twice.
	a.ok("POST", "/v1/groups/workers/nack", map[string]any{"receipt_handles": []string{back.ReceiptHandle}}, 200, &s)
	var again apiMessage
	waitFor(t, 10*time.Second, "redelivery", func() bool {
		msgs := a.receive("workers", map[string]any{"topic": "jobs", "max": 1, "visibility_ms": 100})
		if len(msgs) == 1 {
			again = msgs[0]
		}
		return len(msgs) == 1
	})
	expired := again
	waitFor(t, 10*time.Second, "redelivery after the visibility timeout", func() bool {
		msgs := a.receive("workers", map[string]any{"topic": "jobs", "max": 1, "wait_ms": 100})
		if len(msgs) == 1 {
			again = msgs[0]
		}
		return len(msgs) == 1
	})
	if again.Body != last.Body || again.ReconsumeTimes != expired.ReconsumeTimes+1 {
		t.Fatalf("after expiry %+v (before %+v)", again, expired)
	}
	// The expired lease's handle no longer works.
	a.ok("POST", "/v1/groups/workers/ack", map[string]any{"receipt_handles": []string{expired.ReceiptHandle}}, 200, &s)
	if s.Acked != 0 || len(s.Failed) != 1 || s.Failed[0].Error.Code != 1006 {
		t.Fatalf("ack of an expired lease %+v", s)
	}
	a.ok("POST", "/v1/groups/workers/ack", map[string]any{"receipt_handles": []string{again.ReceiptHandle}}, 200, &s)
	if s.Acked != 1 {
		t.Fatalf("final ack %+v", s)
	}
	waitFor(t, 5*time.Second, "lag 0", func() bool {
		a.ok("GET", "/v1/groups/workers/lag", nil, 200, &lag)
		return lag.Total == 0
	})

	// A tag filter skips other tags; a long poll wakes on a produce.
	a.produce("jobs", map[string]any{"body": "b-tag", "tags": "B", "queue_id": 0})
	a.produce("jobs", map[string]any{"body": "a-tag", "tags": "A", "queue_id": 0})
	m := func() apiMessage {
		var msgs []apiMessage
		waitFor(t, 10*time.Second, "tagged", func() bool {
			msgs = a.receive("workers", map[string]any{"topic": "jobs", "tag": "A", "wait_ms": 100})
			return len(msgs) > 0
		})
		return msgs[0]
	}()
	if m.Body != "a-tag" {
		t.Fatalf("tag filter gave %+v", m)
	}
	a.ok("POST", "/v1/groups/workers/ack", map[string]any{"receipt_handles": []string{m.ReceiptHandle}}, 200, nil)
	done := make(chan []apiMessage, 1)
	go func() {
		var got received
		r := a.do("POST", "/v1/groups/workers/receive", map[string]any{"topic": "jobs", "wait_ms": 20000}, "")
		if r.status == 200 {
			_ = json.Unmarshal(r.body, &got)
		}
		done <- got.Messages
	}()
poll:
	for i := 0; ; i++ {
		a.produce("jobs", map[string]any{"body": fmt.Sprint("late", i)})
		select {
		case msgs := <-done:
			if len(msgs) == 0 || !strings.HasPrefix(msgs[0].Body, "late") {
				t.Fatalf("long-poll receive %+v", msgs)
			}
			break poll
		case <-time.After(50 * time.Millisecond):
		}
	}
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{}, 400, 1002)
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{"topic": "jobs", "max": -1}, 400, 1002)
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{"topic": "jobs", "max": 1001}, 400, 1002)
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{"topic": "jobs", "visibility_ms": 1}, 400, 1002)
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{"topic": "jobs", "wait_ms": -1}, 400, 1002)
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{"topic": "nope"}, 404, 17)
	a.fails("POST", "/v1/groups/bad%20group/receive", map[string]any{"topic": "jobs"}, 400, 1009)
	a.fails("POST", "/v1/groups/workers/ack", map[string]any{"receipt_handles": []string{}}, 400, 1002)
	a.fails("POST", "/v1/groups/nogroup/ack", map[string]any{"receipt_handles": []string{"x"}}, 404, 26)
	a.fails("POST", "/v1/groups/nogroup/nack", map[string]any{"receipt_handles": []string{"x"}}, 404, 26)
	a.ok("PUT", "/v1/groups/workers", map[string]any{"consume_enable": false}, 200, nil)
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{"topic": "jobs"}, 403, 16)
	a.ok("PUT", "/v1/broker/config", map[string]any{"auto_create_group": false}, 200, nil)
	a.fails("POST", "/v1/groups/unknown/receive", map[string]any{"topic": "jobs"}, 404, 26)
	a.ok("PUT", "/v1/topics/jobs", map[string]any{"perm": "w"}, 200, nil)
	a.ok("PUT", "/v1/groups/workers", map[string]any{"consume_enable": true}, 200, nil)
	a.fails("POST", "/v1/groups/workers/receive", map[string]any{"topic": "jobs"}, 403, 16)
}

// TestAPIRetryToDLQ: produce → receive → nack ×17 → DLQ → resend, over
// HTTP alone, with a 20ms delay table.
func TestAPIRetryToDLQ(t *testing.T) {
	_, a := testHTTPBroker(t, fastDelays)
	a.ok("POST", "/v1/topics", map[string]any{"name": "pay", "read_queues": 1, "write_queues": 1}, 201, nil)
	a.ok("POST", "/v1/groups", map[string]any{"name": "billing"}, 201, nil)
	res := a.produce("pay", map[string]any{"body": "charge", "keys": []string{"order-7"}})
	id := res.Results[0].MsgID
	deliveries := 0
	for i := 0; i <= 16; i++ {
		m := a.receiveOne("billing", "pay")
		deliveries++
		if m.MsgID != id || m.Body != "charge" || m.ReconsumeTimes != int32(i) || m.Topic != "pay" {
			t.Fatalf("delivery %d: %+v", i, m)
		}
		var s settled
		a.ok("POST", "/v1/groups/billing/nack", map[string]any{"receipt_handles": []string{m.ReceiptHandle}}, 200, &s)
		if s.Nacked != 1 {
			t.Fatalf("nack %d: %+v", i, s)
		}
	}
	if deliveries != 17 {
		t.Fatalf("%d deliveries", deliveries)
	}
	var dl struct {
		DeadLetters []struct {
			QueueOffset    int64  `json:"queue_offset"`
			MsgID          string `json:"msg_id"`
			Topic          string `json:"topic"`
			ReconsumeTimes int32  `json:"reconsume_times"`
			OffsetMsgID    string `json:"offset_msg_id"`
			ResentTo       string `json:"resent_to"`
			ResentAtMS     int64  `json:"resent_at_ms"`
		} `json:"dead_letters"`
		Next int64 `json:"next"`
	}
	waitFor(t, 10*time.Second, "the dead letter", func() bool {
		a.ok("GET", "/v1/groups/billing/dlq?from=0&max=100", nil, 200, &dl)
		return len(dl.DeadLetters) == 1
	})
	if d := dl.DeadLetters[0]; d.MsgID != id || d.Topic != "pay" || d.ReconsumeTimes != 17 || dl.Next != 1 {
		t.Fatalf("dead letter %+v next %d", d, dl.Next)
	}
	// No further delivery: it is dead.
	if msgs := a.receive("billing", map[string]any{"topic": "pay", "wait_ms": 100}); len(msgs) != 0 {
		t.Fatalf("dead message delivered: %+v", msgs)
	}
	var rs map[string]int
	a.ok("POST", "/v1/groups/billing/dlq/resend", map[string]any{"offsets": []int64{0}, "target": "topic"}, 200, &rs)
	if rs["resent"] != 1 {
		t.Fatalf("resend %v", rs)
	}
	m := a.receiveOne("billing", "pay")
	if m.MsgID != id || m.Body != "charge" || m.ReconsumeTimes != 0 || m.StoredTopic != "" {
		t.Fatalf("resent message %+v", m)
	}
	a.ok("POST", "/v1/groups/billing/ack", map[string]any{"receipt_handles": []string{m.ReceiptHandle}}, 200, nil)
	// A dead letter is resent once: resending all again sends nothing, and
	// the listing says where it went.
	a.ok("POST", "/v1/groups/billing/dlq/resend", map[string]any{"all": true, "target": "retry"}, 200, &rs)
	if rs["resent"] != 0 || rs["skipped"] != 1 {
		t.Fatalf("resend all again %v", rs)
	}
	a.ok("GET", "/v1/groups/billing/dlq?from=0&max=100", nil, 200, &dl)
	if len(dl.DeadLetters) != 1 || dl.DeadLetters[0].ResentTo != "topic" || dl.DeadLetters[0].ResentAtMS == 0 || dl.DeadLetters[0].OffsetMsgID == "" {
		t.Fatalf("dead letters after a resend %+v", dl)
	}
	if msgs := a.receive("billing", map[string]any{"topic": "pay", "wait_ms": 100}); len(msgs) != 0 {
		t.Fatalf("a second resend delivered %+v", msgs)
	}
	a.fails("POST", "/v1/groups/billing/dlq/resend", map[string]any{"offsets": []int64{5}}, 400, 1002)
	a.fails("POST", "/v1/groups/billing/dlq/resend", map[string]any{}, 400, 1002)
	a.fails("POST", "/v1/groups/billing/dlq/resend", map[string]any{"all": true, "offsets": []int64{0}}, 400, 1002)
	a.fails("POST", "/v1/groups/billing/dlq/resend", map[string]any{"all": true, "target": "mars"}, 400, 1002)
	a.fails("POST", "/v1/groups/nobody/dlq/resend", map[string]any{"all": true}, 404, 26)
	a.fails("GET", "/v1/groups/nobody/dlq", nil, 404, 26)
	a.fails("GET", "/v1/groups/billing/dlq?max=0", nil, 400, 1002)
}
