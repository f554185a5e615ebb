package broker

// Receive / ack / nack: queue-style consumption over HTTP for clients that
// keep no state. The broker keeps, per (group, topic, queue), the next
// queue offset to hand out and the in-flight offsets with their visibility
// deadlines, all in memory:
//
//   - receive hands out messages from next on (the topic's read queues and
//     the group's %RETRY% queue), each under a lease with a receipt handle;
//   - ack ends a lease; the group's committed offset of the queue becomes
//     the smallest in-flight offset, or next when none is in flight;
//   - nack, or a lease whose visibility deadline passes, sends the message
//     down the retry path (exactly as CONSUMER_SEND_MSG_BACK: %RETRY% at
//     delay level 3 + reconsume times, the DLQ after the group's retry
//     limit) and then ends the lease as an ack does.
//
// Delivery is at least once: leases are not persisted, so after a broker
// restart consumption resumes from the committed offset and messages that
// were in flight are delivered again. A queue whose committed offset is
// changed by anyone else (an offset reset, a remoting consumer of the same
// group) restarts from the new offset and forgets its leases. Messages the
// tag filter rejects count as consumed. The retry queue is shared by every
// topic the group consumes, so a receive on one topic also returns retried
// messages of the group's other topics (each shows its own topic).
//
// Concurrency: leaseTable.mu guards the map of groups; groupLeases.mu
// guards one group's queues and is held across a receive scan, an ack and
// a nack (including the commitlog append of the retry copy). Lock order:
// leaseTable.mu → groupLeases.mu → offsetTable.mu; commitlog and consume
// queue calls are made under groupLeases.mu only. The expiry sweeper is a
// goroutine owned by the Broker (its wait group), started by the first
// receive and stopped by Shutdown (the stop channel); each receive also
// expires its group's leases itself first.

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// Receive limits.
const (
	defaultReceiveMax  = 16
	maxReceiveMax      = 1000
	defaultVisibility  = 30 * time.Second
	minVisibility      = 100 * time.Millisecond
	maxVisibility      = 12 * time.Hour
	leaseSweepInterval = 100 * time.Millisecond
	expiryRetryDelay   = time.Second
)

// leaseTable is the HTTP consumers' receive leases, the Broker's leases
// field.
type leaseTable struct {
	offsets *offsetTable
	groups  *groupTable
	topics  *topicTable
	cq      *consumequeue.Store
	clog    *commitlog.Log
	holds   *heldPulls // receives wait there
	metrics *metrics
	log     zerolog.Logger
	cfg     func() *Config
	// The request path's functions, set by New once the queue reader and
	// the sender exist: a queue's first kept offset (queuereader.go); the
	// retry or dead-letter copy of a message, as CONSUMER_SEND_MSG_BACK
	// builds it; why the retry copies could not be stored now (sender.go).
	minOffset     func(topic string, queue int32) int64
	sendBack      func(rec protocol.Record, group string, gc GroupConfig, originMsgID string, delayLevel, maxTimes int32) (commitlog.Message, error)
	checkWritable func() error
	now           func() time.Time
	stop          <-chan struct{}
	wg            *sync.WaitGroup // the sweeper's owner
	receiptKey    []byte          // signs receipt handles (loadReceiptKey); set before Start

	mu      sync.Mutex
	byGroup map[string]*groupLeases
	epoch   atomic.Uint64 // last lease epoch handed out
	seeded  sync.Once
	sweeper sync.Once
}

type groupLeases struct {
	mu     sync.Mutex
	queues map[topicQueue]*leaseQueue
	rr     int // round-robin start among the queues
}

type topicQueue struct {
	topic string
	queue int32
}

type leaseQueue struct {
	next      int64            // next queue offset to hand out
	committed int64            // last offset committed from here; -1 none
	inflight  map[int64]*lease // by queue offset
}

type lease struct {
	epoch    uint64
	deadline time.Time
	clogOff  int64
}

func (t *leaseTable) group(name string, create bool) *groupLeases {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.byGroup[name]
	if g == nil && create {
		if t.byGroup == nil {
			t.byGroup = make(map[string]*groupLeases)
		}
		g = &groupLeases{queues: make(map[topicQueue]*leaseQueue)}
		t.byGroup[name] = g
	}
	return g
}

