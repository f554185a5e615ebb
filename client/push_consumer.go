package client

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/ferrymq/ferry/protocol"
)

// Handler consumes messages. Returning nil acknowledges them all; an error
// fails them all: in clustering mode they are redelivered later through
// the group's retry topic (orderly consumers retry in place first), in
// broadcasting mode they are dropped. ctx ends when the consumer closes or
// loses the queue.
type Handler func(ctx context.Context, msgs []*MessageExt) error

// pushEngine is a transport's implementation of a PushConsumer.
type pushEngine interface {
	start(ctx context.Context) error
	assigned() []MessageQueue
	close() error
}

// PushConsumer delivers the messages of its subscriptions to a Handler.
// Build it with NewPushConsumer, Subscribe, then Start; Close stops it.
type PushConsumer struct {
	cfg     *config
	handler Handler

	mu      sync.Mutex
	subs    map[string]string // topic → TAG expression; guarded by mu
	eng     pushEngine        // set by Start; guarded by mu
	started bool              // guarded by mu
	closed  bool              // guarded by mu
}

// NewPushConsumer returns a consumer for endpoint; WithGroup is required.
func NewPushConsumer(endpoint string, handler Handler, opts ...PushConsumerOption) (*PushConsumer, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	cfg, err := newConfig(kindPushConsumer, endpoint, optionList(opts))
	if err != nil {
		return nil, err
	}
	return &PushConsumer{cfg: cfg, handler: handler, subs: make(map[string]string)}, nil
}

// Subscribe adds topic with a TAG expression ("*", "TagA", "TagA || TagB").
// Call it before Start.
func (c *PushConsumer) Subscribe(topic, expr string) error {
	if topic == "" || len(topic) > protocol.MaxTopicLen || !nameRE.MatchString(topic) || strings.HasPrefix(topic, protocol.RetryTopicPrefix) {
		return fmt.Errorf("%w: topic %q", ErrInvalidOption, topic)
	}
	if _, err := parseTagExpr(expr); err != nil {
		return err
	}
	if strings.TrimSpace(expr) == "" {
		expr = "*"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return fmt.Errorf("%w: Subscribe after Start", ErrInvalidOption)
	}
	c.subs[topic] = expr
	return nil
}

// Start looks up routes, joins the group and starts consuming. Every
// subscribed topic must have a route (or, over HTTP, exist on the broker).
func (c *PushConsumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.started {
		return nil
	}
	if len(c.subs) == 0 {
		return fmt.Errorf("%w: no subscription", ErrInvalidOption)
	}
	subs := make(map[string]string, len(c.subs))
	for t, e := range c.subs {
		subs[t] = e
	}
	var eng pushEngine
	if c.cfg.isHTTP() {
		eng = newHTTPPush(c.cfg, c.handler, subs)
	} else {
		eng = newRMQPush(c.cfg, c.handler, subs)
	}
	if err := eng.start(ctx); err != nil {
		_ = eng.close()
		return err
	}
	c.eng, c.started = eng, true
	return nil
}

// Assigned lists the queues this member consumes now, sorted (empty over
// HTTP, where the broker balances).
func (c *PushConsumer) Assigned() []MessageQueue {
	c.mu.Lock()
	eng := c.eng
	c.mu.Unlock()
	if eng == nil {
		return nil
	}
	qs := eng.assigned()
	sort.Slice(qs, func(i, j int) bool { return lessQueue(qs[i], qs[j]) })
	return qs
}

// Close stops pulling, waits for running handlers, commits offsets,
// releases queue locks and closes the connections. No goroutine of the
// consumer remains when it returns.
func (c *PushConsumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	eng := c.eng
	c.mu.Unlock()
	if eng == nil {
		return nil
	}
	return eng.close()
}
