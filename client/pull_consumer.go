package client

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// PullResult is one pull's answer.
type PullResult struct {
	Messages   []*MessageExt
	NextOffset int64 // offset to pull next
	MinOffset  int64 // first offset still stored
	MaxOffset  int64 // offset the next message written to the queue will get
}

// pullTransport is a transport's implementation of a PullConsumer.
type pullTransport interface {
	queues(ctx context.Context, topic string) ([]MessageQueue, error)
	pull(ctx context.Context, mq MessageQueue, offset int64, max int, wait time.Duration) (*PullResult, error)
	commit(ctx context.Context, mq MessageQueue, offset int64) error
	committed(ctx context.Context, mq MessageQueue) (int64, error)
	close() error
}

// PullConsumer reads queues it is given, at offsets it controls. It does
// not rebalance: Assign says which queues to read. It is safe for
// concurrent use, but Poll calls are serialized.
type PullConsumer struct {
	cfg *config
	tr  pullTransport

	mu       sync.Mutex
	assigned []MessageQueue         // guarded by mu
	pos      map[MessageQueue]int64 // next offset per assigned queue; guarded by mu
	next     int                    // round-robin index into assigned; guarded by mu
	closed   bool                   // guarded by mu
}

// NewPullConsumer returns a pull consumer for endpoint; WithGroup is
// required (offsets are committed per group).
func NewPullConsumer(endpoint string, opts ...PullConsumerOption) (*PullConsumer, error) {
	cfg, err := newConfig(kindPullConsumer, endpoint, optionList(opts))
	if err != nil {
		return nil, err
	}
	c := &PullConsumer{cfg: cfg, pos: make(map[MessageQueue]int64)}
	if cfg.isHTTP() {
		c.tr = newHTTPPull(cfg)
	} else {
		c.tr = newRMQPull(cfg)
	}
	return c, nil
}

// Queues lists topic's readable queues (remoting only: over HTTP, name
// queues by id yourself).
func (c *PullConsumer) Queues(ctx context.Context, topic string) ([]MessageQueue, error) {
	return c.tr.queues(ctx, topic)
}

// Assign sets the queues Poll reads. A queue's position starts at the
// group's committed offset (or per WithConsumeFromWhere) unless Seek set it.
func (c *PullConsumer) Assign(queues []MessageQueue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.assigned = append([]MessageQueue(nil), queues...)
	sortQueues(c.assigned)
	keep := make(map[MessageQueue]int64)
	for _, q := range c.assigned {
		if off, ok := c.pos[q]; ok {
			keep[q] = off
		}
	}
	c.pos, c.next = keep, 0
}

// Seek sets the next offset Poll reads from mq.
func (c *PullConsumer) Seek(mq MessageQueue, offset int64) {
	c.mu.Lock()
	c.pos[mq] = offset
	c.mu.Unlock()
}

// Position returns the next offset Poll reads from mq, if known.
func (c *PullConsumer) Position(mq MessageQueue) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	off, ok := c.pos[mq]
	return off, ok
}

// Pull reads up to max messages of mq from offset, without waiting and
// without moving the Poll position.
func (c *PullConsumer) Pull(ctx context.Context, mq MessageQueue, offset int64, max int) (*PullResult, error) {
	if max <= 0 {
		max = c.cfg.pullBatchSize
	}
	return c.tr.pull(ctx, mq, offset, max, 0)
}

// Poll returns the next messages of the assigned queues, visiting them in
// turn from their positions, and advances the positions. When every queue
// is caught up it returns no messages and no error.
func (c *PullConsumer) Poll(ctx context.Context) ([]*MessageExt, error) {
	c.mu.Lock()
	qs := c.assigned
	start := c.next
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%w: no queue assigned", ErrInvalidOption)
	}
	for i := range qs {
		mq := qs[(start+i)%len(qs)]
		off, err := c.position(ctx, mq)
		if err != nil {
			return nil, err
		}
		r, err := c.tr.pull(ctx, mq, off, c.cfg.pullBatchSize, 0)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.pos[mq] = r.NextOffset
		c.next = (start + i + 1) % len(qs)
		c.mu.Unlock()
		if len(r.Messages) > 0 {
			return r.Messages, nil
		}
	}
	return nil, nil
}

func (c *PullConsumer) position(ctx context.Context, mq MessageQueue) (int64, error) {
	c.mu.Lock()
	off, ok := c.pos[mq]
	c.mu.Unlock()
	if ok {
		return off, nil
	}
	off, err := c.tr.committed(ctx, mq)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		off = 0
		if c.cfg.consumeFrom == ConsumeFromLastOffset {
			if r, err := c.tr.pull(ctx, mq, 0, 1, 0); err == nil {
				off = r.MaxOffset
			}
		}
	}
	c.mu.Lock()
	c.pos[mq] = off
	c.mu.Unlock()
	return off, nil
}

// Commit stores the Poll position of every assigned queue as the group's
// committed offset.
func (c *PullConsumer) Commit(ctx context.Context) error {
	c.mu.Lock()
	pos := make(map[MessageQueue]int64, len(c.pos))
	for q, off := range c.pos {
		pos[q] = off
	}
	c.mu.Unlock()
	for q, off := range pos {
		if err := c.tr.commit(ctx, q, off); err != nil {
			return err
		}
	}
	return nil
}

// CommitOffset stores offset as the group's committed offset of mq.
func (c *PullConsumer) CommitOffset(ctx context.Context, mq MessageQueue, offset int64) error {
	return c.tr.commit(ctx, mq, offset)
}

// CommittedOffset returns the group's committed offset of mq, -1 if none.
func (c *PullConsumer) CommittedOffset(ctx context.Context, mq MessageQueue) (int64, error) {
	return c.tr.committed(ctx, mq)
}

// Close releases the connections.
func (c *PullConsumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return c.tr.close()
}