func (t *leaseTable) all() map[string]*groupLeases {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]*groupLeases, len(t.byGroup))
	for k, v := range t.byGroup {
		out[k] = v
	}
	return out
}

func (t *leaseTable) forgetGroup(name string) {
	t.mu.Lock()
	delete(t.byGroup, name)
	t.mu.Unlock()
}

func (t *leaseTable) forgetTopic(topic string) {
	for _, g := range t.all() {
		g.mu.Lock()
		for tq := range g.queues {
			if tq.topic == topic {
				delete(g.queues, tq)
			}
		}
		g.mu.Unlock()
	}
}

// nextEpoch returns a lease epoch unique across broker runs (seeded from
// the clock), so a receipt handle from before a restart never matches.
func (t *leaseTable) nextEpoch() uint64 {
	t.seeded.Do(func() { t.epoch.Store(uint64(time.Now().UnixNano())) })
	return t.epoch.Add(1)
}

// inflight counts a group's leases by queue.
func (t *leaseTable) inflight(group string) map[topicQueue]int {
	out := map[topicQueue]int{}
	g := t.group(group, false)
	if g == nil {
		return out
	}
	g.mu.Lock()
	for tq, lq := range g.queues {
		if len(lq.inflight) > 0 {
			out[tq] = len(lq.inflight)
		}
	}
	g.mu.Unlock()
	return out
}

// queueLocked returns the lease state of (group, tq), creating it at the
// committed offset (the queue's first kept offset when none is committed),
// or recreating it when the committed offset moved underneath.
func (t *leaseTable) queueLocked(g *groupLeases, group string, tq topicQueue, create bool) *leaseQueue {
	cur, ok := t.offsets.get(group, tq.topic, tq.queue)
	lq := g.queues[tq]
	if lq != nil && ((ok && cur == lq.committed) || (!ok && lq.committed < 0)) {
		return lq
	}
	if lq == nil && !create {
		return nil
	}
	lq = &leaseQueue{committed: -1, inflight: make(map[int64]*lease)}
	if ok {
		lq.next, lq.committed = cur, cur
	} else {
		lq.next = t.minOffset(tq.topic, tq.queue)
	}
	g.queues[tq] = lq
	return lq
}

// commitLocked commits min(in flight) or next as the group's offset.
func (t *leaseTable) commitLocked(group string, tq topicQueue, lq *leaseQueue) {
	c := lq.next
	for qo := range lq.inflight {
		c = min(c, qo)
	}
	if c != lq.committed {
		t.offsets.set(group, tq.topic, tq.queue, c)
		lq.committed = c
	}
}

// consumerGroup returns group's config, creating it when auto-creation is
// on, and refuses a group that may not consume.
func (t *leaseTable) consumerGroup(group string) (GroupConfig, error) {
	gc, ok := t.groups.get(group)
	if !ok {
		if !t.cfg().AutoCreateGroup {
			return gc, fmt.Errorf("%w: %s", ErrGroupNotFound, group)
		}
		gc = DefaultGroupConfig(group, t.cfg().RetryMaxTimes)
		if err := t.groups.put(gc); err != nil {
			return gc, err
		}
	}
	if !gc.ConsumeEnable {
		return gc, fmt.Errorf("%w: consumer group %s may not consume (consume_enable is false)", ErrNoPermission, group)
	}
	return gc, nil
}

// HTTPConsumeView is leased consumption (receive, ack, nack) as the HTTP
// API serves it.
type HTTPConsumeView struct{ leases *leaseTable }

