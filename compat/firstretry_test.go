package compat

import (
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestFirstRetryOfNewGroup: a group that has never consumed before gets
// its first retry at the first retry level (10 s), not after the client's
// 30 s route refresh. The broker creates %RETRY%<group> on the group's
// first heartbeat and tells the name servers before it answers, so the
// client's route lookup that follows its start finds it.
func TestFirstRetryOfNewGroup(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, body = "FirstRetry", "fail once"
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 1)
	group := unique("cg-first-retry")
	p := newProducer(t, s.NameSrv)
	a := newArrivals(func(m *primitive.MessageExt) consumer.ConsumeResult {
		if m.ReconsumeTimes == 0 {
			return consumer.ConsumeRetryLater
		}
		return consumer.ConsumeSuccess
	})
	startPushConsumer(t, s.NameSrv, group, topic, "*", a.handle)
	sendSync(t, p, primitive.NewMessage(topic, []byte(body)))
	waitFor(t, receiveTimeout, func() bool { return a.n(body) >= 2 }, "the failed message was never retried")
	got := a.of(body)
	gap := got[1].at.Sub(got[0].at)
	const level3 = 10 * time.Second
	t.Logf("first retry of a new group %v after the failure (level 3: %v)", gap.Round(time.Millisecond), level3)
	if gap < level3-clockSlack || gap > level3+retryLate {
		t.Errorf("first retry came %v after the failure; want about %v (at most %v)", gap, level3, level3+retryLate)
	}
}

// TestConsumerStartsRightAfterFirstSend: the first send to a new topic
// creates it, and the broker tells the name server before it answers, so a
// push consumer started right after finds its route (Start used to fail
// with "route info not found") and gets the message.
func TestConsumerStartsRightAfterFirstSend(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	topic, body := unique("AutoCreated"), "first"
	p := newProducer(t, s.NameSrv)
	sendSync(t, p, primitive.NewMessage(topic, []byte(body)))
	a := newArrivals(nil)
	startPushConsumer(t, s.NameSrv, unique("cg-right-after"), topic, "*", a.handle)
	waitFor(t, receiveTimeout, func() bool { return a.n(body) == 1 }, "the first message of an auto-created topic never arrived")
}
