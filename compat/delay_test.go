package compat

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// clockSlack absorbs the millisecond truncation of stored and born
// timestamps when a delivery time is compared with a due time.
const clockSlack = 20 * time.Millisecond

// startLevelServer starts `ferry server` with the delay level table levels
// (kept across restarts).
func startLevelServer(t *testing.T, flush, levels string) *server {
	t.Helper()
	s := &server{name: "ferry server", dataDir: t.TempDir(), flush: flush, extra: []string{"--delay-levels", levels}}
	s.start(t)
	return s
}

// arrival is one delivery to a push consumer and the local time it came.
type arrival struct {
	at  time.Time
	msg *primitive.MessageExt
}

// arrivals is a push consumer handler that records every delivery with
// its receive time and answers with the result decide picks (success when
// decide is nil).
type arrivals struct {
	decide func(*primitive.MessageExt) consumer.ConsumeResult

	mu  sync.Mutex
	got map[string][]arrival // by body
}

func newArrivals(decide func(*primitive.MessageExt) consumer.ConsumeResult) *arrivals {
	return &arrivals{decide: decide, got: map[string][]arrival{}}
}

func (a *arrivals) handle(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	now := time.Now()
	res := consumer.ConsumeSuccess
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range msgs {
		a.got[string(m.Body)] = append(a.got[string(m.Body)], arrival{at: now, msg: m})
		if a.decide != nil && a.decide(m) == consumer.ConsumeRetryLater {
			res = consumer.ConsumeRetryLater
		}
	}
	return res, nil
}

// of returns the deliveries of body so far, in arrival order.
func (a *arrivals) of(body string) []arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]arrival(nil), a.got[body]...)
}

func (a *arrivals) n(body string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.got[body])
}

// hasAll reports whether every body has arrived at least once.
func (a *arrivals) hasAll(bodies []string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range bodies {
		if len(a.got[b]) == 0 {
			return false
		}
	}
	return true
}

func (a *arrivals) missing(bodies []string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, b := range bodies {
		if len(a.got[b]) == 0 {
			out = append(out, b)
		}
	}
	return out
}

// warmUp sends one plain message to topic and waits until the consumer
// behind a has it: from then on the consumer pulls the topic's queues, so
// a late delivery is the broker's doing, not the client's rebalance.
func warmUp(t *testing.T, p interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
}, a *arrivals, topic string) {
	t.Helper()
	body := unique("warm-up")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body))); err != nil {
		t.Fatalf("send warm-up: %v", err)
	}
	waitFor(t, receiveTimeout, func() bool { return a.n(body) > 0 }, "warm-up message on %s never arrived", topic)
}

// checkNotEarly fails the test if a delivery came before due, or absurdly
// late (the consumer was pulling already). It returns the lag.
func checkNotEarly(t *testing.T, what string, got arrival, due time.Time, late time.Duration) time.Duration {
	t.Helper()
	lag := got.at.Sub(due)
	switch {
	case lag < -clockSlack:
		t.Errorf("%s arrived %v before it was due (born %d, due %d, received %d)",
			what, -lag, got.msg.BornTimestamp, due.UnixMilli(), got.at.UnixMilli())
	case lag > late:
		t.Errorf("%s arrived %v after it was due; want within %v", what, lag, late)
	}
	return lag
}

// TestDelayLevelsAndTimers sends messages with delay levels (one past the
// end of the table, which the broker caps at the last level) and with a
// delivery timestamp, and checks that each arrives once, intact, on its
// own topic, no earlier than born + delay.
func TestDelayLevelsAndTimers(t *testing.T) {
	t.Parallel()
	levels := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second}
	s := startLevelServer(t, "async", "500ms 1s 2s 3s")
	const topic = "Delayed"
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 2)
	p := newProducer(t, s.NameSrv)
	a := newArrivals(nil)
	startPushConsumer(t, s.NameSrv, unique("cg-delay"), topic, "*", a.handle)
	warmUp(t, p, a, topic)

	type sent struct {
		body  string
		delay time.Duration // from born; 0 for timers
		at    time.Time     // delivery time of a timer message
		msgID string
	}
	var all []sent
	for _, level := range []int{1, 2, 3, 4, 9} {
		body := fmt.Sprintf("level-%d", level)
		m := primitive.NewMessage(topic, []byte(body)).WithDelayTimeLevel(level)
		res := sendSync(t, p, m)
		all = append(all, sent{body: body, delay: levels[min(level, len(levels))-1], msgID: res.MsgID})
	}
	at := time.Now().Add(1500 * time.Millisecond)
	m := primitive.NewMessage(topic, []byte("timer")).WithDelayTimestamp(at)
	res := sendSync(t, p, m)
	all = append(all, sent{body: "timer", at: time.UnixMilli(at.UnixMilli()), msgID: res.MsgID})
	// Without the client helper: the property itself, 2 s ahead.
	at2 := time.Now().Add(2 * time.Second)
	m = primitive.NewMessage(topic, []byte("timer-prop"))
	m.WithProperty(primitive.PropertyTimerDeliverMS, strconv.FormatInt(at2.UnixMilli(), 10))
	res = sendSync(t, p, m)
	all = append(all, sent{body: "timer-prop", at: time.UnixMilli(at2.UnixMilli()), msgID: res.MsgID})

	bodies := make([]string, len(all))
	for i, x := range all {
		bodies[i] = x.body
	}
	if !poll(receiveTimeout, func() bool { return a.hasAll(bodies) }) {
		t.Fatalf("delayed messages never arrived: %v", a.missing(bodies))
	}
	for _, x := range all {
		got := a.of(x.body)
		first := got[0]
		due := x.at
		if x.delay > 0 {
			due = time.UnixMilli(first.msg.BornTimestamp).Add(x.delay)
		}
		lag := checkNotEarly(t, x.body, first, due, 10*time.Second)
		t.Logf("%s: arrived %v after due", x.body, lag.Round(time.Millisecond))
		if first.msg.Topic != topic {
			t.Errorf("%s: delivered on topic %q, want %q", x.body, first.msg.Topic, topic)
		}
		if first.msg.MsgId != x.msgID {
			t.Errorf("%s: delivered with msgId %s, sent as %s", x.body, first.msg.MsgId, x.msgID)
		}
		if first.msg.ReconsumeTimes != 0 {
			t.Errorf("%s: reconsumeTimes %d, want 0", x.body, first.msg.ReconsumeTimes)
		}
		if len(got) > 1 {
			t.Errorf("%s delivered %d times", x.body, len(got))
		}
	}
}