// Receive leases up to in.Max messages of in.Topic to group, waiting up
// to in.WaitMs (at most long_poll_max) while there are none.
func (v HTTPConsumeView) Receive(group string, in protocol.HTTPReceive) ([]protocol.HTTPMessage, error) {
	t := v.leases
	maxMsgs := defaultReceiveMax
	if in.Max != nil {
		maxMsgs = *in.Max
	}
	vis := time.Duration(in.VisibilityMs) * time.Millisecond
	if in.VisibilityMs == 0 {
		vis = defaultVisibility
	}
	switch {
	case in.Topic == "":
		return nil, fmt.Errorf("%w: topic is required", protocol.ErrHTTPBadInput)
	case maxMsgs < 1 || maxMsgs > maxReceiveMax:
		return nil, fmt.Errorf("%w: max %d must be 1 to %d (absent: %d)", protocol.ErrHTTPBadInput, maxMsgs, maxReceiveMax, defaultReceiveMax)
	case vis < minVisibility || vis > maxVisibility:
		return nil, fmt.Errorf("%w: visibility_ms %d must be %d to %d", protocol.ErrHTTPBadInput, in.VisibilityMs, minVisibility.Milliseconds(), maxVisibility.Milliseconds())
	case in.WaitMs < 0:
		return nil, fmt.Errorf("%w: wait_ms %d must not be negative", protocol.ErrHTTPBadInput, in.WaitMs)
	}
	if err := ValidateGroup(group); err != nil {
		return nil, err
	}
	gc, err := t.consumerGroup(group)
	if err != nil {
		return nil, err
	}
	tc, ok := t.topics.get(in.Topic)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, in.Topic)
	}
	if !protocol.PermReadable(tc.Perm) {
		return nil, fmt.Errorf("%w: topic %s is not readable", ErrNoPermission, in.Topic)
	}
	t.startSweeper()
	filter, tags := apiTagFilter(in.Tag)
	g := t.group(group, true)
	poll := t.holds.newHTTPPoll(time.Duration(in.WaitMs) * time.Millisecond)
	defer poll.end()
	for {
		queues := t.receiveQueues(group, in.Topic)
		msgs, err := t.receiveOnce(g, group, gc, queues, maxMsgs, vis, filter, tags)
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 || poll.over() {
			return msgs, nil
		}
		if err := poll.wait(receiveWaitKeys(group, queues)); err != nil {
			return nil, err
		}
	}
}

// receiveWaitKeys is what a receive waits on: its queues, and the group's
// retry queue even before the retry topic exists (a nack or an expired
// lease creates it, and the dispatcher wakes waiters of a queue it
// creates).
func receiveWaitKeys(group string, queues []topicQueue) []holdKey {
	keys := make([]holdKey, 0, len(queues)+1)
	retry := protocol.RetryTopic(group)
	hasRetry := false
	for _, tq := range queues {
		keys = append(keys, holdKey{tq.topic, tq.queue})
		hasRetry = hasRetry || tq.topic == retry
	}
	if !hasRetry {
		keys = append(keys, holdKey{retry, 0})
	}
	return keys
}

// receiveQueues lists the queues a receive of topic by group reads: the
// topic's read queues, then the group's retry queues.
func (t *leaseTable) receiveQueues(group, topic string) []topicQueue {
	var out []topicQueue
	if tc, ok := t.topics.get(topic); ok {
		for q := int32(0); q < tc.ReadQueueNums; q++ {
			out = append(out, topicQueue{topic, q})
		}
	}
	retry := protocol.RetryTopic(group)
	if tc, ok := t.topics.get(retry); ok && retry != topic {
		for q := int32(0); q < tc.ReadQueueNums; q++ {
			out = append(out, topicQueue{retry, q})
		}
	}
	return out
}

