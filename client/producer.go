package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// produceTransport sends one request's worth of messages (all to one
// topic). pick chooses the queue among the writable ones not on a broker
// in avoid (the transport falls back to all queues if that leaves none);
// the broker name it returns is the one tried, for the next attempt's
// avoid list.
type produceTransport interface {
	send(ctx context.Context, topic string, msgs []*outMsg, pick func([]MessageQueue) MessageQueue, avoid []string, oneway bool) ([]SendResult, string, error)
	// queues lists the writable queues of topic; nil when the transport
	// lets the broker choose (HTTP).
	queues(ctx context.Context, topic string) ([]MessageQueue, error)
	close() error
}

// ProducerStats counts a producer's work since it was built.
type ProducerStats struct {
	Requests int64 // send requests written to the wire (batches count once)
	Messages int64 // messages acknowledged by a broker
	Retries  int64 // attempts repeated after a retriable failure
	Failures int64 // messages whose send failed for good
}

type producerStats struct{ requests, messages, retries, failures atomic.Int64 }

// Producer sends messages. It is safe for concurrent use; build it with
// NewProducer and release it with Close.
type Producer struct {
	cfg   *config
	tr    produceTransport
	stats producerStats
	buf   *byteSem
	acc   *accumulator   // nil without WithLinger, or with the broker batcher
	bb    *brokerBatcher // SendAsync's batches over remoting; nil over HTTP and for idempotent producers
	idem  *idempotence   // nil without WithIdempotence

	// gate orders wg.Add of new async sends before Close's wg.Wait.
	gate   sync.RWMutex
	closed atomic.Bool    // set under gate
	wg     sync.WaitGroup // async sends and batch sends in flight
}

// begin registers an async send; false once the producer is closed.
func (p *Producer) begin() bool {
	p.gate.RLock()
	defer p.gate.RUnlock()
	if p.closed.Load() {
		return false
	}
	p.wg.Add(1)
	return true
}

// NewProducer returns a ready producer for endpoint (see the package doc).
// Nothing is dialed until the first send.
func NewProducer(endpoint string, opts ...ProducerOption) (*Producer, error) {
	cfg, err := newConfig(kindProducer, endpoint, optionList(opts))
	if err != nil {
		return nil, err
	}
	p := &Producer{cfg: cfg, buf: newByteSem(cfg.maxBufferedBytes)}
	if cfg.isHTTP() {
		p.tr = newHTTPProducer(cfg, &p.stats)
	} else {
		rt := newRMQProducer(cfg, &p.stats)
		p.tr = rt
		if cfg.producerID != "" {
			p.idem = newIdempotence(cfg.producerID, rt)
		} else {
			p.bb = newBrokerBatcher(p, rt)
		}
	}
	if cfg.linger > 0 && p.bb == nil {
		p.acc = newAccumulator(p)
	}
	return p, nil
}

// Stats returns the producer's counters.
func (p *Producer) Stats() ProducerStats {
	return ProducerStats{Requests: p.stats.requests.Load(), Messages: p.stats.messages.Load(),
		Retries: p.stats.retries.Load(), Failures: p.stats.failures.Load()}
}

// Send sends m and waits for the broker's answer. With WithLinger the
// message may share a request with others sent meanwhile.
func (p *Producer) Send(ctx context.Context, m *Message) (SendResult, error) {
	if p.acc == nil && (p.bb == nil || p.cfg.linger == 0) {
		if p.closed.Load() {
			return SendResult{}, ErrClosed
		}
		o, err := prepare(m, p.cfg.maxMessageSize)
		if err != nil {
			return SendResult{}, err
		}
		res, err := p.sendWithRetry(ctx, []*outMsg{o}, p.pickFor(o, nil), false)
		if err != nil {
			return SendResult{}, err
		}
		return res[0], nil
	}
	f := p.SendFuture(ctx, m)
	return f.Get(ctx)
}