// TestDelayRestartDeliversPending restarts the broker (SIGTERM, same data
// directory and ports) while delayed messages of a level and of the timer
// wait, after another level's messages were delivered; every message
// arrives afterwards, none before it was due. Duplicates are allowed (the
// scheduler saves its progress periodically) but reported.
func TestDelayRestartDeliversPending(t *testing.T) {
	t.Parallel()
	const long = 6 * time.Second
	s := startLevelServer(t, "async", "500ms 1s 2s 3s 6s")
	const topic, n = "DelayedRestart", 20
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 4)
	p := newProducer(t, s.NameSrv)
	a := newArrivals(nil)
	startPushConsumer(t, s.NameSrv, unique("cg-delay-restart"), topic, "*", a.handle)
	warmUp(t, p, a, topic)

	short := bodiesOf("short", n) // level 1: delivered before the restart
	for _, b := range short {
		sendSync(t, p, primitive.NewMessage(topic, []byte(b)).WithDelayTimeLevel(1))
	}
	pendingLevel := bodiesOf("level", n) // level 5: pending across the restart
	pendingTimer := bodiesOf("timer", n) // timer: pending across the restart
	firstDue := time.Now().Add(long)
	timerAt := map[string]time.Time{}
	for i := range n {
		sendSync(t, p, primitive.NewMessage(topic, []byte(pendingLevel[i])).WithDelayTimeLevel(5))
		at := time.Now().Add(long)
		timerAt[pendingTimer[i]] = time.UnixMilli(at.UnixMilli())
		sendSync(t, p, primitive.NewMessage(topic, []byte(pendingTimer[i])).WithDelayTimestamp(at))
	}
	if !poll(receiveTimeout, func() bool { return a.hasAll(short) }) {
		t.Fatalf("level-1 messages never arrived before the restart: %v", a.missing(short))
	}
	if !s.p.stop(t) {
		t.Fatalf("%s did not stop on SIGTERM", s.name)
	}
	if stopped := time.Now(); !stopped.Before(firstDue) {
		t.Fatalf("the broker stopped %v after the first pending message was due; the test needs a longer delay",
			stopped.Sub(firstDue))
	}
	for _, b := range append(append([]string(nil), pendingLevel...), pendingTimer...) {
		if c := a.n(b); c > 0 {
			t.Fatalf("%s arrived before the restart, %v before due", b, time.Until(firstDue))
		}
	}
	s.start(t)
	restarted := time.Now()

	want := append(append(append([]string(nil), short...), pendingLevel...), pendingTimer...)
	if !poll(receiveTimeout, func() bool { return a.hasAll(want) }) {
		t.Fatalf("lost across the restart: %v", a.missing(want))
	}
	t.Logf("all %d pending messages arrived %v after the restart", 2*n, time.Since(restarted).Round(time.Millisecond))
	// The lag splits into the broker's (the re-put's store time) and the
	// client's (reconnecting and pulling again after the restart). The
	// client's can reach 30 s: a pull it sent on the connection the
	// stopping broker closed is not failed when the connection goes, only
	// at the pull's own timeout.
	var maxLag, maxPutLag time.Duration
	check := func(b string, due time.Time) {
		got := a.of(b)[0]
		maxLag = max(maxLag, checkNotEarly(t, b, got, due, receiveTimeout))
		maxPutLag = max(maxPutLag, time.UnixMilli(got.msg.StoreTimestamp).Sub(due))
	}
	for _, b := range pendingLevel {
		check(b, time.UnixMilli(a.of(b)[0].msg.BornTimestamp).Add(long))
	}
	for _, b := range pendingTimer {
		check(b, timerAt[b])
	}
	t.Logf("pending messages were put back at most %v and arrived at most %v after due",
		maxPutLag.Round(time.Millisecond), maxLag.Round(time.Millisecond))
	var dups []string
	for _, b := range want {
		if c := a.n(b); c > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", b, c))
		}
	}
	sort.Strings(dups)
	t.Logf("duplicates across the restart: %d %v", len(dups), dups)
}
