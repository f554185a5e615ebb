package broker

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// sendHeader is a send request's header, from either the V1 (long names)
// or the V2 (one-letter names) form.
type sendHeader struct {
	producerGroup     string
	topic             string
	defaultTopic      string
	defaultQueueNums  int32
	queueID           int32
	sysFlag           int32
	bornTimestamp     int64
	flag              int32
	properties        string
	reconsumeTimes    int32
	maxReconsumeTimes int32
	hasMaxReconsume   bool
	batch             bool
}

// v2Key maps V1 header names to the one-letter V2 keys.
var v2Key = map[string]string{
	"producerGroup": "a", "topic": "b", "defaultTopic": "c", "defaultTopicQueueNums": "d",
	"queueId": "e", "sysFlag": "f", "bornTimestamp": "g", "flag": "h", "properties": "i",
	"reconsumeTimes": "j", "unitMode": "k", "maxReconsumeTimes": "l", "batch": "m",
}

// The fields of a send header, in the order of the V2 letters ("a" is
// sendProducerGroup, "m" is sendBatch).
const (
	sendProducerGroup = iota
	sendTopic
	sendDefaultTopic
	sendDefaultQueueNums
	sendQueueID
	sendSysFlag
	sendBornTimestamp
	sendFlag
	sendProperties
	sendReconsumeTimes
	sendUnitMode
	sendMaxReconsumeTimes
	sendBatch
	sendFields
)

// sendV1Names are the V1 names of the fields, by index.
var sendV1Names = [sendFields]string{
	"producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums", "queueId", "sysFlag",
	"bornTimestamp", "flag", "properties", "reconsumeTimes", "unitMode", "maxReconsumeTimes", "batch",
}

// sendFieldIndex is the field a key names, or -1.
func sendFieldIndex(key string, v2 bool) int {
	if v2 {
		if len(key) == 1 && key[0] >= 'a' && key[0] < 'a'+sendFields {
			return int(key[0] - 'a')
		}
		return -1
	}
	switch key {
	case "producerGroup":
		return sendProducerGroup
	case "topic":
		return sendTopic
	case "defaultTopic":
		return sendDefaultTopic
	case "defaultTopicQueueNums":
		return sendDefaultQueueNums
	case "queueId":
		return sendQueueID
	case "sysFlag":
		return sendSysFlag
	case "bornTimestamp":
		return sendBornTimestamp
	case "flag":
		return sendFlag
	case "properties":
		return sendProperties
	case "reconsumeTimes":
		return sendReconsumeTimes
	case "unitMode":
		return sendUnitMode
	case "maxReconsumeTimes":
		return sendMaxReconsumeTimes
	case "batch":
		return sendBatch
	}
	return -1
}

// parseSendHeader reads a send header. A decoded request's wire fields are
// read in one pass, without a map; other forms through Lookup.
func parseSendHeader(req *remoting.Command) (sendHeader, error) {
	var h sendHeader
	v2 := req.Code == protocol.ReqSendMessageV2 || req.Code == protocol.ReqSendBatchMessage
	var vals [sendFields]string
	var has [sendFields]bool
	if fs := req.WireFields(); fs != nil {
		for _, f := range fs {
			if i := sendFieldIndex(f.Key, v2); i >= 0 {
				vals[i], has[i] = f.Value, true
			}
		}
	} else {
		for i, name := range sendV1Names {
			if v2 {
				name = string(rune('a' + i))
			}
			vals[i], has[i] = req.Lookup(name)
		}
	}
	num := func(i, bits int, required bool) (int64, error) {
		s := vals[i]
		if s == "" {
			if required {
				return 0, fmt.Errorf("%w: missing %s", ErrInvalidRequest, sendV1Names[i])
			}
			return 0, nil
		}
		v, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("%w: %s %q is not an integer", ErrInvalidRequest, sendV1Names[i], s)
		}
		return v, nil
	}
	var err error
	var v int64
	if h.topic = vals[sendTopic]; h.topic == "" {
		return h, fmt.Errorf("%w: missing topic", ErrInvalidRequest)
	}
	h.producerGroup = vals[sendProducerGroup]
	h.defaultTopic = vals[sendDefaultTopic]
	if v, err = num(sendDefaultQueueNums, 32, false); err != nil {
		return h, err
	}
	h.defaultQueueNums = int32(v)
	if v, err = num(sendQueueID, 32, true); err != nil {
		return h, err
	}
	h.queueID = int32(v)
	if v, err = num(sendSysFlag, 32, false); err != nil {
		return h, err
	}
	h.sysFlag = int32(v)
	if h.bornTimestamp, err = num(sendBornTimestamp, 64, false); err != nil {
		return h, err
	}
	if v, err = num(sendFlag, 32, false); err != nil {
		return h, err
	}
	h.flag = int32(v)
	h.properties = vals[sendProperties]
	if v, err = num(sendReconsumeTimes, 32, false); err != nil {
		return h, err
	}
	h.reconsumeTimes = int32(v)
	if vals[sendMaxReconsumeTimes] != "" {
		if v, err = num(sendMaxReconsumeTimes, 32, false); err != nil {
			return h, err
		}
		h.maxReconsumeTimes, h.hasMaxReconsume = int32(v), true
	}
	if has[sendBatch] {
		h.batch = vals[sendBatch] == "true"
	}
	return h, nil
}

