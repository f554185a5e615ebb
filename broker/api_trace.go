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
	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// maxTraceScan bounds the retry and dead-letter records one trace reads.
const maxTraceScan = 20_000

// Trace is the life of a message: the groups past it, its copies in
// retry and dead-letter topics, resent copies.
func (v HTTPMessagesView) Trace(id string) (protocol.HTTPTrace, error) {
	b := v.b
	orig, _, err := b.messages.originalRecord(id)
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
			n, _ := b.messages.scanQueue(topic, q, from, budget, func(rec protocol.Record, qo int64) bool {
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
		if raw, err := b.messages.byID(uniq); err == nil {
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
	if err := b.sender.checkWritable(); err != nil {
		return nil, err
	}
	orig, _, err := b.messages.originalRecord(id)
	if err != nil {
		return nil, err
	}
	var m commitlog.Message
	if group != "" {
		if _, err := b.groups.need(group); err != nil {
			return nil, err
		}
		if _, err := b.sender.ensureGroupTopic(protocol.RetryTopic(group)); err != nil {
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
