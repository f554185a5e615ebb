package client

import (
	"context"
	"sync"
	"time"
)

// accumulator implements automatic batching (WithLinger): messages to the
// same topic — and, for selectors other than RoundRobin, the same queue —
// collect in a batch that is sent when it is full (WithBatchSize,
// WithMaxBatchBytes) or its first message has waited the linger time.
//
// One flusher goroutine owns the timing; each batch is sent on its own
// goroutine (one per batch, not per message). The bytes of every message
// are held in the producer's byteSem from SendAsync until its batch's
// answer, which bounds memory and gives back-pressure.
type accumulator struct {
	p    *Producer
	bell chan struct{} // 1-slot doorbell: batches changed
	done chan struct{} // closed when the flusher has exited

	mu       sync.Mutex
	batches  map[accKey]*accBatch // guarded by mu
	flushAll bool                 // guarded by mu: send every batch now
	closing  bool                 // guarded by mu
}

type accKey struct {
	topic string
	queue MessageQueue // zero for round-robin batches (queue picked per batch)
	fixed bool
}

type accBatch struct {
	key      accKey
	msgs     []*outMsg
	cbs      []func(SendResult, error)
	bytes    int
	deadline time.Time
}

func newAccumulator(p *Producer) *accumulator {
	a := &accumulator{p: p, bell: make(chan struct{}, 1), done: make(chan struct{}), batches: make(map[accKey]*accBatch)}
	go a.run()
	return a
}

func (a *accumulator) ring() {
	select {
	case a.bell <- struct{}{}:
	default:
	}
}

// add queues o; the caller holds o.size bytes of the buffer, released when
// the batch is answered.
func (a *accumulator) add(ctx context.Context, o *outMsg, cb func(SendResult, error)) error {
	key := accKey{topic: o.m.Topic}
	if _, rr := a.p.cfg.selector.(*roundRobin); !rr {
		qs, err := a.p.tr.queues(ctx, o.m.Topic)
		if err != nil {
			return err
		}
		if len(qs) > 0 {
			key.queue, key.fixed = a.p.cfg.selector.Select(o.m, qs), true
		}
	}
	cfg := a.p.cfg
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		return ErrClosed
	}
	b := a.batches[key]
	if b != nil && b.bytes+o.size > cfg.maxBatchBytes {
		delete(a.batches, key)
		a.launch(b)
		b = nil
	}
	if b == nil {
		b = &accBatch{key: key, deadline: time.Now().Add(cfg.linger)}
		a.batches[key] = b
		defer a.ring()
	}
	b.msgs = append(b.msgs, o)
	b.cbs = append(b.cbs, cb)
	b.bytes += o.size
	if len(b.msgs) >= cfg.batchSize || b.bytes >= cfg.maxBatchBytes {
		delete(a.batches, key)
		a.launch(b)
	}
	a.mu.Unlock()
	return nil
}

// launch sends b on its own goroutine. Called with mu held or from the
// flusher, always before close returns.
func (a *accumulator) launch(b *accBatch) {
	p := a.p
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var fixed *MessageQueue
		if b.key.fixed {
			fixed = &b.key.queue
		}
		res, err := p.sendWithRetry(context.Background(), b.msgs, p.pickFor(b.msgs[0], fixed), false)
		p.buf.release(b.bytes)
		for i, cb := range b.cbs {
			if err != nil {
				cb(SendResult{}, err)
			} else {
				cb(res[i], nil)
			}
		}
	}()
}

// run is the flusher: it sends batches whose linger time is up.
func (a *accumulator) run() {
	defer close(a.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		a.mu.Lock()
		now := time.Now()
		var next time.Time
		for k, b := range a.batches {
			if a.closing || a.flushAll || !b.deadline.After(now) {
				delete(a.batches, k)
				a.launch(b)
			} else if next.IsZero() || b.deadline.Before(next) {
				next = b.deadline
			}
		}
		a.flushAll = false
		closing := a.closing
		a.mu.Unlock()
		if closing {
			return
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(wait)
		select {
		case <-a.bell:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// flush makes the flusher send every batch now.
func (a *accumulator) flush(ctx context.Context) error {
	a.mu.Lock()
	a.flushAll = true
	a.mu.Unlock()
	a.ring()
	return ctx.Err()
}

// close sends every batch and stops the flusher.
func (a *accumulator) close() {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.ring()
	<-a.done
}