// sendError maps an error to a response code and remark.
func sendError(err error) (int16, string) {
	switch {
	case errors.Is(err, commitlog.ErrMessageTooLarge), errors.Is(err, commitlog.ErrPropertiesTooLarge),
		errors.Is(err, commitlog.ErrTopicInvalid), errors.Is(err, ErrTopicInvalid), errors.Is(err, ErrInvalidRequest),
		errors.Is(err, ErrDelayInvalid):
		return protocol.RespMessageIllegal, err.Error()
	case errors.Is(err, ErrTopicNotFound):
		return protocol.RespTopicNotExist, err.Error()
	case errors.Is(err, ErrNoPermission), errors.Is(err, ErrTopicSystem):
		return protocol.RespNoPermission, err.Error()
	case errors.Is(err, commitlog.ErrReadOnly), errors.Is(err, commitlog.ErrClosed), errors.Is(err, ErrNotWritable),
		errors.Is(err, commitlog.ErrNoSpace), errors.Is(err, ErrNotMaster), errors.Is(err, ErrNotEnoughReplicas):
		return protocol.RespServiceNotAvailable, err.Error()
	}
	return protocol.RespSystemError, err.Error()
}

// Errors of a send (and of the other writes), which the remoting and HTTP
// answers map to their codes.
var (
	// ErrNoPermission: the topic or the broker does not take the write.
	ErrNoPermission = errors.New("broker: no permission")
	// ErrNotWritable: the broker accepts no sends now (starting, shutting
	// down, drained, disk full); the error says which.
	ErrNotWritable = errors.New("broker: not accepting messages")
	// ErrQueueIllegal is answered SYSTEM_ERROR as RocketMQ does, which makes
	// the client retry on another queue.
	ErrQueueIllegal = errors.New("broker: illegal queue")
)

var msgPool = sync.Pool{New: func() any { s := make([]commitlog.Message, 0, 64); return &s }}

// sendHandler serves the send codes one at a time or, when a client
// pipelines them on one connection, in groups: one append of every
// group's messages (one reservation, one wait for the write) and one
// answer each.
type sendHandler struct {
	ch  *clientHandlers
	obs prometheus.Observer
}

func (h sendHandler) ServeRemoting(c *remoting.Conn, req *remoting.Command) {
	reqs := [1]*remoting.Command{req}
	h.ServeBatch(c, reqs[:])
}

func (h sendHandler) ServeBatch(c *remoting.Conn, reqs []*remoting.Command) {
	start := time.Now()
	h.ch.handleSends(c, reqs)
	ms := float64(time.Since(start).Microseconds()) / 1000
	for range reqs {
		h.obs.Observe(ms)
	}
}

// sendSpan is one request's messages within a group's append; dd is set
// for a request to a topic with a dedup window, whose duplicates are not
// in the group's messages (dedup.go).
type sendSpan struct {
	req         *remoting.Command
	first, size int
	dd          *dedupSpan
}

var spanPool = sync.Pool{New: func() any { s := make([]sendSpan, 0, 64); return &s }}

