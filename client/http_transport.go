package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ferrymq/ferry/client/internal/httpapi"
	"github.com/ferrymq/ferry/protocol"
)

// The HTTP transport speaks one broker's JSON API:
//
//	POST /v1/topics/{topic}/messages                  produce
//	GET  /v1/topics/{topic}                           queue counts (selectors, Queues)
//	GET  /v1/topics/{topic}/queues/{q}/messages       read a queue by offset
//	POST /v1/groups/{group}/receive | ack | nack       consume with leases
//
// Errors are application/problem+json; 429 and 503 carry Retry-After.

// httpBroker is the broker name HTTP results report.
const httpBroker = "http"

// problemError is the error a problem answer to method path stands for.
func problemError(p *protocol.Problem, base, method, path string, status int, retryAfter time.Duration) *ServerError {
	if p.Status == 0 {
		p.Status = status
	}
	remark := strings.TrimPrefix(p.Detail, "broker: ")
	if remark == "" {
		remark = p.Title
	}
	return &ServerError{Broker: base, Code: p.Code, Remark: remark, Method: method, Path: path,
		Status: p.Status, Type: p.Type, RetryAfter: retryAfter}
}

// httpDo sends one JSON request and reads the answer whole.
func httpDo(ctx context.Context, hc *http.Client, base, method, path string, query url.Values, in any) (httpapi.Answer, error) {
	return httpapi.Do(ctx, hc, base, method, path, query, in)
}

// httpCall does one JSON request; a non-2xx answer is a *ServerError.
func httpCall(ctx context.Context, cfg *config, method, path string, query url.Values, in, out any) error {
	ans, err := httpDo(ctx, cfg.httpClient, cfg.httpBase, method, path, query, in)
	if err != nil {
		return err
	}
	if ans.Status/100 != 2 {
		var p protocol.Problem
		_ = json.Unmarshal(ans.Data, &p)
		if p.Title == "" {
			p.Title = http.StatusText(ans.Status)
		}
		var ra time.Duration
		if s, err := strconv.Atoi(ans.Header.Get("Retry-After")); err == nil && s > 0 {
			ra = time.Duration(s) * time.Second
		}
		return problemError(&p, cfg.httpBase, method, path, ans.Status, ra)
	}
	return ans.Decode(method, path, out)
}

func encodeBody(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), "utf8"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// toMessageExt converts an API message.
func toMessageExt(h *protocol.HTTPMessage, topic string) (*MessageExt, error) {
	m := &MessageExt{MsgID: h.MsgID, OffsetMsgID: h.OffsetMsgID, QueueOffset: h.QueueOffset, CommitLogOffset: h.CommitlogOffset,
		BornAt: time.UnixMilli(h.BornAtMs), StoredAt: time.UnixMilli(h.StoredAtMs), ReconsumeTimes: int(h.ReconsumeTimes),
		receipt: h.ReceiptHandle, props: make(map[string]string, len(h.Properties)+len(h.SystemProperties))}
	m.Topic = h.Topic
	if m.Topic == "" {
		m.Topic = topic
	}
	stored := h.StoredTopic
	if stored == "" {
		stored = m.Topic
	}
	m.Queue = MessageQueue{Topic: stored, BrokerName: httpBroker, QueueID: int(h.QueueID)}
	m.Tags, m.Keys = h.Tags, h.Keys
	if len(h.Properties) > 0 {
		m.Properties = h.Properties
	}
	for k, v := range h.SystemProperties {
		m.props[k] = v
	}
	for k, v := range h.Properties {
		m.props[k] = v
	}
	m.ShardingKey = m.props[protocol.PropShardingKey]
	var err error
	if m.Body, err = messageBody(h); err != nil {
		return nil, err
	}
	return m, nil
}

// messageBody decodes the message body by its encoding.
func messageBody(h *protocol.HTTPMessage) ([]byte, error) { return h.DecodedBody() }

