package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// brokerBatcher batches SendAsync per destination broker (not per queue):
// each message is given its queue at once, then waits in its broker's lane
// while that broker has WithMaxInFlight requests outstanding. When a request
// returns, everything waiting (up to WithBatchSize messages and
// WithMaxBatchBytes) goes out in the next one, a FERRY_SEND_MULTI carrying
// messages of any topics and queues of that broker. At low rates a message
// finds no request in flight and leaves at once (no added wait unless
// WithLinger asks for one); under load batches grow by themselves.
//
// One goroutine per request, none per message. Messages hold their bytes of
// the producer's buffer from SendAsync to their answer, which gives
// back-pressure. With one request in flight per broker (the default) the
// order of messages per queue is the order of SendAsync calls.
type brokerBatcher struct {
	p *Producer
	t *rmqProducer

	mu      sync.Mutex
	lanes   map[string]*lane // by broker name; guarded by mu
	closing bool             // guarded by mu: send everything, take nothing new
}

// lane is one broker's waiting messages and requests in flight; guarded by
// brokerBatcher.mu.
type lane struct {
	broker   string
	pending  []queued
	bytes    int
	inflight int
	timer    *time.Timer // armed while a linger wait runs
	due      bool        // the linger wait of the first pending message is over
}

type queued struct {
	o       *outMsg
	mq      MessageQueue
	cb      func(SendResult, error)
	attempt int // retries so far
}

func newBrokerBatcher(p *Producer, t *rmqProducer) *brokerBatcher {
	return &brokerBatcher{p: p, t: t, lanes: make(map[string]*lane)}
}

// add picks o's queue and queues it in its broker's lane; the caller holds
// o.size bytes of the buffer, released when o is answered.
func (a *brokerBatcher) add(ctx context.Context, o *outMsg, cb func(SendResult, error)) error {
	qs, err := a.t.queues(ctx, o.m.Topic)
	if err != nil {
		return err
	}
	mq := a.p.cfg.selector.Select(o.m, qs)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return ErrClosed
	}
	l := a.lane(mq.BrokerName)
	l.pending = append(l.pending, queued{o: o, mq: mq, cb: cb})
	l.bytes += o.size
	a.launch(l)
	return nil
}

// lane returns broker's lane, made on first use. Called with mu held.
func (a *brokerBatcher) lane(broker string) *lane {
	l := a.lanes[broker]
	if l == nil {
		l = &lane{broker: broker}
		a.lanes[broker] = l
	}
	return l
}

// launch sends what l may send now. Called with mu held.
func (a *brokerBatcher) launch(l *lane) {
	cfg := a.p.cfg
	for l.inflight < cfg.maxInFlight && len(l.pending) > 0 {
		full := len(l.pending) >= cfg.batchSize || l.bytes >= cfg.maxBatchBytes
		if cfg.linger > 0 && !full && !l.due && !a.closing {
			if l.timer == nil {
				l.timer = time.AfterFunc(cfg.linger, func() {
					a.mu.Lock()
					l.timer, l.due = nil, true
					a.launch(l)
					a.mu.Unlock()
				})
			}
			return
		}
		n, bytes := 0, 0
		for n < len(l.pending) && n < cfg.batchSize {
			s := l.pending[n].o.size
			if n > 0 && bytes+s > cfg.maxBatchBytes {
				break
			}
			bytes += s
			n++
		}
		batch := l.pending[:n:n]
		l.pending = l.pending[n:]
		if len(l.pending) == 0 {
			l.pending = nil // let the backing array go with the batch
		}
		l.bytes -= bytes
		l.due = false
		if l.timer != nil && len(l.pending) == 0 {
			l.timer.Stop()
			l.timer = nil
		}
		l.inflight++
		a.p.wg.Add(1)
		go a.send(l, batch, bytes)
	}
}

// send sends one batch, answers its messages, and lets the lane send what
// waited meanwhile. After a retriable failure of the request its messages
// (those with retries left, WithRetries) go back: to a queue of another
// broker of their topic when there is one, else to the front of this lane,
// ahead of what came after them.
func (a *brokerBatcher) send(l *lane, batch []queued, bytes int) {
	p := a.p
	defer p.wg.Done()
	bp := bodyPool.Get().(*[]byte)
	body, err := appendMulti((*bp)[:0], batch)
	var results []protocol.MultiResult
	var addr string
	if err == nil {
		addr, results, err = a.invokeOnce(l.broker, batch, body)
	}
	if err == nil {
		// Answered, so written: the buffer may serve another request. An
		// unanswered request's body may still wait to be written.
		*bp = body
		bodyPool.Put(bp)
	}
	if err != nil && retriable(err) && !p.closed.Load() {
		p.stats.retries.Add(1)
		logAt(p.cfg.logger, LogDebug, "send retried", "broker", l.broker, "messages", len(batch), "err", err)
		batch, bytes = a.requeue(l, batch, bytes)
	}
	p.buf.release(bytes)
	if err != nil && len(batch) > 0 {
		p.stats.failures.Add(int64(len(batch)))
		logAt(p.cfg.logger, LogWarn, "send failed", "broker", l.broker, "messages", len(batch), "err", err)
	}
	for i, q := range batch {
		if err != nil {
			q.cb(SendResult{}, err)
			continue
		}
		r := &results[i]
		switch r.Code {
		case protocol.RespSuccess, protocol.RespFlushDiskTimeout:
			p.stats.messages.Add(1)
			mq := q.mq
			mq.QueueID = int(r.QueueID)
			q.cb(SendResult{MsgID: q.o.id, OffsetMsgID: r.Text, Queue: mq, QueueOffset: r.QueueOffset}, nil)
		default:
			p.stats.failures.Add(1)
			q.cb(SendResult{}, &ServerError{Broker: addr, Code: int(r.Code), Remark: r.Text})
		}
	}
	a.mu.Lock()
	l.inflight--
	a.launch(l)
	a.mu.Unlock()
}

