package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// rmqPull is the remoting PullConsumer: no goroutine of its own; routes
// are read on demand (and again after a failure).
type rmqPull struct {
	cfg    *config
	ns     *remoting.Client
	cmd    *remoting.Client
	poll   *remoting.Client
	routes *routeTable
}

func newRMQPull(cfg *config) *rmqPull {
	t := &rmqPull{cfg: cfg, ns: remoting.NewClient(cfg.remotingConfig()), cmd: remoting.NewClient(cfg.remotingConfig()),
		poll: remoting.NewClient(cfg.remotingConfig())}
	t.routes = newRouteTable(cfg, t.ns)
	return t
}

func (t *rmqPull) queues(ctx context.Context, topic string) ([]MessageQueue, error) {
	t.routes.forget(topic)
	r, err := t.routes.get(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	return append([]MessageQueue(nil), r.subscribe...), nil
}

func (t *rmqPull) addr(ctx context.Context, mq MessageQueue) (string, error) {
	if a, ok := t.routes.brokerAddr(mq.BrokerName); ok {
		return a, nil
	}
	if _, err := t.routes.get(ctx, mq.Topic, false); err != nil {
		return "", err
	}
	if a, ok := t.routes.brokerAddr(mq.BrokerName); ok {
		return a, nil
	}
	return "", fmt.Errorf("%w: broker %s of %s", ErrNoQueue, mq.BrokerName, mq)
}

func (t *rmqPull) pull(ctx context.Context, mq MessageQueue, offset int64, max int, wait time.Duration) (*PullResult, error) {
	addr, err := t.addr(ctx, mq)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, wait+10*time.Second)
	defer cancel()
	r, err := pull(actx, t.poll, addr, t.cfg.group, mq, offset, max, "*", -1, wait, 0)
	if err != nil {
		return nil, err
	}
	return &PullResult{Messages: r.msgs, NextOffset: r.next, MinOffset: r.minOffset, MaxOffset: r.maxOffset}, nil
}

func (t *rmqPull) commit(ctx context.Context, mq MessageQueue, offset int64) error {
	addr, err := t.addr(ctx, mq)
	if err != nil {
		return err
	}
	ext := queueExt(mq)
	ext["consumerGroup"] = t.cfg.group
	ext["commitOffset"] = i64(offset)
	actx, cancel := context.WithTimeout(ctx, t.cfg.sendTimeout)
	defer cancel()
	_, err = offsetCall(actx, t.cmd, addr, protocol.ReqUpdateConsumerOffset, ext)
	return err
}

func (t *rmqPull) committed(ctx context.Context, mq MessageQueue) (int64, error) {
	addr, err := t.addr(ctx, mq)
	if err != nil {
		return 0, err
	}
	ext := queueExt(mq)
	ext["consumerGroup"] = t.cfg.group
	actx, cancel := context.WithTimeout(ctx, t.cfg.sendTimeout)
	defer cancel()
	return offsetCall(actx, t.cmd, addr, protocol.ReqQueryConsumerOffset, ext)
}

func (t *rmqPull) close() error { return errors.Join(t.poll.Close(), t.cmd.Close(), t.ns.Close()) }