// receiveOnce leases up to max messages from queues, first expiring the
// group's overdue leases.
func (t *leaseTable) receiveOnce(g *groupLeases, group string, gc GroupConfig, queues []topicQueue, want int, vis time.Duration, filter tagFilter, tags map[string]bool) ([]apiMessage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := t.now()
	t.expireLocked(g, group, gc, now)
	out := []apiMessage{}
	if len(queues) == 0 {
		return out, nil
	}
	start := g.rr % len(queues)
	g.rr++
	var entries []consumequeue.Entry
	var buf []byte
	var bytesOut int
	for i := 0; i < len(queues) && len(out) < want; i++ {
		tq := queues[(start+i)%len(queues)]
		lq := t.queueLocked(g, group, tq, true)
		minOff, maxOff := t.minOffset(tq.topic, tq.queue), t.cq.MaxOffset(tq.topic, tq.queue)
		lq.next = min(max(lq.next, minOff), maxOff)
	scan:
		for len(out) < want && lq.next < maxOff {
			var err error
			entries, err = t.cq.Get(tq.topic, tq.queue, lq.next, min(2*(want-len(out)), 256), entries[:0])
			if err != nil || len(entries) == 0 {
				if err != nil {
					t.log.Warn().Err(err).Str("group", group).Str("topic", tq.topic).Int32("queue_id", tq.queue).Msg("HTTP receive: read consume queue")
				}
				break
			}
			for _, e := range entries {
				if len(out) >= want {
					break scan
				}
				if e.Size == 0 || !filter.match(e.TagsCode) {
					lq.next = e.QueueOffset + 1
					continue
				}
				var rec protocol.Record
				rec, buf, err = t.clog.ReadRecord(e.Offset, buf)
				if err != nil {
					t.log.Warn().Err(err).Str("group", group).Str("topic", tq.topic).Int64("offset", e.QueueOffset).Msg("HTTP receive: read message")
					break scan
				}
				lq.next = e.QueueOffset + 1
				if tags != nil {
					if tag, _ := rec.Property(protocol.PropTags); !tags[tag] {
						continue // a tag hash collision
					}
				}
				l := &lease{epoch: t.nextEpoch(), deadline: now.Add(vis), clogOff: e.Offset}
				lq.inflight[e.QueueOffset] = l
				m := messageOut(rec)
				if strings.HasPrefix(tq.topic, protocol.RetryTopicPrefix) {
					m.StoredTopic = tq.topic
					if rt, ok := rec.Property(protocol.PropRetryTopic); ok && rt != "" && !strings.HasPrefix(rt, protocol.RetryTopicPrefix) {
						m.Topic = rt
					}
				}
				m.ReceiptHandle = receipt{topic: tq.topic, queue: tq.queue, qoff: e.QueueOffset, clogOff: e.Offset, epoch: l.epoch}.encode(t.receiptKey)
				bytesOut += len(rec.Body)
				out = append(out, m)
			}
		}
		t.commitLocked(group, tq, lq)
	}
	if len(out) > 0 {
		t.metrics.messagesOut(queues[0].topic, group, len(out), bytesOut)
	}
	return out, nil
}

// retryLocked sends the leased message at clogOff down the retry path:
// %RETRY%<group> at the next delay level, or the DLQ past the limit.
func (t *leaseTable) retryLocked(group string, gc GroupConfig, clogOff int64) error {
	rec, _, err := t.clog.ReadRecord(clogOff, nil)
	if err != nil {
		return err
	}
	origin, _ := rec.Property(protocol.PropUniqKey)
	m, err := t.sendBack(rec, group, gc, origin, 0, -1)
	if err != nil {
		return err
	}
	if _, err := t.clog.Append([]commitlog.Message{m}, nil); err != nil && !isFlushTimeout(err) {
		return err
	}
	t.metrics.messagesIn(m.Topic, 1, len(m.Body))
	return nil
}

// expireLocked nacks the group's leases past their deadline. A failed
// retry is tried again a little later.
func (t *leaseTable) expireLocked(g *groupLeases, group string, gc GroupConfig, now time.Time) {
	for tq, lq := range g.queues {
		touched := false
		for qo, l := range lq.inflight {
			if l.deadline.After(now) {
				continue
			}
			if err := t.retryLocked(group, gc, l.clogOff); err != nil {
				t.log.Warn().Err(err).Str("group", group).Str("topic", tq.topic).Int64("offset", qo).Msg("HTTP lease expired; retry failed")
				l.deadline = now.Add(expiryRetryDelay)
				continue
			}
			delete(lq.inflight, qo)
			touched = true
		}
		if touched {
			t.commitLocked(group, tq, lq)
		}
	}
}

