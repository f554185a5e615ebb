package broker

// A message's life, derived from what the broker stores (GET
// /v1/messages/{msgId}/trace); resending one stored message (POST
// /v1/messages/{msgId}/resend); and the search of a topic by store time
// (GET /v1/topics/{topic}/messages without key).

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// maxTraceScan bounds the retry and dead-letter records one trace reads.
const maxTraceScan = 20_000

// scanQueue calls fn for the records of (topic, q) from queue offset from,
// up to limit of them or until fn returns false; it returns how many it
// read.
func (b *Broker) scanQueue(topic string, q int32, from int64, limit int, fn func(rec protocol.Record, queueOffset int64) bool) (int, error) {
	var es []consumequeue.Entry
	var buf []byte
	n := 0
	maxOff := b.cq.MaxOffset(topic, q)
	for off := max(from, b.minOffset(topic, q)); off < maxOff && n < limit; {
		var err error
		es, err = b.cq.Get(topic, q, off, min(64, limit-n), es)
		if err != nil {
			return n, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			off = e.QueueOffset + 1
			if e.Size == 0 {
				continue
			}
			var rec protocol.Record
			if rec, buf, err = b.clog.ReadRecord(e.Offset, buf); err != nil {
				continue // expired with its segment
			}
			n++
			if !fn(rec, e.QueueOffset) {
				return n, nil
			}
		}
	}
	return n, nil
}

// originalRecord finds the record a message id names and, when that is a
// copy the broker made (a retry, a dead letter, a scheduled message), the
// record it was copied from, when still stored.
func (b *Broker) originalRecord(id string) (orig protocol.Record, found protocol.Record, err error) {
	raw, err := b.MessageByID(id)
	if err != nil {
		return orig, found, err
	}
	if found, err = protocol.Decode(raw); err != nil {
		return orig, found, err
	}
	orig = found
	topic := string(found.Topic)
	if real, ok := found.Property(protocol.PropRealTopic); ok && (topic == protocol.ScheduleTopic || topic == protocol.TimerTopic) {
		topic = real // a retry waits in the schedule topic for its delay
	}
	if topic != protocol.ScheduleTopic && topic != protocol.TimerTopic {
		if rec, ok := b.findOriginal(found); ok {
			orig = rec
		}
	}
	return orig, found, nil
}

// originSearch bounds the search for a copy's original: the original
// topic's queues are read from a second before the copy's born time, at
// most this many records each.
const originSearch = 2000

// findOriginal finds the record a copy (a retry, a dead letter, a resent
// message) was made from: by its ORIGIN_MESSAGE_ID when that is an offset
// id, else the first record with its UNIQ_KEY in the original topic
// (RETRY_TOPIC, or its own), near the born time copies keep. A record
// that is no copy is its own original.
func (b *Broker) findOriginal(c protocol.Record) (protocol.Record, bool) {
	if o, ok := c.Property(protocol.PropOriginMessageID); ok {
		if _, off, err := protocol.ParseOffsetMsgID(o); err == nil {
			if rec, _, err := b.clog.ReadRecord(off, nil); err == nil && rec.PhysicalOffset == off {
				return rec, true
			}
		}
	}
	uniq, _ := c.Property(protocol.PropUniqKey)
	topic := dlq.OriginalTopic(c)
	tc, ok := b.topics.get(topic)
	if uniq == "" || !ok || isRetryOrDLQ(topic) {
		return protocol.Record{}, false
	}
	var orig protocol.Record
	found := false
	for q := int32(0); q < max(tc.ReadQueueNums, tc.WriteQueueNums); q++ {
		from, err := b.cq.OffsetByTime(topic, q, c.BornTimestamp-1000)
		if err != nil {
			continue
		}
		_, _ = b.scanQueue(topic, q, from, originSearch, func(rec protocol.Record, _ int64) bool {
			if rec.StoreTimestamp > c.StoreTimestamp || (found && rec.PhysicalOffset > orig.PhysicalOffset) {
				return false
			}
			if id, _ := rec.Property(protocol.PropUniqKey); id == uniq {
				// rec aliases the scan's buffer: read it again into its own.
				if r, _, err := b.clog.ReadRecord(rec.PhysicalOffset, nil); err == nil {
					orig, found = r, true
				}
				return false
			}
			return true
		})
	}
	return orig, found
}