// httpTopicQueues reads topic's queue counts (GET /v1/topics/{topic}).
func httpTopicQueues(ctx context.Context, cfg *config, topic string, write bool) ([]MessageQueue, error) {
	var out protocol.HTTPTopic
	if err := httpCall(ctx, cfg, http.MethodGet, "/v1/topics/"+url.PathEscape(topic), nil, nil, &out); err != nil {
		// The broker's problem names the class (a *ServerError that is
		// ErrTopicNotFound); a bare 404 still means no such topic.
		var se *ServerError
		if errors.As(err, &se) && se.Status == http.StatusNotFound && !errors.Is(err, ErrTopicNotFound) {
			return nil, fmt.Errorf("%w: %s: %w", ErrTopicNotFound, topic, err)
		}
		return nil, err
	}
	n := out.ReadQueues
	if write {
		n = out.WriteQueues
	}
	qs := make([]MessageQueue, n)
	for i := range qs {
		qs[i] = MessageQueue{Topic: topic, BrokerName: httpBroker, QueueID: i}
	}
	return qs, nil
}

// httpProducer is the HTTP transport of a Producer.
type httpProducer struct {
	cfg   *config
	stats *producerStats

	mu    sync.Mutex
	cache map[string][]MessageQueue // writable queues by topic; guarded by mu
}

func newHTTPProducer(cfg *config, stats *producerStats) produceTransport {
	return &httpProducer{cfg: cfg, stats: stats, cache: make(map[string][]MessageQueue)}
}

