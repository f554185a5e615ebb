package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// A compressed delay level table: the n-th retry waits at level 3+n-1,
// 300 ms … 1.8 s here instead of 10 s … 2 h, so the whole 1 + 16
// deliveries take about 17 s.
const retryLevelTable = "100ms 200ms 300ms 400ms 500ms 600ms 700ms 800ms 900ms 1s 1100ms 1200ms 1300ms 1400ms 1500ms 1600ms 1700ms 1800ms"

// retryLevel is the delay of level n (1-based) of retryLevelTable.
func retryLevel(n int) time.Duration { return time.Duration(n) * 100 * time.Millisecond }

// retryLate bounds how much longer than its level a retry may take on a
// busy machine: a long-polling consumer gets it as soon as it is due.
const retryLate = 3 * time.Second

// Ferry's operator requests (broker.ReqFerryDLQList, ReqFerryDLQResend).
const (
	reqDLQList   int16 = 1001
	reqDLQResend int16 = 1002
)

// deadLetter is an entry of the DLQ list answer.
type deadLetter struct {
	QueueOffset    int64  `json:"queue_offset"`
	MsgID          string `json:"msg_id"`
	OriginMsgID    string `json:"origin_msg_id"`
	Topic          string `json:"topic"`
	Keys           string `json:"keys"`
	ReconsumeTimes int32  `json:"reconsume_times"`
	BodySize       int    `json:"body_size"`
}

// listDLQ asks the broker for group's dead letters (from the first).
func listDLQ(t *testing.T, cl *remoting.Client, broker, group string) []deadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, broker, remoting.NewRequest(reqDLQList,
		map[string]string{"group": group, "from": "0", "max": "100"}, nil))
	if err != nil {
		t.Fatalf("DLQ list: %v", err)
	}
	if resp.Code != protocol.RespSuccess {
		t.Fatalf("DLQ list: code %d: %s", resp.Code, resp.Remark)
	}
	var out struct {
		Group       string       `json:"group"`
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		t.Fatalf("DLQ list: %v in %q", err, resp.Body)
	}
	if out.Group != group {
		t.Fatalf("DLQ list: answer for group %q, asked for %q", out.Group, group)
	}
	return out.DeadLetters
}

// isWarmUp tells the retry warm-up messages apart.
func isWarmUp(m *primitive.MessageExt) bool {
	return strings.HasPrefix(string(m.Body), "warm-up-retry")
}

// warmUpRetry sends a message that the handler fails once (see isWarmUp)
// and waits for its retry: from then on the consumer pulls the group's
// retry queue, so retry spacing measures the broker, not the client's
// rebalance.
func warmUpRetry(t *testing.T, p interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
}, a *arrivals, topic string) {
	t.Helper()
	body := unique("warm-up-retry")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body))); err != nil {
		t.Fatalf("send warm-up: %v", err)
	}
	start := time.Now()
	waitFor(t, receiveTimeout, func() bool { return a.n(body) >= 2 }, "the warm-up message on %s was never retried", topic)
	t.Logf("warm-up: retry queue consumed after %v", time.Since(start).Round(time.Millisecond))
}

// checkRetries checks the deliveries of one message that was failed each
// time: reconsumeTimes 0, 1, …, shown on the real topic with the first
// msgId, and each retry at least its level's delay after the failure
// before it, and not much more.
func checkRetries(t *testing.T, got []arrival, topic, msgID string) {
	t.Helper()
	var gaps []string
	for i, d := range got {
		m := d.msg
		if m.ReconsumeTimes != int32(i) {
			t.Errorf("delivery %d: reconsumeTimes %d, want %d", i+1, m.ReconsumeTimes, i)
		}
		if m.Topic != topic {
			t.Errorf("delivery %d: topic %q, want %q", i+1, m.Topic, topic)
		}
		if m.MsgId != msgID {
			t.Errorf("delivery %d: msgId %s, want %s", i+1, m.MsgId, msgID)
		}
		if i == 0 {
			continue
		}
		if o := m.GetProperty(primitive.PropertyOriginMessageId); o != msgID {
			t.Errorf("delivery %d: %s = %q, want %s", i+1, primitive.PropertyOriginMessageId, o, msgID)
		}
		if r := m.GetProperty(primitive.PropertyRetryTopic); r != topic {
			t.Errorf("delivery %d: %s = %q, want %s", i+1, primitive.PropertyRetryTopic, r, topic)
		}
		level := 3 + i - 1 // the i-th retry follows a failure at reconsumeTimes i-1
		want := retryLevel(level)
		gap := d.at.Sub(got[i-1].at)
		switch {
		case gap < want-clockSlack:
			t.Errorf("retry %d (level %d, %v) came %v after the failure before it: too early", i, level, want, gap)
		case gap > want+retryLate:
			t.Errorf("retry %d (level %d, %v) came %v after the failure before it: want within %v", i, level, want, gap, want+retryLate)
		}
		gaps = append(gaps, fmt.Sprintf("%d:%v/%v", i, gap.Round(time.Millisecond), want))
	}
	t.Logf("retry gaps (retry:measured/level): %s", strings.Join(gaps, " "))
}

