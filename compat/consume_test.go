package compat

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/ferrymq/ferry/remoting"
)

// crcProperty is the property in which Ferry keeps each stored message's
// record checksum (protocol.CRCProperty in the main module; RocketMQ 5
// brokers add the same one). It is the only property the broker adds.
const crcProperty = "__CRC32#"

// clientLocalProps are properties the client adds to a message after
// pulling it; they never cross the wire.
var clientLocalProps = []string{
	primitive.PropertyMinOffset, primitive.PropertyMaxOffset, primitive.PropertyConsumeStartTime,
}

// TestPushConsumerSeesMessagesAsSent sends messages with tags, keys, user
// properties and binary and compressed bodies, and checks that a push
// consumer gets each one exactly as sent, field by field.
func TestPushConsumerSeesMessagesAsSent(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic = "Fields"
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 4)
	p := newProducer(t, s.NameSrv)

	big := bytes.Repeat([]byte("compressible "), 800) // > 4 KiB: the client zlib-compresses it
	binary := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0x01, 0x02, 0}
	cases := []struct {
		body  []byte
		tag   string
		keys  []string
		props map[string]string
	}{
		{body: []byte("plain")},
		{body: []byte("tagged"), tag: "TagA"},
		{body: []byte("keyed"), tag: "TagB", keys: []string{"order-1"}},
		{body: []byte("two keys"), keys: []string{"k1", "k2"}},
		{body: []byte("props"), tag: "TagC", props: map[string]string{"region": "eu", "tenant": "t-42", "empty-ish": " "}},
		{body: []byte("utf-8 ☃ ünïcödé"), tag: "Tag☃", keys: []string{"ключ"}, props: map[string]string{"città": "città"}},
		{body: binary, tag: "bin"},
		{body: big, tag: "big", props: map[string]string{"size": fmt.Sprint(len(big))}},
	}
	sent := map[string]*primitive.Message{} // UNIQ_KEY → message as sent
	for _, c := range cases {
		m := primitive.NewMessage(topic, c.body)
		if c.tag != "" {
			m.WithTag(c.tag)
		}
		if len(c.keys) > 0 {
			m.WithKeys(c.keys)
		}
		if c.props != nil {
			m.WithProperties(c.props)
		}
		res := sendSync(t, p, m)
		if res.MsgID == "" {
			t.Fatalf("%q: no MsgID", c.body)
		}
		sent[res.MsgID] = m
	}

	rec := &recorder{}
	startPushConsumer(t, s.NameSrv, "cg-fields", topic, "*", rec.handle)
	waitFor(t, receiveTimeout, func() bool { return rec.count() >= len(cases) }, "got %d of %d messages", rec.count(), len(cases))

	got := map[string]bool{}
	for _, m := range rec.all() {
		want, ok := sent[m.MsgId]
		if !ok {
			t.Errorf("received unknown message id %s (body %.40q)", m.MsgId, m.Body)
			continue
		}
		if got[m.MsgId] {
			t.Errorf("%s delivered twice", m.MsgId)
		}
		got[m.MsgId] = true
		if m.Topic != topic {
			t.Errorf("%s: topic %q", m.MsgId, m.Topic)
		}
		if !bytes.Equal(m.Body, want.Body) {
			t.Errorf("%s: body %.60q, sent %.60q", m.MsgId, m.Body, want.Body)
		}
		if m.GetTags() != want.GetTags() {
			t.Errorf("%s: tags %q, sent %q", m.MsgId, m.GetTags(), want.GetTags())
		}
		if m.GetKeys() != want.GetKeys() {
			t.Errorf("%s: keys %q, sent %q", m.MsgId, m.GetKeys(), want.GetKeys())
		}
		if m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex) != m.MsgId {
			t.Errorf("%s: UNIQ_KEY property %q", m.MsgId, m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex))
		}
		// Every property sent comes back with its value. The broker adds
		// exactly one of its own: __CRC32#, the record checksum Ferry keeps
		// in the properties of each stored message (RocketMQ 5 brokers
		// do the same); the client adds MIN_OFFSET and friends locally.
		gotProps := m.GetProperties()
		crc := gotProps[crcProperty]
		if crc == "" {
			t.Errorf("%s: no %s property", m.MsgId, crcProperty)
		}
		delete(gotProps, crcProperty)
		for _, k := range clientLocalProps {
			delete(gotProps, k)
		}
		if wantProps := want.GetProperties(); !maps.Equal(gotProps, wantProps) {
			t.Errorf("%s: properties\n got %v\nsent %v", m.MsgId, sortedProps(gotProps), sortedProps(wantProps))
		}
		if m.ReconsumeTimes != 0 {
			t.Errorf("%s: reconsume times %d", m.MsgId, m.ReconsumeTimes)
		}
		if m.BornTimestamp <= 0 || m.StoreTimestamp < m.BornTimestamp-60_000 {
			t.Errorf("%s: born %d stored %d", m.MsgId, m.BornTimestamp, m.StoreTimestamp)
		}
		if m.StoreHost != s.Broker {
			t.Errorf("%s: store host %q, want %s", m.MsgId, m.StoreHost, s.Broker)
		}
	}
	if len(got) != len(cases) {
		t.Errorf("received %d distinct messages, sent %d", len(got), len(cases))
	}
}