// startSweeper starts the goroutine that expires leases of every group,
// once; it stops with the broker.
func (t *leaseTable) startSweeper() {
	t.sweeper.Do(func() {
		select {
		case <-t.stop:
			return
		default:
		}
		t.wg.Add(1)
		go t.sweep()
	})
}

func (t *leaseTable) sweep() {
	defer t.wg.Done()
	tick := time.NewTicker(leaseSweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			t.expireAll(now)
		}
	}
}

// expireAll nacks the leases of every group past their deadline at now
// and forgets the leases of deleted groups.
func (t *leaseTable) expireAll(now time.Time) {
	for name, g := range t.all() {
		gc, ok := t.groups.get(name)
		if !ok {
			t.forgetGroup(name)
			continue
		}
		if t.checkWritable() != nil {
			continue // the retry copies could not be stored
		}
		g.mu.Lock()
		t.expireLocked(g, name, gc, now)
		g.mu.Unlock()
	}
}

// ReceiptFailure is a receipt handle an ack or nack could not settle.
type ReceiptFailure struct {
	Handle string
	Err    error
}

// Ack ends leases: the messages are consumed. It answers how many it
// ended and the handles it could not.
func (v HTTPConsumeView) Ack(group string, handles []string) (int, []ReceiptFailure, error) {
	return v.leases.settle(group, handles, func(string, GroupConfig, *lease) error { return nil })
}

// Nack sends the leased messages down the retry path.
func (v HTTPConsumeView) Nack(group string, handles []string) (int, []ReceiptFailure, error) {
	t := v.leases
	if err := t.checkWritable(); err != nil {
		return 0, nil, err
	}
	return t.settle(group, handles, func(group string, gc GroupConfig, l *lease) error {
		return t.retryLocked(group, gc, l.clogOff)
	})
}

// settle runs fn on the lease of each handle under the group's lock;
// fn returns an error to keep the lease.
func (t *leaseTable) settle(group string, handles []string, fn func(group string, gc GroupConfig, l *lease) error) (int, []ReceiptFailure, error) {
	if len(handles) == 0 {
		return 0, nil, fmt.Errorf("%w: receipt_handles is empty", protocol.ErrHTTPBadInput)
	}
	if len(handles) > maxReceiveMax {
		return 0, nil, fmt.Errorf("%w: %d receipt handles; at most %d per request", protocol.ErrHTTPBadInput, len(handles), maxReceiveMax)
	}
	gc, ok := t.groups.get(group)
	if !ok {
		return 0, nil, fmt.Errorf("%w: %s", ErrGroupNotFound, group)
	}
	failed := []ReceiptFailure{}
	fail := func(h string, err error) { failed = append(failed, ReceiptFailure{Handle: h, Err: err}) }
	done := 0
	g := t.group(group, false)
	if g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
	}
	touched := map[topicQueue]*leaseQueue{}
	for _, h := range handles {
		r, err := decodeReceipt(h, t.receiptKey)
		if err != nil {
			fail(h, err)
			continue
		}
		tq := topicQueue{r.topic, r.queue}
		var lq *leaseQueue
		if g != nil {
			lq = t.queueLocked(g, group, tq, false)
		}
		var l *lease
		if lq != nil {
			l = lq.inflight[r.qoff]
		}
		if l == nil || l.epoch != r.epoch {
			fail(h, fmt.Errorf("%w: the lease ended (acked, nacked, or its visibility timeout passed and the message went to retry)", protocol.ErrHTTPReceiptExpired))
			continue
		}
		if err := fn(group, gc, l); err != nil {
			fail(h, err)
			continue
		}
		delete(lq.inflight, r.qoff)
		touched[tq] = lq
		done++
	}
	for tq, lq := range touched {
		t.commitLocked(group, tq, lq)
	}
	return done, failed, nil
}

func isFlushTimeout(err error) bool { return errors.Is(err, commitlog.ErrFlushTimeout) }

func (t *leaseTable) forgetGroupTopic(group, topic string) {
	g := t.group(group, false)
	if g == nil {
		return
	}
	g.mu.Lock()
	for tq := range g.queues {
		if tq.topic == topic {
			delete(g.queues, tq)
		}
	}
	g.mu.Unlock()
}
