// Package dlq is the consumer retry and dead-letter policy, and the
// dead-letter queue's listing and resend.
//
// A consumer that fails a message sends it back. The message then goes to
// the group's retry topic %RETRY%<group> at delay level 3 + reconsumeTimes
// (10 s, 30 s, 1 m, … 2 h with the default table) with reconsumeTimes + 1;
// once it has been reconsumed the group's maximum number of times (16 by
// default), or when the consumer asks for it (delay level < 0), it goes to
// %DLQ%<group> instead: one queue, readable, never delivered to the group.
// From there an operator lists dead letters and resends them to their
// original topic or back onto the retry path.
package dlq

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// Decision is where a sent-back message goes.
type Decision struct {
	DLQ   bool  // to %DLQ%<group>
	Level int32 // delay level on the retry topic (when !DLQ)
}

// Decide applies the retry policy to a message consumed reconsumeTimes
// times before this failure. maxTimes is the group's (or the request's)
// retry limit; requested is the consumer's delay level: 0 means "the
// next step", < 0 "straight to the DLQ". levels is the size of the delay
// table; the level is capped at it.
func Decide(reconsumeTimes, maxTimes, requested int32, levels int) Decision {
	if requested < 0 || reconsumeTimes >= maxTimes {
		return Decision{DLQ: true}
	}
	level := requested
	if level == 0 {
		level = 3 + reconsumeTimes
	}
	return Decision{Level: min(level, int32(levels))}
}

// Queues reads a topic's consume queue.
type Queues interface {
	Get(topic string, queueID int32, offset int64, max int, dst []consumequeue.Entry) ([]consumequeue.Entry, error)
	MaxOffset(topic string, queueID int32) int64
	MinOffset(topic string, queueID int32) (int64, error)
}

// Log reads stored records.
type Log interface {
	ReadRecord(off int64, buf []byte) (protocol.Record, []byte, error)
}

// DeadLetter describes one message in a DLQ.
type DeadLetter = protocol.DeadLetter

// Describe builds the DeadLetter of a record read from a DLQ.
func Describe(rec protocol.Record, queueOffset int64) DeadLetter {
	p := rec.Properties
	d := DeadLetter{
		QueueOffset: queueOffset, CommitOffset: rec.PhysicalOffset, ReconsumeTimes: rec.ReconsumeTimes,
		FailedAtMillis: rec.StoreTimestamp, BornAtMillis: rec.BornTimestamp, BodySize: len(rec.Body),
	}
	d.OffsetMsgID = protocol.OffsetMsgID(rec.StoreHost, rec.PhysicalOffset)
	d.MsgID, _ = protocol.Property(p, protocol.PropUniqKey)
	if d.MsgID == "" {
		d.MsgID = d.OffsetMsgID
	}
	d.OriginMsgID, _ = protocol.Property(p, protocol.PropOriginMessageID)
	d.Tags, _ = protocol.Property(p, protocol.PropTags)
	d.Keys, _ = protocol.Property(p, protocol.PropKeys)
	d.Topic = OriginalTopic(rec)
	return d
}

// OriginalTopic is the topic a dead or retried message was first consumed
// from: RETRY_TOPIC when set, else the record's own topic.
func OriginalTopic(rec protocol.Record) string {
	if t, ok := protocol.Property(rec.Properties, protocol.PropRetryTopic); ok && t != "" && !strings.HasPrefix(t, protocol.RetryTopicPrefix) {
		return t
	}
	return string(rec.Topic)
}

// List returns up to max dead letters of group from queue offset from (the
// DLQ's min offset when from < 0), and the offset to continue at.
func List(q Queues, log Log, group string, from int64, max int) ([]DeadLetter, int64, error) {
	topic := protocol.DLQTopic(group)
	minOff, err := q.MinOffset(topic, 0)
	if err != nil {
		return nil, from, err
	}
	if from < minOff {
		from = minOff
	}
	var out []DeadLetter
	var buf []byte
	next := from
	for len(out) < max && next < q.MaxOffset(topic, 0) {
		es, err := q.Get(topic, 0, next, min(max-len(out), 256), nil)
		if err != nil {
			return out, next, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			next = e.QueueOffset + 1
			if e.Size == 0 {
				continue
			}
			var rec protocol.Record
			rec, buf, err = log.ReadRecord(e.Offset, buf)
			if err != nil {
				return out, e.QueueOffset, fmt.Errorf("dlq: read dead letter at queue offset %d: %w", e.QueueOffset, err)
			}
			out = append(out, Describe(rec, e.QueueOffset))
		}
	}
	return out, next, nil
}

// PropResentFrom marks a resent dead letter with where it came from:
// "%DLQ%<group>:<queue offset>".
const PropResentFrom = "FERRY_RESENT_FROM"

// Target says where a resent dead letter goes.
type Target int

const (
	// ToOriginalTopic puts it back on the topic it was first consumed
	// from, as a fresh message (reconsume count 0).
	ToOriginalTopic Target = iota
	// ToRetry puts it on the group's retry topic, due at once, with its
	// reconsume count reset so it has the full number of retries again.
	ToRetry
)

// String is the target as ParseTarget reads it.
func (t Target) String() string {
	if t == ToRetry {
		return "retry"
	}
	return "topic"
}

// ParseTarget parses "topic" or "retry".
func ParseTarget(s string) (Target, error) {
	switch s {
	case "", "topic", "original":
		return ToOriginalTopic, nil
	case "retry":
		return ToRetry, nil
	}
	return 0, fmt.Errorf("dlq: resend target %q: want topic or retry", s)
}

// ResendMessage builds the message that resends a dead letter of group.
// queue is the destination queue id (the caller picks one of the topic's
// writable queues; the retry topic has one queue, 0).
func ResendMessage(rec protocol.Record, group string, target Target, queue int32) commitlog.Message {
	p := protocol.ParseProperties(rec.Properties)
	topic := OriginalTopic(rec)
	if target == ToRetry {
		topic, queue = protocol.RetryTopic(group), 0
		if _, ok := p[protocol.PropRetryTopic]; !ok {
			p[protocol.PropRetryTopic] = OriginalTopic(rec)
		}
	} else {
		delete(p, protocol.PropRetryTopic)
	}
	for _, k := range []string{protocol.PropDelayLevel, protocol.PropRealTopic, protocol.PropRealQueueID,
		protocol.PropTimerDeliverMS, protocol.PropTimerDelayMS, protocol.PropTimerDelaySec} {
		delete(p, k)
	}
	p[PropResentFrom] = protocol.DLQTopic(group) + ":" + strconv.FormatInt(rec.QueueOffset, 10)
	return commitlog.Message{
		Topic: topic, QueueID: queue, Flag: rec.Flag, SysFlag: rec.SysFlag,
		Body: append([]byte(nil), rec.Body...), Properties: protocol.EncodeProperties(p),
		BornTimestamp: rec.BornTimestamp, BornHost: rec.BornHost, StoreHost: rec.StoreHost,
	}
}