// SendAsync sends m in the background and calls cb with the outcome, from
// another goroutine. It waits only when the send buffer is full
// (WithMaxBufferedBytes); if ctx ends first, or at once with
// WithFailWhenBufferFull, cb gets an error wrapping ErrBufferFull. Over the
// remoting protocol messages are batched per broker (see WithMaxInFlight);
// a batched send is bounded by the send timeout and retries, not by ctx.
// Over HTTP without WithLinger ctx also bounds the send.
func (p *Producer) SendAsync(ctx context.Context, m *Message, cb func(SendResult, error)) {
	if cb == nil {
		cb = func(SendResult, error) {}
	}
	if p.closed.Load() {
		cb(SendResult{}, ErrClosed)
		return
	}
	o, err := prepare(m, p.cfg.maxMessageSize)
	if err != nil {
		cb(SendResult{}, err)
		return
	}
	if err := p.buf.acquire(ctx, o.size, p.cfg.failWhenFull); err != nil {
		cb(SendResult{}, err)
		return
	}
	if p.bb != nil {
		if err := p.bb.add(ctx, o, cb); err != nil {
			p.buf.release(o.size)
			cb(SendResult{}, err)
		}
		return
	}
	if p.acc != nil {
		if err := p.acc.add(ctx, o, cb); err != nil {
			p.buf.release(o.size)
			cb(SendResult{}, err)
		}
		return
	}
	if !p.begin() {
		p.buf.release(o.size)
		cb(SendResult{}, ErrClosed)
		return
	}
	go func() {
		defer p.wg.Done()
		res, err := p.sendWithRetry(ctx, []*outMsg{o}, p.pickFor(o, nil), false)
		p.buf.release(o.size)
		if err != nil {
			cb(SendResult{}, err)
			return
		}
		cb(res[0], nil)
	}()
}

// SendFuture is SendAsync returning a Future instead of taking a callback.
func (p *Producer) SendFuture(ctx context.Context, m *Message) *Future {
	f := &Future{done: make(chan struct{})}
	p.SendAsync(ctx, m, func(r SendResult, err error) {
		f.res, f.err = r, err
		close(f.done)
	})
	return f
}

// Future is the pending outcome of an asynchronous send.
type Future struct {
	done chan struct{}
	res  SendResult
	err  error
}

// Done is closed when the outcome is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Get waits for the outcome or for ctx to end.
func (f *Future) Get(ctx context.Context) (SendResult, error) {
	select {
	case <-f.done: // known already: prefer it to an ended ctx
		return f.res, f.err
	default:
	}
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return SendResult{}, ctx.Err()
	}
}

// SendOneway writes m without waiting for an answer; only a failure to
// write the request is reported (and retried).
func (p *Producer) SendOneway(ctx context.Context, m *Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	o, err := prepare(m, p.cfg.maxMessageSize)
	if err != nil {
		return err
	}
	_, err = p.sendWithRetry(ctx, []*outMsg{o}, p.pickFor(o, nil), true)
	return err
}

// SendBatch sends msgs, which must share one topic, in one request to one
// queue (picked by the selector for the first message), and returns one
// result per message. The batch must fit WithMaxBatchBytes.
func (p *Producer) SendBatch(ctx context.Context, msgs []*Message) ([]SendResult, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrInvalidMessage)
	}
	outs := make([]*outMsg, len(msgs))
	n := 0
	for i, m := range msgs {
		o, err := prepare(m, p.cfg.maxMessageSize)
		if err != nil {
			return nil, fmt.Errorf("batch message %d: %w", i, err)
		}
		if m.Topic != msgs[0].Topic {
			return nil, fmt.Errorf("%w: batch mixes topics %q and %q", ErrInvalidMessage, msgs[0].Topic, m.Topic)
		}
		if m.DelayLevel > 0 || !m.DeliverAt.IsZero() {
			return nil, fmt.Errorf("%w: batch message %d is delayed; send delayed messages one by one", ErrInvalidMessage, i)
		}
		outs[i] = o
		n += o.size
	}
	if n > p.cfg.maxBatchBytes {
		return nil, fmt.Errorf("%w: batch of %d bytes, limit %d (WithMaxBatchBytes)", ErrMessageTooLarge, n, p.cfg.maxBatchBytes)
	}
	return p.sendWithRetry(ctx, outs, p.pickFor(outs[0], nil), false)
}