// handleSends stores the messages of send requests read together from c
// with one append, in order, and answers each. A request that fails its
// checks is answered alone and appends nothing.
func (ch *clientHandlers) handleSends(c *remoting.Conn, reqs []*remoting.Command) {
	if why := ch.b.writable(); why != "" {
		for _, req := range reqs {
			reply(c, req, protocol.RespServiceNotAvailable, "service not available now: "+why)
		}
		return
	}
	born := parseAddrPort(c.RemoteAddr())
	msgsp := msgPool.Get().(*[]commitlog.Message)
	defer func() { clear(*msgsp); *msgsp = (*msgsp)[:0]; msgPool.Put(msgsp) }()
	spansp := spanPool.Get().(*[]sendSpan)
	defer func() { clear(*spansp); *spansp = (*spansp)[:0]; spanPool.Put(spansp) }()
	msgs, spans := *msgsp, *spansp
	var g sendGroup
	for _, req := range reqs {
		first := len(msgs)
		var err error
		msgs, err = ch.prepareSend(req, msgs, born)
		if err == nil && len(msgs) == first {
			err = fmt.Errorf("%w: no message to send", ErrInvalidRequest)
		}
		if err != nil {
			clear(msgs[first:])
			msgs = msgs[:first]
			code, remark := sendError(err)
			reply(c, req, code, remark)
			continue
		}
		if err := ch.b.repl.checkAcks(msgs[first].Topic); err != nil {
			clear(msgs[first:])
			msgs = msgs[:first]
			reply(c, req, protocol.RespServiceNotAvailable, err.Error())
			continue
		}
		if ch.b.idem.handleSend(c, req, msgs[first:]) { // idempotent.go
			msgs = msgs[:first]
			continue
		}
		if w := ch.b.dedup.window(msgs[first:]); w > 0 {
			flush := func(m []commitlog.Message, s []sendSpan) { ch.appendGroup(c, &g, m, s) }
			msgs, spans = ch.b.dedup.group(c, &g, req, msgs, spans, first, w, flush) // dedup.go
			continue
		}
		spans = append(spans, sendSpan{req: req, first: first, size: len(msgs) - first})
	}
	*msgsp, *spansp = msgs, spans
	ch.appendGroup(c, &g, msgs, spans)
}

// sendGroup is what a group holding dedup spans holds until it is
// answered: the producer snapshot's read lock and the spans' keys.
type sendGroup struct {
	snap bool // holds idem.snapMu for reading
}

// appendGroup appends a group's messages, answers its requests and lets
// go of what the group holds.
func (ch *clientHandlers) appendGroup(c *remoting.Conn, g *sendGroup, msgs []commitlog.Message, spans []sendSpan) {
	if len(spans) == 0 {
		g.done(ch.b.dedup, spans, false)
		return
	}
	answer := func(res []commitlog.AppendResult, err error) {
		full := false
		if g.snap && res != nil {
			full = ch.b.dedup.record(spans, res, msgs) // dedup.go
		}
		for _, sp := range spans {
			var r []commitlog.AppendResult
			if res != nil {
				r = res[sp.first : sp.first+sp.size]
			}
			if sp.dd != nil {
				ch.b.dedup.answer(c, sp, msgs, r, err) // dedup.go
				continue
			}
			resp := ch.b.sender.sendResponse(sp.req, msgs[sp.first:sp.first+sp.size], r, err)
			if r == nil {
				_ = c.Reply(resp)
				continue
			}
			ch.b.repl.reply(c, sp.req, resp, msgs[sp.first].Topic, r[len(r)-1].End()) // replication.go
		}
		g.done(ch.b.dedup, spans, full)
	}
	if len(msgs) == 0 {
		answer([]commitlog.AppendResult{}, nil) // only duplicates
		return
	}
	ch.b.sender.appendMessages(msgs, answer)
}

// prepareSend checks one send request and appends its messages to msgs.
func (ch *clientHandlers) prepareSend(req *remoting.Command, msgs []commitlog.Message, born netip.AddrPort) ([]commitlog.Message, error) {
	h, err := parseSendHeader(req)
	if err != nil {
		return msgs, err
	}
	if _, err := ch.b.sender.resolveSendTopic(&h); err != nil {
		return msgs, err
	}
	first := len(msgs)
	if req.Code == protocol.ReqSendBatchMessage || h.batch {
		if h.properties != "" {
			if _, ok := protocol.Property([]byte(h.properties), protocol.PropDelayLevel); ok {
				return msgs, fmt.Errorf("%w: a batch message may not carry a delay level", ErrInvalidRequest)
			}
		}
		if msgs, err = decodeBatch(req.Body, msgs, &h, born, ch.b.storeHost); err != nil {
			return msgs, err
		}
	} else {
		msgs = append(msgs, commitlog.Message{
			Topic: h.topic, QueueID: h.queueID, Flag: h.flag, SysFlag: h.sysFlag, Body: req.Body,
			Properties: []byte(h.properties), BornTimestamp: h.bornTimestamp, BornHost: born,
			StoreHost: ch.b.storeHost, ReconsumeTimes: h.reconsumeTimes,
		})
	}
	batch := req.Code == protocol.ReqSendBatchMessage || h.batch
	for i := first; i < len(msgs); i++ {
		if half, err := ch.b.txn.routeHalf(&msgs[i], &h, batch); err != nil { // transaction.go
			return msgs, err
		} else if !half {
			if err := ch.b.sender.routeSpecial(&msgs[i], &h); err != nil {
				return msgs, err
			}
		}
		// Checked here so that one bad message fails its own request,
		// not the whole group's append.
		if _, err := msgs[i].EncodedSize(ch.b.cfg.MaxMessageSize); err != nil {
			return msgs, fmt.Errorf("message %d: %w", i-first, err)
		}
	}
	return msgs, nil
}
