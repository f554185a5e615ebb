package broker

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// apiMessage is a stored message as the HTTP API shows it.
type apiMessage = protocol.HTTPMessage

// maxInflatedBody bounds the decompression of a compressed body.
const maxInflatedBody = 64 << 20

// messageOut converts a stored record.
func (b *Broker) messageOut(rec protocol.Record) apiMessage {
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

type apiProduceRequest = protocol.HTTPProduceRequest

// apiProduce stores one or many messages: a JSON batch or one raw body.
// Messages without a queue_id all go to one queue picked at random per
// request (keeping their order); all valid messages of a request are
// appended to the commitlog in one call.
func (b *Broker) apiProduce(ctx *fasthttp.RequestCtx, p apiParams) {
	b.produceHTTP(ctx, p.get("topic"), nil)
}

// produceHTTP serves a produce request; with tx its messages are stored
// as halves of that HTTP transaction (api_txhttp.go).
func (b *Broker) produceHTTP(ctx *fasthttp.RequestCtx, topic string, tx *httpTx) {
	if err := b.checkWritable(); err != nil {
		writeProblem(ctx, err)
		return
	}
	var in []apiProduceMsg
	var raw [][]byte // bodies of a raw request (aliases the request body)
	ct := string(ctx.Request.Header.ContentType())
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	switch ct = strings.TrimSpace(strings.ToLower(ct)); {
	case ct == "application/octet-stream":
		m, err := produceFromQuery(ctx)
		if err != nil {
			writeProblem(ctx, err)
			return
		}
		in = []apiProduceMsg{m}
		raw = [][]byte{ctx.PostBody()}
	case ct == "" || ct == "application/json" || strings.HasSuffix(ct, "+json"):
		var req apiProduceRequest
		if err := decodeBody(ctx, &req); err != nil {
			writeProblem(ctx, err)
			return
		}
		in = req.Messages
	default:
		writeProblem(ctx, fmt.Errorf("%w: %q: send application/json or application/octet-stream", errUnsupportedMedia, ct))
		return
	}
	if len(in) == 0 {
		writeProblem(ctx, fmt.Errorf("%w: no messages", errBadInput))
		return
	}
	if len(in) > maxProduceBatch {
		writeProblem(ctx, fmt.Errorf("%w: %d messages; at most %d per request", errBadInput, len(in), maxProduceBatch))
		return
	}
	h := sendHeader{topic: topic, queueID: -1}
	tc, err := b.resolveSendTopic(&h)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	nq := max(tc.WriteQueueNums, tc.ReadQueueNums)
	born := remoteAddrPort(ctx.RemoteAddr())
	now := time.Now().UnixMilli()
	maxBody := b.c().MaxMessageSize

	results := make([]protocol.HTTPProduceResult, len(in))
	msgs := make([]commitlog.Message, 0, len(in))
	idx := make([]int, 0, len(in)) // results index of msgs[i]
	realQ := make([]int32, 0, len(in))
	uniq := make([]string, 0, len(in))
	var bytesIn int
	for i := range in {
		var body []byte
		if raw != nil {
			body = raw[i]
		}
		m, id, err := b.buildMessage(&in[i], body, topic, h.queueID, nq, born, now, maxBody)
		if err != nil {
			pr := problemOf(err)
			results[i].Error = &pr.Problem
			continue
		}
		q := m.QueueID
		if tx != nil {
			tx.mark(&m)
			_, err = b.routeHalf(&m, &h, false) // transaction.go
		} else {
			err = b.routeSpecial(&m, &h)
		}
		if err != nil {
			pr := problemOf(err)
			results[i].Error = &pr.Problem
			continue
		}
		msgs = append(msgs, m)
		idx = append(idx, i)
		realQ = append(realQ, q)
		uniq = append(uniq, id)
		bytesIn += len(m.Body)
	}
	if err := setIdempotencyKeys(ctx, msgs, idx, len(in) > 1); err != nil {
		writeProblem(ctx, err)
		return
	}
	if len(msgs) > 0 {
		if err := b.repl.checkAcks(topic); err != nil { // replication.go
			writeProblem(ctx, fmt.Errorf("%w: %w", errNotWritable, err))
			return
		}
		var res []commitlog.AppendResult
		var dups []dedupStored
		if w := b.dedupWindow(msgs); w > 0 {
			res, dups, err = b.appendDedupResults(msgs, w) // dedup.go
		} else {
			res, err = b.clog.Append(msgs, nil)
		}
		flushTimeout := errors.Is(err, commitlog.ErrFlushTimeout) && len(res) == len(msgs)
		if err != nil && !flushTimeout {
			b.log.Warn().Err(err).Str("topic", topic).Msg("HTTP produce failed")
			writeProblem(ctx, err)
			return
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
				writeProblem(ctx, fmt.Errorf("%w: %w", errNotWritable, err))
				return
			}
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, protocol.HTTPProduceResponse{Results: results})
}

// httpAcksTimeout bounds how long an HTTP produce waits for the in-sync
// replicas (a slave that stops acking leaves the set after
// replica_lag_max, 5 s by default, and the commit point moves on).
const httpAcksTimeout = 30 * time.Second

// produceFromQuery reads a raw produce request's message attributes from
// its query parameters.
func produceFromQuery(ctx *fasthttp.RequestCtx) (apiProduceMsg, error) {
	var m apiProduceMsg
	args := ctx.QueryArgs()
	m.Tags = string(args.Peek("tags"))
	if k := string(args.Peek("keys")); k != "" {
		m.Keys = strings.Split(k, ",")
	}
	if args.Has("queue_id") {
		q, err := queryIntIn(ctx, "queue_id", 0, 0, 1<<31-1)
		if err != nil {
			return m, err
		}
		q32 := int32(q)
		m.QueueID = &q32
	}
	dl, err := queryIntIn(ctx, "delay_level", 0, 0, 1<<31-1)
	if err != nil {
		return m, err
	}
	m.DelayLevel = int32(dl)
	if m.DeliverAtMs, err = queryInt(ctx, "deliver_at_ms", 0); err != nil {
		return m, err
	}
	return m, nil
}

// buildMessage validates one produce message and builds what is stored.
// rawBody, when non-nil, is the body of a raw request.
func (b *Broker) buildMessage(in *apiProduceMsg, rawBody []byte, topic string, defQueue, nq int32, born netip.AddrPort, now int64, maxBody int) (commitlog.Message, string, error) {
	body := rawBody
	if body == nil {
		switch in.BodyEncoding {
		case "", "utf8", "utf-8":
			body = []byte(in.Body)
		case "base64":
			var err error
			if body, err = base64.StdEncoding.DecodeString(in.Body); err != nil {
				return commitlog.Message{}, "", fmt.Errorf("%w: body is not valid base64: %v", errMessageIllegal, err)
			}
		default:
			return commitlog.Message{}, "", fmt.Errorf("%w: body_encoding %q: want utf8 or base64", errMessageIllegal, in.BodyEncoding)
		}
	}
	if len(body) > maxBody {
		return commitlog.Message{}, "", fmt.Errorf("%w: body is %d bytes, the limit is %d", commitlog.ErrMessageTooLarge, len(body), maxBody)
	}
	q := defQueue
	if in.QueueID != nil {
		if *in.QueueID < 0 || *in.QueueID >= nq {
			return commitlog.Message{}, "", fmt.Errorf("%w: queue_id %d: topic %s has queues 0 to %d", errQueueIllegal, *in.QueueID, topic, nq-1)
		}
		q = *in.QueueID
	}
	props := make(map[string]string, len(in.Properties)+4)
	for k, v := range in.Properties {
		if k == "" || !protocol.ValidPropertyText(k) || !protocol.ValidPropertyText(v) {
			return commitlog.Message{}, "", fmt.Errorf("%w: property %q: names must be non-empty and neither may contain \\x01 or \\x02", errMessageIllegal, k)
		}
		props[k] = v
	}
	if in.Tags != "" {
		if !protocol.ValidPropertyText(in.Tags) {
			return commitlog.Message{}, "", fmt.Errorf("%w: tags may not contain \\x01 or \\x02", errMessageIllegal)
		}
		props[protocol.PropTags] = in.Tags
	}
	if len(in.Keys) > 0 {
		for _, k := range in.Keys {
			if k == "" || strings.ContainsAny(k, " \x01\x02") {
				return commitlog.Message{}, "", fmt.Errorf("%w: key %q: keys must be non-empty and contain no spaces", errMessageIllegal, k)
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
		BornTimestamp: now, BornHost: born, StoreHost: b.storeHost,
	}
	if _, err := m.EncodedSize(maxBody); err != nil {
		return commitlog.Message{}, "", err
	}
	return m, id, nil
}

func remoteAddrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return parseAddrPort(a.String())
}

// --- reads ---

func (b *Broker) apiMessageByID(ctx *fasthttp.RequestCtx, p apiParams) {
	raw, err := b.MessageByID(p.get("msgId"))
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	rec, err := protocol.Decode(raw)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, b.messageOut(rec))
}

func (b *Broker) apiMessagesByKey(ctx *fasthttp.RequestCtx, p apiParams) {
	topic := p.get("topic")
	if _, ok := b.topics.get(topic); !ok {
		writeProblem(ctx, fmt.Errorf("%w: %s", ErrTopicNotFound, topic))
		return
	}
	key := string(ctx.QueryArgs().Peek("key"))
	if key == "" && !ctx.QueryArgs().Has("begin_ms") {
		writeProblem(ctx, fmt.Errorf("%w: query parameter key or begin_ms is required", errBadInput))
		return
	}
	begin, err := queryInt(ctx, "begin_ms", 0)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	end, err := queryInt(ctx, "end_ms", 0)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	n, err := queryIntIn(ctx, "max", 32, 1, 1000)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	if key == "" {
		msgs, err := b.messagesByTime(topic, begin, end, int(n))
		if err != nil {
			writeProblem(ctx, err)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"messages": msgs})
		return
	}
	raws, err := b.MessagesByKey(topic, key, begin, end, int(n))
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	out := make([]apiMessage, 0, len(raws))
	for _, r := range raws {
		if rec, err := protocol.Decode(r); err == nil {
			out = append(out, b.messageOut(rec))
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, protocol.HTTPMessages{Messages: out})
}

// maxHTTPWaiters caps the long-polling HTTP requests held at once; past
// it a request that would wait is answered 429.
const maxHTTPWaiters = 8192

// apiWaitBegin counts a long-polling request in; false when too many are
// held already.
func (b *Broker) apiWaitBegin() bool {
	if b.api.waiters.Add(1) > maxHTTPWaiters {
		b.api.waiters.Add(-1)
		return false
	}
	return true
}

func (b *Broker) apiWaitEnd() { b.api.waiters.Add(-1) }

// apiReadQueue reads a queue from an offset, without any group state: the
// caller keeps the offset (next_offset). An offset below the queue's first
// kept message reads from there; one past the end answers no messages and
// next_offset = max_offset.
func (b *Broker) apiReadQueue(ctx *fasthttp.RequestCtx, p apiParams) {
	topic := p.get("topic")
	tc, ok := b.topics.get(topic)
	if !ok {
		writeProblem(ctx, fmt.Errorf("%w: %s", ErrTopicNotFound, topic))
		return
	}
	if !protocol.PermReadable(tc.Perm) {
		writeProblem(ctx, fmt.Errorf("%w: topic %s is not readable", errNoPermission, topic))
		return
	}
	q64, err := strconv.ParseInt(p.get("queue"), 10, 32)
	if err != nil || q64 < 0 || q64 >= int64(max(tc.ReadQueueNums, tc.WriteQueueNums)) {
		writeProblem(ctx, fmt.Errorf("%w: queue %q of topic %s (queues 0 to %d)", errQueueInvalid, p.get("queue"), topic, max(tc.ReadQueueNums, tc.WriteQueueNums)-1))
		return
	}
	q := int32(q64)
	offset, err := queryIntIn(ctx, "offset", 0, 0, 1<<62)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	n, err := queryIntIn(ctx, "max", 32, 1, 1000)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	waitMs, err := queryIntIn(ctx, "wait_ms", 0, 0, 1<<40)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	filter, tags := apiTagFilter(string(ctx.QueryArgs().Peek("tag")))
	poll := b.newHTTPPoll(time.Duration(waitMs) * time.Millisecond)
	defer poll.end()
	for {
		minOff, maxOff := b.minOffset(topic, q), b.cq.MaxOffset(topic, q)
		offset = max(offset, minOff)
		if offset > maxOff {
			offset = maxOff
		}
		var msgs []apiMessage
		if offset < maxOff {
			msgs, offset, err = b.readQueueOnce(topic, q, offset, int(n), filter, tags, maxOff)
			if err != nil {
				writeProblem(ctx, err)
				return
			}
		}
		if len(msgs) > 0 || poll.over() {
			if msgs == nil {
				msgs = []apiMessage{}
			}
			writeJSON(ctx, fasthttp.StatusOK, protocol.HTTPQueueRead{Messages: msgs, NextOffset: offset, MinOffset: minOff, MaxOffset: maxOff})
			return
		}
		if err := poll.wait([]holdKey{{topic, q}}); err != nil {
			writeProblem(ctx, err)
			return
		}
	}
}

// readQueueOnce reads up to n messages of (topic, q) from offset that pass
// the tag filter, returning them and the next offset.
func (b *Broker) readQueueOnce(topic string, q int32, offset int64, n int, filter tagFilter, tags map[string]bool, maxOff int64) ([]apiMessage, int64, error) {
	pr := pullRequest{topic: topic, queueID: q, offset: offset, maxMsgs: n}
	body, _, next, err := b.readMessages(&pr, filter, maxOff)
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
		out = append(out, b.messageOut(rec))
	}
	return out, next, nil
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