// pickFor returns the queue chooser for a request led by o. A queue fixed
// at enqueue time (automatic batching by key) is kept unless its broker
// failed.
func (p *Producer) pickFor(o *outMsg, fixed *MessageQueue) func([]MessageQueue) MessageQueue {
	return func(qs []MessageQueue) MessageQueue {
		if fixed != nil {
			for _, q := range qs {
				if q == *fixed {
					return q
				}
			}
		}
		return p.cfg.selector.Select(o.m, qs)
	}
}

// sendWithRetry sends msgs as one request, repeating retriable failures
// (up to WithRetries times) on another broker when there is one.
func (p *Producer) sendWithRetry(ctx context.Context, msgs []*outMsg, pick func([]MessageQueue) MessageQueue, oneway bool) ([]SendResult, error) {
	if p.idem != nil {
		if oneway {
			return nil, fmt.Errorf("%w: an idempotent producer cannot send one-way (the outcome would be unknown)", ErrInvalidMessage)
		}
		return p.sendIdempotent(ctx, msgs, pick) // idempotent.go
	}
	topic := msgs[0].m.Topic
	var avoid []string
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.sendTimeout)
		res, broker, err := p.tr.send(actx, topic, msgs, pick, avoid, oneway)
		cancel()
		if err == nil {
			p.stats.messages.Add(int64(len(msgs)))
			return res, nil
		}
		if attempt >= p.cfg.retries || !retriable(err) || ctx.Err() != nil || p.closed.Load() && errors.Is(err, ErrClosed) {
			p.stats.failures.Add(int64(len(msgs)))
			logAt(p.cfg.logger, LogWarn, "send failed", "topic", topic, "broker", broker, "attempts", attempt+1, "err", err)
			return nil, err
		}
		p.stats.retries.Add(1)
		logAt(p.cfg.logger, LogDebug, "send retried", "topic", topic, "broker", broker, "err", err)
		if broker != "" {
			avoid = append(avoid, broker)
		}
		var be *ServerError
		if errors.As(err, &be) && be.RetryAfter > 0 {
			t := time.NewTimer(min(be.RetryAfter, p.cfg.sendTimeout))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				p.stats.failures.Add(int64(len(msgs)))
				return nil, err
			}
		}
	}
}

// Flush waits until every message handed to Send or SendAsync before the
// call has been sent (or failed), or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	if p.bb != nil {
		p.bb.flush()
	}
	if p.acc != nil {
		if err := p.acc.flush(ctx); err != nil {
			return err
		}
	}
	return p.buf.waitEmpty(ctx)
}

// Close sends what is buffered (bounded by the send timeout and retries),
// waits for sends in flight, and releases the connections. Sends after
// Close fail with ErrClosed.
func (p *Producer) Close() error {
	p.gate.Lock()
	was := p.closed.Swap(true)
	p.gate.Unlock()
	if was {
		return nil
	}
	if p.acc != nil {
		p.acc.close()
	}
	if p.bb != nil {
		p.bb.close()
	}
	p.wg.Wait()
	return p.tr.close()
}

// byteSem bounds the bytes of buffered and in-flight messages.
type byteSem struct {
	max  int
	mu   sync.Mutex
	used int           // guarded by mu
	wake chan struct{} // closed and replaced on every release; guarded by mu
}

func newByteSem(max int) *byteSem { return &byteSem{max: max, wake: make(chan struct{})} }

// acquire takes n bytes, waiting for room until ctx ends (or failing at
// once when noWait). A message larger than the whole buffer is let through
// when the buffer is empty.
func (s *byteSem) acquire(ctx context.Context, n int, noWait bool) error {
	for {
		s.mu.Lock()
		if s.used+n <= s.max || s.used == 0 {
			s.used += n
			s.mu.Unlock()
			return nil
		}
		wake := s.wake
		s.mu.Unlock()
		if noWait {
			return fmt.Errorf("%w: %d bytes buffered, limit %d", ErrBufferFull, s.usedNow(), s.max)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrBufferFull, ctx.Err())
		}
	}
}

func (s *byteSem) usedNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

func (s *byteSem) release(n int) {
	s.mu.Lock()
	s.used -= n
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

func (s *byteSem) waitEmpty(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.used == 0 {
			s.mu.Unlock()
			return nil
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
