package broker

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// apiMessage is a stored message as the HTTP API shows it.
type apiMessage = protocol.HTTPMessage

// maxInflatedBody bounds the decompression of a compressed body.
const maxInflatedBody = 64 << 20

// messageOut converts a stored record.
func messageOut(rec protocol.Record) apiMessage {
	m := apiMessage{
		Topic: string(rec.Topic), QueueID: rec.QueueID, QueueOffset: rec.QueueOffset,
		CommitlogOffset: rec.PhysicalOffset, OffsetMsgID: protocol.OffsetMsgID(rec.StoreHost, rec.PhysicalOffset),
		Keys: []string{}, Properties: map[string]string{}, BornAtMs: rec.BornTimestamp,
		StoredAtMs: rec.StoreTimestamp, ReconsumeTimes: rec.ReconsumeTimes,
	}
	for k, v := range protocol.ParseProperties(rec.Properties) {
		switch {
		case k == protocol.PropTags:
			m.Tags = v
		case k == protocol.PropKeys:
			m.Keys = append(m.Keys, strings.Fields(v)...)
		case k == protocol.PropUniqKey:
			m.MsgID = v
		}
		if protocol.IsSystemProperty(k) {
			if m.SystemProperties == nil {
				m.SystemProperties = map[string]string{}
			}
			m.SystemProperties[k] = v
		} else {
			m.Properties[k] = v
		}
	}
	if m.MsgID == "" {
		m.MsgID = m.OffsetMsgID
	}
	body := rec.Body
	if rec.SysFlag&protocol.SysFlagCompressed != 0 {
		if zr, err := zlib.NewReader(bytes.NewReader(body)); err == nil {
			if out, err := io.ReadAll(io.LimitReader(zr, maxInflatedBody)); err == nil {
				body = out
			}
		}
	}
	if utf8.Valid(body) {
		m.Body, m.BodyEncoding = string(body), "utf8"
	} else {
		m.Body, m.BodyEncoding = base64.StdEncoding.EncodeToString(body), "base64"
	}
	return m
}

// --- produce ---

// maxProduceBatch caps the messages of one produce request.
const maxProduceBatch = 1000

type apiProduceMsg = protocol.HTTPProduceMessage

// ProduceRequest is a produce request as the HTTP API read it.
type ProduceRequest struct {
	Topic    string
	Messages []protocol.HTTPProduceMessage
	// Raw, when not nil, is the body of the one message of a raw
	// (application/octet-stream) request.
	Raw []byte
	// IdempotencyKey is the request's Idempotency-Key header; "" for none.
	IdempotencyKey string
	// Born is the client's address.
	Born netip.AddrPort
}

// Produce stores one or many messages: a JSON batch or one raw body.
// Messages without a queue_id all go to one queue picked at random per
// request (keeping their order); all valid messages of a request are
// appended to the commitlog in one call. read reads the request once the
// broker takes sends. The answer has one result per message; a message
// refused alone has its error at its index in errs (nil otherwise).
func (v HTTPMessagesView) Produce(read func() (ProduceRequest, error)) (protocol.HTTPProduceResponse, []error, error) {
	return v.b.produce(read, nil)
}

// Writable is nil when the broker takes sends, else why not.
func (v HTTPMessagesView) Writable() error { return v.b.sender.checkWritable() }