// Trace is the life of a message: the groups past it, its copies in
// retry and dead-letter topics, resent copies.
func (v HTTPMessagesView) Trace(id string) (protocol.HTTPTrace, error) {
	b := v.b
	orig, _, err := b.originalRecord(id)
	if err != nil {
		return protocol.HTTPTrace{}, err
	}
	t := protocol.HTTPTrace{Message: messageOut(orig), Groups: []protocol.HTTPTraceGroup{}, Retries: []protocol.HTTPTraceCopy{},
		DeadLetter: []protocol.HTTPTraceCopy{}, Resent: []protocol.HTTPTraceCopy{}}
	topic := string(orig.Topic)
	if topic == protocol.ScheduleTopic || topic == protocol.TimerTopic {
		s := t.Message
		t.Scheduled = &s
		if real, ok := orig.Property(protocol.PropRealTopic); ok {
			topic = real
		}
	}
	uniq := t.Message.MsgID
	stored := orig.StoreTimestamp
	if t.Scheduled == nil {
		for _, g := range b.offsets.groupsOf(topic) {
			off, ok := b.offsets.get(g, topic, orig.QueueID)
			if !ok {
				continue
			}
			t.Groups = append(t.Groups, protocol.HTTPTraceGroup{Group: g, CommittedOffset: off, Consumed: off > orig.QueueOffset,
				Online: len(b.clients.consumerIDs(g))})
		}
	}
	budget := maxTraceScan
	same := func(rec protocol.Record) bool {
		id, _ := rec.Property(protocol.PropUniqKey)
		return id == uniq && rec.PhysicalOffset != orig.PhysicalOffset
	}
	collect := func(group, topic string, dst *[]protocol.HTTPTraceCopy) {
		tc, ok := b.topics.get(topic)
		if !ok {
			return
		}
		for q := int32(0); q < max(tc.ReadQueueNums, tc.WriteQueueNums) && budget > 0; q++ {
			from, err := b.cq.OffsetByTime(topic, q, stored)
			if err != nil {
				continue
			}
			n, _ := b.scanQueue(topic, q, from, budget, func(rec protocol.Record, qo int64) bool {
				if same(rec) {
					*dst = append(*dst, protocol.HTTPTraceCopy{Group: group, Topic: topic, QueueID: q, QueueOffset: qo,
						OffsetMsgID: protocol.OffsetMsgID(rec.StoreHost, rec.PhysicalOffset),
						StoredAtMs:  rec.StoreTimestamp, ReconsumeTimes: rec.ReconsumeTimes})
				}
				return true
			})
			budget -= n
			t.Scanned += n
			if b.cq.MaxOffset(topic, q) > from+int64(n) && budget <= 0 {
				t.Truncated = true
			}
		}
	}
	for _, gc := range b.groups.all() {
		collect(gc.GroupName, protocol.RetryTopic(gc.GroupName), &t.Retries)
		collect(gc.GroupName, protocol.DLQTopic(gc.GroupName), &t.DeadLetter)
	}
	if t.Scheduled == nil {
		// Resent copies in the original topic: found through the message
		// id index, newest first, so only the latest one is certain.
		if raw, err := b.MessageByID(uniq); err == nil {
			if rec, err := protocol.Decode(raw); err == nil && string(rec.Topic) == topic && rec.PhysicalOffset != orig.PhysicalOffset {
				t.Resent = append(t.Resent, protocol.HTTPTraceCopy{Topic: topic, QueueID: rec.QueueID, QueueOffset: rec.QueueOffset,
					OffsetMsgID: protocol.OffsetMsgID(rec.StoreHost, rec.PhysicalOffset),
					StoredAtMs:  rec.StoreTimestamp, ReconsumeTimes: rec.ReconsumeTimes})
			}
		}
	}
	byTime := func(c []protocol.HTTPTraceCopy) {
		sort.Slice(c, func(i, j int) bool { return c[i].StoredAtMs < c[j].StoredAtMs })
	}
	byTime(t.Retries)
	byTime(t.DeadLetter)
	return t, nil
}

// Resend stores a copy of a message again: into a group's retry topic
// (group set: only that group receives it) or into its original topic
// (every subscribed group does).
func (v HTTPMessagesView) Resend(id, group string) (map[string]any, error) {
	b := v.b
	if err := b.checkWritable(); err != nil {
		return nil, err
	}
	orig, _, err := b.originalRecord(id)
	if err != nil {
		return nil, err
	}
	var m commitlog.Message
	if group != "" {
		if _, err := b.needGroup(group); err != nil {
			return nil, err
		}
		if _, err := b.ensureGroupTopic(protocol.RetryTopic(group)); err != nil {
			return nil, err
		}
		m = dlq.ResendMessage(orig, group, dlq.ToRetry, 0)
	} else {
		dest := dlq.OriginalTopic(orig)
		tc, ok := b.topics.get(dest)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, dest)
		case protocol.IsReservedTopic(dest) || isRetryOrDLQ(dest):
			return nil, fmt.Errorf("%w: message %s is in %s; give the group to resend it to", protocol.ErrHTTPBadInput, id, dest)
		case !protocol.PermWritable(tc.Perm) || tc.WriteQueueNums <= 0:
			return nil, fmt.Errorf("%w: topic %s is not writable", ErrNoPermission, dest)
		}
		m = dlq.ResendMessage(orig, "", dlq.ToOriginalTopic, rand.Int32N(tc.WriteQueueNums))
	}
	m.StoreHost = b.storeHost
	res, err := b.clog.Append([]commitlog.Message{m}, nil)
	if err != nil && !(errors.Is(err, commitlog.ErrFlushTimeout) && len(res) == 1) {
		return nil, err
	}
	b.metrics.messagesIn(m.Topic, 1, len(m.Body))
	return map[string]any{"topic": m.Topic, "queue_id": m.QueueID, "queue_offset": res[0].QueueOffset,
		"offset_msg_id": protocol.OffsetMsgID(b.storeHost, res[0].Offset)}, nil
}

// messagesByTime reads up to n messages of topic stored between begin and
// end (ms, inclusive), oldest first: each queue is searched by time and
// read forward.
func (b *Broker) messagesByTime(topic string, begin, end int64, n int) ([]apiMessage, error) {
	tc, ok := b.topics.get(topic)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	if end <= 0 {
		end = 1<<63 - 1
	}
	if end < begin {
		return nil, fmt.Errorf("%w: end_ms %d is before begin_ms %d", protocol.ErrHTTPBadInput, end, begin)
	}
	var out []apiMessage
	for q := int32(0); q < max(tc.ReadQueueNums, tc.WriteQueueNums); q++ {
		from, err := b.cq.OffsetByTime(topic, q, begin)
		if err != nil {
			return nil, err
		}
		if _, err := b.scanQueue(topic, q, from, n, func(rec protocol.Record, _ int64) bool {
			if rec.StoreTimestamp > end {
				return false
			}
			if rec.StoreTimestamp >= begin {
				out = append(out, messageOut(rec))
			}
			return true
		}); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StoredAtMs < out[j].StoredAtMs })
	if len(out) > n {
		out = out[:n]
	}
	if out == nil {
		out = []apiMessage{}
	}
	return out, nil
}