func sortedProps(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q ", k, m[k])
	}
	return b.String()
}

// sendToQueue sends body to one queue with the manual selector.
func sendToQueue(t *testing.T, p interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
}, topic, brokerName string, queue int, body, tag string) {
	t.Helper()
	m := primitive.NewMessage(topic, []byte(body))
	if tag != "" {
		m.WithTag(tag)
	}
	m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: brokerName, QueueId: queue}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := p.SendSync(ctx, m)
	if err != nil || res.Status != primitive.SendOK {
		t.Fatalf("send %s to queue %d: %v %v", body, queue, res, err)
	}
	if res.MessageQueue.QueueId != queue {
		t.Fatalf("send %s: stored in queue %d, asked for %d", body, res.MessageQueue.QueueId, queue)
	}
}

// TestClusteringSplitAndTakeover runs two consumers of one group: they
// split the queues and together get everything; when one leaves, the
// other takes its queues over.
func TestClusteringSplitAndTakeover(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, group, queues = "Split", "cg-split", 4
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, queues)
	route := waitRoute(t, s.NameSrv, topic, 1)
	brokerName := route.BrokerDatas[0].BrokerName
	p := newProducer(t, s.NameSrv, producer.WithQueueSelector(producer.NewManualQueueSelector()))

	recA, recB := &recorder{}, &recorder{}
	a := startPushConsumer(t, s.NameSrv, group, topic, "*", recA.handle)
	startPushConsumer(t, s.NameSrv, group, topic, "*", recB.handle)

	// Send a message to every queue per round until both consumers have
	// received some: that is the split (a rebalance may take a while).
	var sent []string
	round := 0
	ok := poll(receiveTimeout, func() bool {
		if recA.count() > 0 && recB.count() > 0 {
			return true
		}
		for q := range queues {
			body := fmt.Sprintf("before-r%d-q%d", round, q)
			sendToQueue(t, p, topic, brokerName, q, body, "")
			sent = append(sent, body)
		}
		round++
		return poll(2*time.Second, func() bool { return recA.count() > 0 && recB.count() > 0 })
	})
	if !ok {
		t.Fatalf("the queues were not split: A got %d, B got %d", recA.count(), recB.count())
	}
	both := func() bool {
		a, b := recA.bodies(), recB.bodies()
		for _, s := range sent {
			if a[s] == 0 && b[s] == 0 {
				return false
			}
		}
		return true
	}
	waitFor(t, receiveTimeout, both, "A and B together did not receive all %d messages", len(sent))
	queuesOf := func(r *recorder) []int {
		set := map[int]bool{}
		for _, m := range r.all() {
			set[m.Queue.QueueId] = true
		}
		return slices.Sorted(maps.Keys(set))
	}
	t.Logf("split: A got %d messages from queues %v, B got %d from %v", recA.count(), queuesOf(recA), recB.count(), queuesOf(recB))

	// A leaves; B must get what is sent afterwards on every queue.
	a.stop()
	after := make([]string, 0, 2*queues)
	for i := range 2 {
		for q := range queues {
			body := fmt.Sprintf("after-%d-q%d", i, q)
			sendToQueue(t, p, topic, brokerName, q, body, "")
			after = append(after, body)
		}
	}
	waitFor(t, receiveTimeout, func() bool { return recB.hasAll(after) },
		"after A left, B is missing %v", recB.missing(after))
}

// TestTagFilter subscribes to "TagA || TagB": nothing else arrives, and
// the group's committed offsets still move past the filtered messages. A
// group subscribed to "*" afterwards gets everything.
func TestTagFilter(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, queues = "Tags", 4
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, queues)
	route := waitRoute(t, s.NameSrv, topic, 1)
	brokerName := route.BrokerDatas[0].BrokerName
	p := newProducer(t, s.NameSrv, producer.WithQueueSelector(producer.NewManualQueueSelector()))

	// Every queue ends with filtered messages, so its offset can only reach
	// the end if the broker (or client) skips them.
	pattern := []string{"TagA", "TagC", "TagB", "", "TagC", "TagD"}
	var all, matching []string
	for q := range queues {
		for i, tag := range pattern {
			body := fmt.Sprintf("q%d-%d-%s", q, i, tag)
			sendToQueue(t, p, topic, brokerName, q, body, tag)
			all = append(all, body)
			if tag == "TagA" || tag == "TagB" {
				matching = append(matching, body)
			}
		}
	}

	const group = "cg-tags"
	rec := &recorder{}
	c := startPushConsumer(t, s.NameSrv, group, topic, "TagA || TagB", rec.handle)
	waitFor(t, receiveTimeout, func() bool { return rec.hasAll(matching) }, "filtered consumer is missing %v", rec.missing(matching))

	// The committed offset of each queue reaches its end. The client commits
	// "last consumed + 1" after a pull that returned messages, and moves
	// past a filtered tail only when the next pull at the end comes back
	// empty, which is after the long-poll suspend time (20 s).
	cl := newRemotingClient(t)
	waitFor(t, receiveTimeout, func() bool {
		for q := range queues {
			if queryOffset(t, cl, s.Broker, group, topic, q) != int64(len(pattern)) {
				return false
			}
		}
		return true
	}, "committed offsets did not move past the filtered messages: %v", committedOffsets(t, cl, s.Broker, group, topic, queues))
	c.stop()

	for _, m := range rec.all() {
		if tag := m.GetTags(); tag != "TagA" && tag != "TagB" {
			t.Errorf("filtered consumer got %s with tag %q", m.Body, tag)
		}
	}
	if got := rec.count(); got != len(matching) {
		t.Errorf("filtered consumer got %d messages, want %d", got, len(matching))
	}

	recAll := &recorder{}
	startPushConsumer(t, s.NameSrv, "cg-tags-all", topic, "*", recAll.handle)
	waitFor(t, receiveTimeout, func() bool { return recAll.hasAll(all) }, "\"*\" consumer is missing %v", recAll.missing(all))
}