// requeue puts the messages of a failed batch that have retries left back
// in a lane, and returns the others (to fail) with their bytes.
func (a *brokerBatcher) requeue(l *lane, batch []queued, bytes int) ([]queued, int) {
	var failed []queued
	var back []queued
	moved := map[*lane][]queued{}
	for _, q := range batch {
		if q.attempt >= a.p.cfg.retries {
			failed = append(failed, q)
			continue
		}
		q.attempt++
		bytes -= q.o.size
		if qs, err := a.t.queues(context.Background(), q.mq.Topic); err == nil {
			var other []MessageQueue
			for _, mq := range qs {
				if mq.BrokerName != l.broker {
					other = append(other, mq)
				}
			}
			if len(other) > 0 {
				q.mq = a.p.cfg.selector.Select(q.o.m, other)
				a.mu.Lock()
				to := a.lane(q.mq.BrokerName)
				a.mu.Unlock()
				moved[to] = append(moved[to], q)
				continue
			}
		}
		back = append(back, q)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(back) > 0 {
		l.pending = append(back, l.pending...)
		for _, q := range back {
			l.bytes += q.o.size
		}
	}
	for to, qs := range moved {
		to.pending = append(to.pending, qs...)
		for _, q := range qs {
			to.bytes += q.o.size
		}
		a.launch(to)
	}
	return failed, bytes
}

func (a *brokerBatcher) invokeOnce(broker string, batch []queued, body []byte) (string, []protocol.MultiResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.p.cfg.sendTimeout)
	defer cancel()
	addr, err := a.t.brokerAddr(ctx, batch[0].mq.Topic, broker)
	if err != nil {
		return "", nil, err
	}
	req := remoting.NewTypedRequest(protocol.ReqFerrySendMulti, &remoting.SendMultiHeader{ProducerGroup: a.p.cfg.group}, body)
	a.p.stats.requests.Add(1)
	resp, err := a.t.cmd.Invoke(ctx, addr, req)
	if err != nil {
		if errors.Is(err, remoting.ErrClientClosed) {
			err = ErrClosed
		}
		return addr, nil, err
	}
	if resp.Code != protocol.RespSuccess {
		return addr, nil, brokerErr(addr, resp)
	}
	results, err := protocol.DecodeMultiResults(resp.Body, make([]protocol.MultiResult, 0, len(batch)))
	if err == nil && len(results) != len(batch) {
		err = &ServerError{Broker: addr, Code: protocol.RespSystemError, Remark: "multi-queue batch answered with a wrong number of results"}
	}
	if err != nil {
		return addr, nil, err
	}
	return addr, results, nil
}

// bodyPool holds request body buffers of answered batches.
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

// appendMulti encodes batch as a FERRY_SEND_MULTI body.
func appendMulti(dst []byte, batch []queued) ([]byte, error) {
	n := len(dst)
	for _, q := range batch {
		n += 26 + len(q.mq.Topic) + q.o.size
	}
	dst = slices.Grow(dst, n-len(dst))
	born := time.Now().UnixMilli()
	for _, q := range batch {
		var err error
		dst, err = protocol.AppendMultiEntry(dst, &protocol.MultiEntry{Topic: q.mq.Topic, QueueID: int32(q.mq.QueueID),
			Flag: q.o.m.Flag, BornTimestamp: born, Body: q.o.m.Body, Properties: q.o.props})
		if err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// close sends everything waiting (the caller then waits for the producer's
// requests in flight) and refuses new messages.
func (a *brokerBatcher) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closing = true
	for _, l := range a.lanes {
		if l.timer != nil {
			l.timer.Stop()
			l.timer = nil
		}
		a.launch(l)
	}
}

// flush sends what waits for its linger time now.
func (a *brokerBatcher) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.lanes {
		if len(l.pending) > 0 {
			l.due = true
			a.launch(l)
		}
	}
}