// queues returns the topic's queues, or nil when the topic does not exist
// yet (the broker creates it and picks the queue).
func (t *httpProducer) queues(ctx context.Context, topic string) ([]MessageQueue, error) {
	t.mu.Lock()
	qs, ok := t.cache[topic]
	t.mu.Unlock()
	if ok {
		return qs, nil
	}
	qs, err := httpTopicQueues(ctx, t.cfg, topic, true)
	if errors.Is(err, ErrTopicNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.cache[topic] = qs
	t.mu.Unlock()
	return qs, nil
}

var errPartialBatch = errors.New("client: part of the batch failed")

func (t *httpProducer) send(ctx context.Context, topic string, msgs []*outMsg, pick func([]MessageQueue) MessageQueue,
	_ []string, _ bool) ([]SendResult, string, error) {
	qs, err := t.queues(ctx, topic)
	if err != nil {
		return nil, httpBroker, err
	}
	var qid *int32
	if len(qs) > 0 {
		q := int32(pick(qs).QueueID)
		qid = &q
	}
	return t.produce(ctx, topic, "/v1/topics/"+url.PathEscape(topic)+"/messages", msgs, qid)
}

// produce posts msgs of topic to path (a topic's or a transaction's
// messages), to queue qid when not nil.
func (t *httpProducer) produce(ctx context.Context, topic, path string, msgs []*outMsg, qid *int32) ([]SendResult, string, error) {
	in := protocol.HTTPProduceRequest{Messages: make([]protocol.HTTPProduceMessage, len(msgs))}
	for i, o := range msgs {
		m := o.m
		props := make(map[string]string, len(m.Properties)+2)
		for k, v := range m.Properties {
			props[k] = v
		}
		props[protocol.PropUniqKey] = o.id
		if m.ShardingKey != "" {
			props[protocol.PropShardingKey] = m.ShardingKey
		}
		hm := protocol.HTTPProduceMessage{Tags: m.Tags, Keys: m.Keys, Properties: props, QueueID: qid, DelayLevel: int32(m.DelayLevel)}
		hm.Body, hm.BodyEncoding = encodeBody(m.Body)
		if m.DelayLevel == 0 && !m.DeliverAt.IsZero() {
			hm.DeliverAtMs = m.DeliverAt.UnixMilli()
		}
		in.Messages[i] = hm
	}
	var out protocol.HTTPProduceResponse
	t.stats.requests.Add(1)
	if err := httpCall(ctx, t.cfg, http.MethodPost, path, nil, in, &out); err != nil {
		return nil, httpBroker, err
	}
	if len(out.Results) != len(msgs) {
		return nil, httpBroker, fmt.Errorf("client: %d results for %d messages", len(out.Results), len(msgs))
	}
	res := make([]SendResult, len(msgs))
	var failed []error
	for i, r := range out.Results {
		if r.Error != nil {
			failed = append(failed, problemError(r.Error, t.cfg.httpBase, http.MethodPost, path, r.Error.Status, 0))
			continue
		}
		res[i] = SendResult{MsgID: msgs[i].id, OffsetMsgID: r.OffsetMsgID, QueueOffset: -1,
			Queue: MessageQueue{Topic: topic, BrokerName: httpBroker}}
		if r.MsgID != "" {
			res[i].MsgID = r.MsgID
		}
		if r.QueueID != nil {
			res[i].Queue.QueueID = int(*r.QueueID)
		}
		if r.QueueOffset != nil {
			res[i].QueueOffset = *r.QueueOffset
		}
	}
	switch {
	case len(failed) == len(msgs):
		return nil, httpBroker, failed[0] // the whole request failed alike: retriable or not by its status
	case len(failed) > 0:
		return nil, httpBroker, fmt.Errorf("%w: %d of %d messages: %w", errPartialBatch, len(failed), len(msgs), failed[0])
	}
	return res, httpBroker, nil
}

func (t *httpProducer) close() error { t.cfg.closeHTTP(); return nil }

// httpPull is the HTTP transport of a PullConsumer. Offsets are not
// committed over HTTP: the caller keeps its positions.
type httpPull struct{ cfg *config }

func newHTTPPull(cfg *config) pullTransport { return &httpPull{cfg: cfg} }

func (t *httpPull) queues(ctx context.Context, topic string) ([]MessageQueue, error) {
	return httpTopicQueues(ctx, t.cfg, topic, false)
}

func (t *httpPull) pull(ctx context.Context, mq MessageQueue, offset int64, max int, wait time.Duration) (*PullResult, error) {
	q := url.Values{"offset": {i64(offset)}, "max": {itoa(max)}, "wait_ms": {i64(wait.Milliseconds())}}
	var out protocol.HTTPQueueRead
	path := "/v1/topics/" + url.PathEscape(mq.Topic) + "/queues/" + itoa(mq.QueueID) + "/messages"
	if err := httpCall(ctx, t.cfg, http.MethodGet, path, q, nil, &out); err != nil {
		return nil, err
	}
	r := &PullResult{NextOffset: out.NextOffset, MinOffset: out.MinOffset, MaxOffset: out.MaxOffset}
	for i := range out.Messages {
		m, err := toMessageExt(&out.Messages[i], mq.Topic)
		if err != nil {
			return nil, err
		}
		r.Messages = append(r.Messages, m)
	}
	return r, nil
}

func (t *httpPull) commit(ctx context.Context, mq MessageQueue, off int64) error {
	in := protocol.HTTPOffsets{Offsets: []protocol.HTTPOffset{{Topic: mq.Topic, QueueID: int32(mq.QueueID), Offset: off}}}
	return httpCall(ctx, t.cfg, http.MethodPut, "/v1/groups/"+url.PathEscape(t.cfg.group)+"/offsets", nil, in, nil)
}

// committed is the group's committed offset of mq, -1 when none.
func (t *httpPull) committed(ctx context.Context, mq MessageQueue) (int64, error) {
	var out protocol.HTTPOffsets
	q := url.Values{"topic": {mq.Topic}}
	if err := httpCall(ctx, t.cfg, http.MethodGet, "/v1/groups/"+url.PathEscape(t.cfg.group)+"/offsets", q, nil, &out); err != nil {
		return -1, err
	}
	for _, o := range out.Offsets {
		if int(o.QueueID) == mq.QueueID {
			return o.Offset, nil
		}
	}
	return -1, nil
}

func (t *httpPull) close() error { t.cfg.closeHTTP(); return nil }

// httpPush is the HTTP PushConsumer: per subscribed topic one receive loop
// (the broker balances messages among the group's receivers with leases),
// and consumeGoroutines workers that run the handler and ack or nack.
type httpPush struct {
	cfg     *config
	handler Handler
	subs    map[string]string
	work    chan []*MessageExt
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newHTTPPush(cfg *config, h Handler, subs map[string]string) pushEngine {
	e := &httpPush{cfg: cfg, handler: h, subs: subs, work: make(chan []*MessageExt)}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e
}

func (e *httpPush) start(ctx context.Context) error {
	if e.cfg.orderly || e.cfg.broadcast {
		return fmt.Errorf("%w: orderly and broadcast consumption need the remoting transport", ErrNotSupported)
	}
	for t := range e.subs {
		if _, err := httpTopicQueues(ctx, e.cfg, t, false); err != nil {
			return fmt.Errorf("client: subscribe %s: %w", t, err)
		}
	}
	for i := 0; i < e.cfg.consumeGoroutines; i++ {
		e.wg.Add(1)
		go e.worker()
	}
	for t, expr := range e.subs {
		e.wg.Add(1)
		go e.receiveLoop(t, expr)
	}
	return nil
}

func (e *httpPush) assigned() []MessageQueue { return nil }

func (e *httpPush) receiveLoop(topic, expr string) {
	defer e.wg.Done()
	group := url.PathEscape(e.cfg.group)
	for e.ctx.Err() == nil {
		max := min(e.cfg.pullBatchSize, 1000)
		in := protocol.HTTPReceive{Topic: topic, Max: &max, VisibilityMs: e.cfg.visibility.Milliseconds(),
			WaitMs: e.cfg.longPoll.Milliseconds(), Tag: expr}
		var out protocol.HTTPMessages
		ctx, cancel := context.WithTimeout(e.ctx, e.cfg.longPoll+10*time.Second)
		err := httpCall(ctx, e.cfg, http.MethodPost, "/v1/groups/"+group+"/receive", nil, in, &out)
		cancel()
		if err != nil {
			if e.ctx.Err() != nil {
				return
			}
			logAt(e.cfg.logger, LogWarn, "receive failed", "topic", topic, "group", e.cfg.group, "err", err)
			wait := time.Second
			var se *ServerError
			if errors.As(err, &se) && se.RetryAfter > 0 {
				wait = se.RetryAfter
			}
			sleepCtx(e.ctx, wait)
			continue
		}
		var msgs []*MessageExt
		for i := range out.Messages {
			m, err := toMessageExt(&out.Messages[i], topic)
			if err != nil {
				logAt(e.cfg.logger, LogError, "undecodable message", "topic", topic, "err", err)
				continue
			}
			msgs = append(msgs, m)
		}
		for len(msgs) > 0 {
			n := min(len(msgs), e.cfg.consumeBatchSize)
			select {
			case e.work <- msgs[:n]:
			case <-e.ctx.Done():
				return // leases run out; the broker redelivers
			}
			msgs = msgs[n:]
		}
	}
}

func (e *httpPush) worker() {
	defer e.wg.Done()
	for {
		var msgs []*MessageExt
		select {
		case msgs = <-e.work:
		case <-e.ctx.Done():
			return
		}
		err := e.call(msgs)
		verb := "ack"
		if err != nil {
			verb = "nack"
			logAt(e.cfg.logger, LogDebug, "consume failed, nack", "group", e.cfg.group, "err", err)
		}
		handles := make([]string, len(msgs))
		for i, m := range msgs {
			handles[i] = m.receipt
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.sendTimeout)
		if err := httpCall(ctx, e.cfg, http.MethodPost, "/v1/groups/"+url.PathEscape(e.cfg.group)+"/"+verb, nil,
			protocol.HTTPReceiptHandles{ReceiptHandles: handles}, nil); err != nil {
			logAt(e.cfg.logger, LogWarn, verb+" failed", "group", e.cfg.group, "err", err)
		}
		cancel()
	}
}

func (e *httpPush) call(msgs []*MessageExt) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("client: handler panic: %v", r)
		}
	}()
	return e.handler(e.ctx, msgs)
}

func (e *httpPush) close() error {
	e.cancel()
	e.wg.Wait()
	e.cfg.closeHTTP()
	return nil
}

// closeHTTP drops the idle connections of a client the SDK made itself.
func (c *config) closeHTTP() {
	if c.ownsHTTP {
		c.httpClient.CloseIdleConnections()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