func committedOffsets(t *testing.T, cl *remoting.Client, broker, group, topic string, queues int) string {
	t.Helper()
	var parts []string
	for q := range queues {
		parts = append(parts, fmt.Sprintf("q%d=%d", q, queryOffset(t, cl, broker, group, topic, q)))
	}
	return strings.Join(parts, " ")
}

// TestOrderlyPerShardingKey sends messages by sharding key through the
// hash selector and consumes them with an orderly consumer: per key they
// arrive in send order, all from one queue.
func TestOrderlyPerShardingKey(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, keys, perKey = "Orderly", 6, 25
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 4)
	p := newProducer(t, s.NameSrv, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	for i := range perKey {
		for k := range keys {
			m := primitive.NewMessage(topic, []byte(fmt.Sprintf("key%d/%d", k, i)))
			m.WithShardingKey(fmt.Sprintf("key%d", k))
			sendSync(t, p, m)
		}
	}

	var (
		mu     sync.Mutex
		seq    = map[string][]int{}
		queues = map[string]map[int]bool{}
	)
	handler := func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			var k, i int
			if _, err := fmt.Sscanf(string(m.Body), "key%d/%d", &k, &i); err != nil {
				t.Errorf("unexpected body %q", m.Body)
				continue
			}
			key := fmt.Sprintf("key%d", k)
			seq[key] = append(seq[key], i)
			if queues[key] == nil {
				queues[key] = map[int]bool{}
			}
			queues[key][m.Queue.QueueId] = true
		}
		return consumer.ConsumeSuccess, nil
	}
	startPushConsumer(t, s.NameSrv, "cg-orderly", topic, "*", handler, consumer.WithConsumerOrder(true))
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range seq {
			n += len(s)
		}
		return n
	}
	waitFor(t, receiveTimeout, func() bool { return total() >= keys*perKey }, "orderly consumer got %d of %d", total(), keys*perKey)

	mu.Lock()
	defer mu.Unlock()
	for k := range keys {
		key := fmt.Sprintf("key%d", k)
		want := make([]int, perKey)
		for i := range want {
			want[i] = i
		}
		if !slices.Equal(seq[key], want) {
			t.Errorf("%s received in order %v, sent %v", key, seq[key], want)
		}
		if len(queues[key]) != 1 {
			t.Errorf("%s came from queues %v, want one", key, slices.Sorted(maps.Keys(queues[key])))
		}
	}
}

// TestPullConsumer reads with the pull consumer: Subscribe, Start, then
// Poll and ACK, with the client's default batch size (it asks for 0
// messages per pull, which must still return some).
func TestPullConsumer(t *testing.T) {
	t.Parallel()
	s := startServer(t, "async")
	const topic, n = "Pull", 60
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, 4)
	p := newProducer(t, s.NameSrv)
	want := bodiesOf("pull", n)
	for _, b := range want {
		sendSync(t, p, primitive.NewMessage(topic, []byte(b)))
	}

	pc := startPullConsumer(t, s.NameSrv, "cg-pull", topic)
	got := map[string]int{}
	ok := poll(receiveTimeout, func() bool {
		ctx := context.Background()
		cr, err := pc.Poll(ctx, 2*time.Second)
		if err != nil {
			return false
		}
		for _, m := range cr.GetMsgList() {
			got[string(m.Body)]++
		}
		pc.ACK(ctx, cr, consumer.ConsumeSuccess)
		for _, b := range want {
			if got[b] == 0 {
				return false
			}
		}
		return true
	})
	if !ok {
		var missing []string
		for _, b := range want {
			if got[b] == 0 {
				missing = append(missing, b)
			}
		}
		sort.Strings(missing)
		t.Fatalf("pull consumer is missing %v", missing)
	}
	for b, c := range got {
		if c > 1 {
			t.Errorf("%s polled %d times", b, c)
		}
	}
}