// TestRetryUntilDLQ fails a message every time: the official push
// consumer gets it 1 + 16 times, spaced by the (compressed) delay levels,
// then it sits in %DLQ%<group>, where the pull consumer and Ferry's DLQ
// list see it, and from where a resend puts it back on its topic.
func TestRetryUntilDLQ(t *testing.T) {
	t.Parallel()
	s := startLevelServer(t, "async", retryLevelTable)
	const topic, body = "RetryToDLQ", "doomed"
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 1)
	group := unique("cg-retry-dlq")
	p := newProducer(t, s.NameSrv)
	a := newArrivals(func(m *primitive.MessageExt) consumer.ConsumeResult {
		if isWarmUp(m) && m.ReconsumeTimes > 0 {
			return consumer.ConsumeSuccess
		}
		return consumer.ConsumeRetryLater
	})
	c := startPushConsumer(t, s.NameSrv, group, topic, "*", a.handle)
	warmUpRetry(t, p, a, topic)

	sent := time.Now()
	res := sendSync(t, p, primitive.NewMessage(topic, []byte(body)).WithKeys([]string{"doomed-key"}))
	const deliveries = 1 + 16
	waitFor(t, receiveTimeout, func() bool { return a.n(body) >= deliveries },
		"%d deliveries of a failing message (got %d)", deliveries, a.n(body))
	t.Logf("%d deliveries in %v", deliveries, time.Since(sent).Round(time.Millisecond))
	checkRetries(t, a.of(body), topic, res.MsgID)

	// The 17th failure sends it to the DLQ.
	cl := newRemotingClient(t)
	var dls []deadLetter
	waitFor(t, receiveTimeout, func() bool {
		dls = listDLQ(t, cl, s.Broker, group)
		return len(dls) > 0
	}, "no dead letter listed for %s", group)
	if len(dls) != 1 {
		t.Fatalf("DLQ list: %d dead letters, want 1: %+v", len(dls), dls)
	}
	dl := dls[0]
	if dl.MsgID != res.MsgID || dl.Topic != topic || dl.ReconsumeTimes != deliveries || dl.Keys != "doomed-key" || dl.BodySize != len(body) {
		t.Errorf("dead letter %+v; want msg_id %s, topic %s, reconsume_times %d, keys doomed-key, body_size %d",
			dl, res.MsgID, topic, deliveries, len(body))
	}
	// … and never to the group again.
	last := a.of(body)[deliveries-1].at
	if poll(time.Until(last.Add(retryLevel(18)+retryLate)), func() bool { return a.n(body) > deliveries }) {
		t.Errorf("delivered %d times; want %d, then the DLQ", a.n(body), deliveries)
	}
	c.stop()

	// The DLQ is an ordinary readable topic.
	dlqTopic := "%DLQ%" + group
	waitRoute(t, s.NameSrv, dlqTopic, 1)
	pc := startPullConsumer(t, s.NameSrv, unique("cg-dlq-reader"), dlqTopic)
	var dead *primitive.MessageExt
	waitFor(t, receiveTimeout, func() bool {
		ctx := context.Background()
		cr, err := pc.Poll(ctx, 2*time.Second)
		if err != nil {
			return false
		}
		for _, m := range cr.GetMsgList() {
			if string(m.Body) == body {
				dead = m
			}
		}
		pc.ACK(ctx, cr, consumer.ConsumeSuccess)
		return dead != nil
	}, "pull consumer read nothing from %s", dlqTopic)
	if dead.MsgId != res.MsgID || dead.ReconsumeTimes != deliveries || dead.GetKeys() != "doomed-key" {
		t.Errorf("pulled from the DLQ: msgId %s, reconsumeTimes %d, keys %q; want %s, %d, doomed-key",
			dead.MsgId, dead.ReconsumeTimes, dead.GetKeys(), res.MsgID, deliveries)
	}
	if r := dead.GetProperty(primitive.PropertyRetryTopic); r != topic {
		t.Errorf("pulled from the DLQ: %s = %q, want %s", primitive.PropertyRetryTopic, r, topic)
	}

	// Resent to its topic, it is a fresh message there: a new group reads
	// the original and, after it, the resent copy.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, s.Broker, remoting.NewRequest(reqDLQResend,
		map[string]string{"group": group, "target": "topic", "offsets": strconv.FormatInt(dl.QueueOffset, 10)}, nil))
	if err != nil {
		t.Fatalf("DLQ resend: %v", err)
	}
	var resent struct {
		Resent int `json:"resent"`
	}
	if resp.Code != protocol.RespSuccess || json.Unmarshal(resp.Body, &resent) != nil || resent.Resent != 1 {
		t.Fatalf("DLQ resend: code %d %q, body %q; want 1 resent", resp.Code, resp.Remark, resp.Body)
	}
	fresh := newArrivals(nil)
	startPushConsumer(t, s.NameSrv, unique("cg-after-dlq"), topic, "*", fresh.handle)
	waitFor(t, receiveTimeout, func() bool { return fresh.n(body) >= 2 },
		"a fresh group got %d copies of %s; want the original and the resent one", fresh.n(body), body)
	copies := fresh.of(body)
	orig, again := copies[0].msg, copies[1].msg
	if orig.QueueOffset > again.QueueOffset {
		orig, again = again, orig
	}
	if orig.QueueOffset != res.QueueOffset || again.QueueOffset <= orig.QueueOffset {
		t.Errorf("queue offsets: original %d (sent at %d), resent %d", orig.QueueOffset, res.QueueOffset, again.QueueOffset)
	}
	if again.MsgId != res.MsgID || again.ReconsumeTimes != 0 || again.Topic != topic || again.GetKeys() != "doomed-key" {
		t.Errorf("resent copy: msgId %s, reconsumeTimes %d, topic %s, keys %q; want %s, 0, %s, doomed-key",
			again.MsgId, again.ReconsumeTimes, again.Topic, again.GetKeys(), res.MsgID, topic)
	}
	if poll(3*time.Second, func() bool { return fresh.n(body) > 2 }) {
		t.Errorf("a fresh group got %d copies of %s; want 2", fresh.n(body), body)
	}
}

