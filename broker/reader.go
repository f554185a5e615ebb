package broker

// Reads of stored messages for the HTTP API and the lookups by message
// id and key: by queue offset, by store time, through the key index, and
// the search for the original a retry, dead letter or resent copy was
// made from.

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// messageReader reads stored messages, the Broker's messages field.
type messageReader struct {
	clog   *commitlog.Log
	cq     *consumequeue.Store
	topics *topicTable
	keys   *keyIndex
	queues *queueReader // a queue's bounds and pull reads
}

// scanQueue calls fn for the records of (topic, q) from queue offset from,
// up to limit of them or until fn returns false; it returns how many it
// read.
func (rd *messageReader) scanQueue(topic string, q int32, from int64, limit int, fn func(rec protocol.Record, queueOffset int64) bool) (int, error) {
	var es []consumequeue.Entry
	var buf []byte
	n := 0
	maxOff := rd.cq.MaxOffset(topic, q)
	for off := max(from, rd.queues.minOffset(topic, q)); off < maxOff && n < limit; {
		var err error
		es, err = rd.cq.Get(topic, q, off, min(64, limit-n), es)
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
			if rec, buf, err = rd.clog.ReadRecord(e.Offset, buf); err != nil {
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
func (rd *messageReader) originalRecord(id string) (orig protocol.Record, found protocol.Record, err error) {
	raw, err := rd.byID(id)
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
		if rec, ok := rd.findOriginal(found); ok {
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
func (rd *messageReader) findOriginal(c protocol.Record) (protocol.Record, bool) {
	if o, ok := c.Property(protocol.PropOriginMessageID); ok {
		if _, off, err := protocol.ParseOffsetMsgID(o); err == nil {
			if rec, _, err := rd.clog.ReadRecord(off, nil); err == nil && rec.PhysicalOffset == off {
				return rec, true
			}
		}
	}
	uniq, _ := c.Property(protocol.PropUniqKey)
	topic := dlq.OriginalTopic(c)
	tc, ok := rd.topics.get(topic)
	if uniq == "" || !ok || isRetryOrDLQ(topic) {
		return protocol.Record{}, false
	}
	var orig protocol.Record
	found := false
	for q := int32(0); q < max(tc.ReadQueueNums, tc.WriteQueueNums); q++ {
		from, err := rd.cq.OffsetByTime(topic, q, c.BornTimestamp-1000)
		if err != nil {
			continue
		}
		_, _ = rd.scanQueue(topic, q, from, originSearch, func(rec protocol.Record, _ int64) bool {
			if rec.StoreTimestamp > c.StoreTimestamp || (found && rec.PhysicalOffset > orig.PhysicalOffset) {
				return false
			}
			if id, _ := rec.Property(protocol.PropUniqKey); id == uniq {
				// rec aliases the scan's buffer: read it again into its own.
				if r, _, err := rd.clog.ReadRecord(rec.PhysicalOffset, nil); err == nil {
					orig, found = r, true
				}
				return false
			}
			return true
		})
	}
	return orig, found
}

// messagesByTime reads up to n messages of topic stored between begin and
// end (ms, inclusive), oldest first: each queue is searched by time and
// read forward.
func (rd *messageReader) messagesByTime(topic string, begin, end int64, n int) ([]apiMessage, error) {
	tc, ok := rd.topics.get(topic)
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
		from, err := rd.cq.OffsetByTime(topic, q, begin)
		if err != nil {
			return nil, err
		}
		if _, err := rd.scanQueue(topic, q, from, n, func(rec protocol.Record, _ int64) bool {
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

// readQueueOnce reads up to n messages of (topic, q) from offset that pass
// the tag filter, returning them and the next offset.
func (rd *messageReader) readQueueOnce(topic string, q int32, offset int64, n int, filter tagFilter, tags map[string]bool, maxOff int64) ([]apiMessage, int64, error) {
	pr := pullRequest{topic: topic, queueID: q, offset: offset, maxMsgs: n}
	body, _, next, err := rd.queues.readMessages(&pr, filter, maxOff)
	if err != nil {
		return nil, offset, err
	}
	var out []apiMessage
	for len(body) > 0 {
		rec, err := protocol.Decode(body)
		if err != nil {
			return out, next, err
		}
		body = body[rec.Size:]
		if tags != nil {
			if t, _ := rec.Property(protocol.PropTags); !tags[t] {
				continue // a tag hash collision
			}
		}
		out = append(out, messageOut(rec))
	}
	return out, next, nil
}

// byID returns the raw stored record of a message id: an offset id
// (from a send response) or a client id (UNIQ_KEY).
func (rd *messageReader) byID(id string) ([]byte, error) {
	if host, off, err := protocol.ParseOffsetMsgID(id); err == nil {
		// The record there must be the one the id names: stored at that
		// offset by that host (an all-zero id names no message).
		if rec, raw, err := rd.clog.ReadRecord(off, nil); err == nil && rec.PhysicalOffset == off && rec.StoreHost == host && string(rec.Topic) != protocol.MetaTopic {
			return raw, nil
		}
	}
	off, size, ok, err := rd.keys.lookupUniq(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no message with id %s", ErrMessageNotFound, id)
	}
	raw, err := rd.clog.Read(off, size, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: message %s is no longer stored: %v", ErrMessageNotFound, id, err)
	}
	// An entry can outlive its record: after a crash in async-flush mode
	// the log may recover to below it, and other records take its place.
	if rec, err := protocol.Decode(raw); err != nil || !hasUniqKey(rec, id) {
		return nil, fmt.Errorf("%w: message %s is no longer stored", ErrMessageNotFound, id)
	}
	return raw, nil
}

func hasUniqKey(rec protocol.Record, id string) bool {
	v, ok := protocol.Property(rec.Properties, protocol.PropUniqKey)
	return ok && v == id
}

// byKey returns raw records of topic whose KEYS contain key,
// stored between begin and end (ms, inclusive).
func (rd *messageReader) byKey(topic, key string, begin, end int64, max int) ([][]byte, error) {
	if end <= 0 {
		end = 1<<63 - 1
	}
	if max <= 0 || max > 1000 {
		max = 1000
	}
	locs, err := rd.keys.lookupKey(topic, key, begin, end, max)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, l := range locs {
		raw, err := rd.clog.Read(l[0], int32(l[1]), nil)
		if err != nil {
			continue // expired with its segment
		}
		if rec, err := protocol.Decode(raw); err == nil && bytes.Equal(rec.Topic, []byte(topic)) {
			out = append(out, raw)
		}
	}
	return out, nil
}

// messagesIn is how many messages a topic keeps: the sum over its queues
// of max offset - min offset.
func (rd *messageReader) messagesIn(topic string, queues int32) int64 {
	var n int64
	for q := int32(0); q < queues; q++ {
		n += max(0, rd.cq.MaxOffset(topic, q)-rd.queues.minOffset(topic, q))
	}
	return n
}