// produce serves a produce request; with tx its messages are stored as
// halves of that HTTP transaction (api_txhttp.go).
func (b *Broker) produce(read func() (ProduceRequest, error), tx *httpTx) (protocol.HTTPProduceResponse, []error, error) {
	var none protocol.HTTPProduceResponse
	if err := b.sender.checkWritable(); err != nil {
		return none, nil, err
	}
	req, err := read()
	if err != nil {
		return none, nil, err
	}
	in, raw, topic := req.Messages, req.Raw, req.Topic
	if len(in) == 0 {
		return none, nil, fmt.Errorf("%w: no messages", protocol.ErrHTTPBadInput)
	}
	if len(in) > maxProduceBatch {
		return none, nil, fmt.Errorf("%w: %d messages; at most %d per request", protocol.ErrHTTPBadInput, len(in), maxProduceBatch)
	}
	h := sendHeader{topic: topic, queueID: -1}
	tc, err := b.sender.resolveSendTopic(&h)
	if err != nil {
		return none, nil, err
	}
	nq := max(tc.WriteQueueNums, tc.ReadQueueNums)
	born := req.Born
	now := time.Now().UnixMilli()
	maxBody := b.c().MaxMessageSize

	results := make([]protocol.HTTPProduceResult, len(in))
	errs := make([]error, len(in))
	msgs := make([]commitlog.Message, 0, len(in))
	idx := make([]int, 0, len(in)) // results index of msgs[i]
	realQ := make([]int32, 0, len(in))
	uniq := make([]string, 0, len(in))
	var bytesIn int
	for i := range in {
		var body []byte
		if raw != nil {
			body = raw
		}
		m, id, err := buildMessage(&in[i], body, topic, h.queueID, nq, born, b.storeHost, now, maxBody)
		if err != nil {
			errs[i] = err
			continue
		}
		q := m.QueueID
		if tx != nil {
			tx.mark(&m)
			_, err = b.txn.routeHalf(&m, &h, false) // transaction.go
		} else {
			err = b.sender.routeSpecial(&m, &h)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
		realQ = append(realQ, q)
		uniq = append(uniq, id)
		bytesIn += len(m.Body)
	}
	if err := setIdempotencyKeys(req.IdempotencyKey, msgs, idx, len(in) > 1); err != nil {
		return none, nil, err
	}
	if len(msgs) > 0 {
		if err := b.repl.checkAcks(topic); err != nil { // replication.go
			return none, nil, fmt.Errorf("%w: %w", ErrNotWritable, err)
		}
		var res []commitlog.AppendResult
		var dups []dedupStored
		if w := b.dedup.window(msgs); w > 0 {
			res, dups, err = b.dedup.storeResults(msgs, w) // dedup.go
		} else {
			res, err = b.clog.Append(msgs, nil)
		}
		flushTimeout := errors.Is(err, commitlog.ErrFlushTimeout) && len(res) == len(msgs)
		if err != nil && !flushTimeout {
			b.log.Warn().Err(err).Str("topic", topic).Msg("HTTP produce failed")
			return none, nil, err
		}
		for j, r := range res {
			out := &results[idx[j]]
			q, off := realQ[j], r.QueueOffset
			out.MsgID, out.OffsetMsgID = uniq[j], protocol.OffsetMsgID(b.storeHost, r.Offset)
			out.QueueID, out.QueueOffset = &q, &off
			out.Scheduled = protocol.IsScheduledTopic(msgs[j].Topic)
			if dups != nil && dups[j].Dup {
				q = dups[j].QueueID
				out.Duplicate = true
				if rec, _, err := b.clog.ReadRecord(r.Offset, nil); err == nil {
					if id, ok := protocol.Property(rec.Properties, protocol.PropUniqKey); ok {
						out.MsgID = id // the original message's id
					}
				}
			}
			if flushTimeout {
				out.FlushStatus = "flush_disk_timeout"
			}
		}
		b.metrics.messagesIn(topic, len(msgs), bytesIn)
		// acks=all: answered once every in-sync replica has them.
		if len(res) > 0 {
			var end int64
			for _, r := range res {
				end = max(end, r.End())
			}
			if err := b.repl.awaitCommit(topic, end, httpAcksTimeout); err != nil {
				return none, nil, fmt.Errorf("%w: %w", ErrNotWritable, err)
			}
		}
	}
	return protocol.HTTPProduceResponse{Results: results}, errs, nil
}

// httpAcksTimeout bounds how long an HTTP produce waits for the in-sync
// replicas (a slave that stops acking leaves the set after
// replica_lag_max, 5 s by default, and the commit point moves on).
const httpAcksTimeout = 30 * time.Second

// buildMessage validates one produce message and builds what is stored
// by store; rawBody, when non-nil, is the body of a raw request.
func buildMessage(in *apiProduceMsg, rawBody []byte, topic string, defQueue, nq int32, born, store netip.AddrPort, now int64, maxBody int) (commitlog.Message, string, error) {
	body := rawBody
	if body == nil {
		switch in.BodyEncoding {
		case "", "utf8", "utf-8":
			body = []byte(in.Body)
		case "base64":
			var err error
			if body, err = base64.StdEncoding.DecodeString(in.Body); err != nil {
				return commitlog.Message{}, "", fmt.Errorf("%w: body is not valid base64: %v", protocol.ErrHTTPMessageIllegal, err)
			}
		default:
			return commitlog.Message{}, "", fmt.Errorf("%w: body_encoding %q: want utf8 or base64", protocol.ErrHTTPMessageIllegal, in.BodyEncoding)
		}
	}
	if len(body) > maxBody {
		return commitlog.Message{}, "", fmt.Errorf("%w: body is %d bytes, the limit is %d", commitlog.ErrMessageTooLarge, len(body), maxBody)
	}
	q := defQueue
	if in.QueueID != nil {
		if *in.QueueID < 0 || *in.QueueID >= nq {
			return commitlog.Message{}, "", fmt.Errorf("%w: queue_id %d: topic %s has queues 0 to %d", ErrQueueIllegal, *in.QueueID, topic, nq-1)
		}
		q = *in.QueueID
	}
	props := make(map[string]string, len(in.Properties)+4)
	for k, v := range in.Properties {
		if k == "" || !protocol.ValidPropertyText(k) || !protocol.ValidPropertyText(v) {
			return commitlog.Message{}, "", fmt.Errorf("%w: property %q: names must be non-empty and neither may contain \\x01 or \\x02", protocol.ErrHTTPMessageIllegal, k)
		}
		props[k] = v
	}
	if in.Tags != "" {
		if !protocol.ValidPropertyText(in.Tags) {
			return commitlog.Message{}, "", fmt.Errorf("%w: tags may not contain \\x01 or \\x02", protocol.ErrHTTPMessageIllegal)
		}
		props[protocol.PropTags] = in.Tags
	}
	if len(in.Keys) > 0 {
		for _, k := range in.Keys {
			if k == "" || strings.ContainsAny(k, " \x01\x02") {
				return commitlog.Message{}, "", fmt.Errorf("%w: key %q: keys must be non-empty and contain no spaces", protocol.ErrHTTPMessageIllegal, k)
			}
		}
		props[protocol.PropKeys] = strings.Join(in.Keys, " ")
	}
	switch {
	case in.DelayLevel < 0:
		return commitlog.Message{}, "", fmt.Errorf("%w: delay_level %d must be 1 or more", ErrDelayInvalid, in.DelayLevel)
	case in.DeliverAtMs < 0:
		return commitlog.Message{}, "", fmt.Errorf("%w: deliver_at_ms %d must be a time in ms", ErrDelayInvalid, in.DeliverAtMs)
	case in.DelayLevel > 0 && in.DeliverAtMs > 0:
		return commitlog.Message{}, "", fmt.Errorf("%w: give delay_level or deliver_at_ms, not both", ErrDelayInvalid)
	case in.DelayLevel > 0:
		props[protocol.PropDelayLevel] = strconv.Itoa(int(in.DelayLevel))
	case in.DeliverAtMs > 0:
		props[protocol.PropTimerDeliverMS] = strconv.FormatInt(in.DeliverAtMs, 10)
	}
	id := props[protocol.PropUniqKey]
	if id == "" {
		id = protocol.NewUniqID()
		props[protocol.PropUniqKey] = id
	}
	m := commitlog.Message{
		Topic: topic, QueueID: q, Body: body, Properties: protocol.EncodeProperties(props),
		BornTimestamp: now, BornHost: born, StoreHost: store,
	}
	if _, err := m.EncodedSize(maxBody); err != nil {
		return commitlog.Message{}, "", err
	}
	return m, id, nil
}

// --- reads ---

// HTTPMessagesView is the broker's messages as the HTTP API serves them
// (and api_trace.go): reads through the message reader, waits on the held
// waits, and writes (produce, resend) through the broker.
type HTTPMessagesView struct {
	b        *Broker
	messages *messageReader
	holds    *heldPulls
}

// ByID is the message with a message id (client-made or broker-made).
func (v HTTPMessagesView) ByID(id string) (protocol.HTTPMessage, error) {
	raw, err := v.messages.byID(id)
	if err != nil {
		return protocol.HTTPMessage{}, err
	}
	rec, err := protocol.Decode(raw)
	if err != nil {
		return protocol.HTTPMessage{}, err
	}
	return messageOut(rec), nil
}

// Find is up to n messages of topic stored between begin and end (ms;
// end 0: no end), with key unless key is "".
func (v HTTPMessagesView) Find(topic, key string, begin, end int64, n int) ([]protocol.HTTPMessage, error) {
	rd := v.messages
	if _, ok := rd.topics.get(topic); !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	if key == "" {
		return rd.messagesByTime(topic, begin, end, n)
	}
	raws, err := rd.byKey(topic, key, begin, end, n)
	if err != nil {
		return nil, err
	}
	out := make([]apiMessage, 0, len(raws))
	for _, r := range raws {
		if rec, err := protocol.Decode(r); err == nil {
			out = append(out, messageOut(rec))
		}
	}
	return out, nil
}

// Queue checks that topic exists and may be read and that queue names
// one of its queues.
func (v HTTPMessagesView) Queue(topic, queue string) (int32, error) {
	tc, ok := v.messages.topics.get(topic)
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	if !protocol.PermReadable(tc.Perm) {
		return 0, fmt.Errorf("%w: topic %s is not readable", ErrNoPermission, topic)
	}
	q64, err := strconv.ParseInt(queue, 10, 32)
	if err != nil || q64 < 0 || q64 >= int64(max(tc.ReadQueueNums, tc.WriteQueueNums)) {
		return 0, fmt.Errorf("%w: queue %q of topic %s (queues 0 to %d)", protocol.ErrHTTPQueueInvalid, queue, topic, max(tc.ReadQueueNums, tc.WriteQueueNums)-1)
	}
	return int32(q64), nil
}

// ReadQueue reads up to n messages of a queue from offset, without any
// group state: the caller keeps the offset (next_offset). An offset below
// the queue's first kept message reads from there; one past the end
// answers no messages and next_offset = max_offset. With nothing to read
// it waits up to wait (at most long_poll_max) for messages. tag is a tag
// expression ("" or "*": every message).
func (v HTTPMessagesView) ReadQueue(topic string, q int32, offset int64, n int, wait time.Duration, tag string) (protocol.HTTPQueueRead, error) {
	rd := v.messages
	filter, tags := apiTagFilter(tag)
	poll := v.holds.newHTTPPoll(wait)
	defer poll.end()
	for {
		minOff, maxOff := rd.queues.minOffset(topic, q), rd.cq.MaxOffset(topic, q)
		offset = max(offset, minOff)
		if offset > maxOff {
			offset = maxOff
		}
		var msgs []apiMessage
		if offset < maxOff {
			var err error
			msgs, offset, err = rd.readQueueOnce(topic, q, offset, n, filter, tags, maxOff)
			if err != nil {
				return protocol.HTTPQueueRead{}, err
			}
		}
		if len(msgs) > 0 || poll.over() {
			if msgs == nil {
				msgs = []apiMessage{}
			}
			return protocol.HTTPQueueRead{Messages: msgs, NextOffset: offset, MinOffset: minOff, MaxOffset: maxOff}, nil
		}
		if err := poll.wait([]holdKey{{topic, q}}); err != nil {
			return protocol.HTTPQueueRead{}, err
		}
	}
}

// apiTagFilter parses a tag expression ("", "*", "A", "A || B") into the
// hash filter and the exact tag set (nil: every tag).
func apiTagFilter(expr string) (tagFilter, map[string]bool) {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == remoting.SubscribeAll {
		return tagFilter{all: true}, nil
	}
	s := newSubscription(remoting.SubscriptionData{SubString: expr}, time.Time{})
	return filterOf(s), s.tags
}