// TestRetrySucceedsOnThirdTry fails a message twice and accepts it the
// third time: exactly three deliveries, spaced by levels 3 and 4, and
// nothing in the DLQ.
func TestRetrySucceedsOnThirdTry(t *testing.T) {
	t.Parallel()
	s := startLevelServer(t, "async", retryLevelTable)
	const topic, body = "RetryThird", "third time lucky"
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 2)
	group := unique("cg-retry-third")
	p := newProducer(t, s.NameSrv)
	a := newArrivals(func(m *primitive.MessageExt) consumer.ConsumeResult {
		if isWarmUp(m) {
			if m.ReconsumeTimes > 0 {
				return consumer.ConsumeSuccess
			}
			return consumer.ConsumeRetryLater
		}
		if m.ReconsumeTimes < 2 {
			return consumer.ConsumeRetryLater
		}
		return consumer.ConsumeSuccess
	})
	startPushConsumer(t, s.NameSrv, group, topic, "*", a.handle)
	warmUpRetry(t, p, a, topic)

	res := sendSync(t, p, primitive.NewMessage(topic, []byte(body)))
	waitFor(t, receiveTimeout, func() bool { return a.n(body) >= 3 }, "3 deliveries (got %d)", a.n(body))
	checkRetries(t, a.of(body), topic, res.MsgID)
	// A fourth delivery would come within level 5 (or a redelivery of an
	// unacknowledged pull) — wait well past both.
	last := a.of(body)[2].at
	if poll(time.Until(last.Add(retryLevel(5)+2*retryLate)), func() bool { return a.n(body) > 3 }) {
		t.Errorf("delivered %d times; want 3", a.n(body))
	}
	if dls := listDLQ(t, newRemotingClient(t), s.Broker, group); len(dls) != 0 {
		t.Errorf("DLQ of %s holds %+v; want nothing", group, dls)
	}
}
