package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// rebalance computes the queues this member should own and starts or
// stops pull loops to match.
func (e *rmqPush) rebalance(ctx context.Context) {
	want := make(map[MessageQueue]bool)
	keep := make(map[string]bool) // topics whose assignment could not be computed
	for topic := range e.subs {
		r, err := e.routes.get(ctx, topic, false)
		if err != nil {
			logAt(e.cfg.logger, LogDebug, "rebalance: no route", "topic", topic, "err", err)
			keep[topic] = true
			continue
		}
		if e.cfg.broadcast {
			for _, q := range r.subscribe {
				want[q] = true
			}
			continue
		}
		ids, err := e.consumerIDs(ctx, r)
		if err != nil {
			logAt(e.cfg.logger, LogWarn, "rebalance: consumer list", "topic", topic, "group", e.cfg.group, "err", err)
			keep[topic] = true
			continue
		}
		for _, q := range AllocateAveragely(r.subscribe, ids, e.clientID) {
			want[q] = true
		}
	}
	e.mu.Lock()
	var drop []*processQueue
	for mq, q := range e.queues {
		if !want[mq] && !keep[mq.Topic] {
			// Cancelled before the lock is released, so no one who sees the
			// new assignment can still have the old owner consume from mq.
			q.cancel()
			drop = append(drop, q)
			delete(e.queues, mq)
		}
	}
	var add []MessageQueue
	for mq := range want {
		if _, ok := e.queues[mq]; !ok {
			add = append(add, mq)
		}
	}
	e.mu.Unlock()
	for _, q := range drop {
		e.dropQueue(q)
	}
	if e.cfg.orderly {
		e.relock(ctx)
	}
	sortQueues(add)
	for _, mq := range add {
		if ctx.Err() != nil {
			return
		}
		if err := e.addQueue(ctx, mq); err != nil {
			logAt(e.cfg.logger, LogWarn, "rebalance: queue not taken", "topic", mq.Topic, "broker", mq.BrokerName,
				"queue_id", mq.QueueID, "err", err)
		}
	}
	if len(drop)+len(add) > 0 {
		logAt(e.cfg.logger, LogInfo, "rebalanced", "group", e.cfg.group, "dropped", len(drop), "added", len(add))
	}
}

// consumerIDs asks a broker of the route for the group's members.
func (e *rmqPush) consumerIDs(ctx context.Context, r *topicRoute) ([]string, error) {
	var lastErr error = ErrNoQueue
	for _, name := range sortedKeys(r.brokers) {
		addr := r.brokers[name]
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := e.cmd.Invoke(actx, addr, remoting.NewRequest(protocol.ReqGetConsumerListByGroup,
			map[string]string{"consumerGroup": e.cfg.group}, nil))
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		var body remoting.ConsumerListBody
		if len(resp.Body) > 0 {
			if err := remoting.DecodeBody(resp.Body, &body); err != nil {
				lastErr = err
				continue
			}
		}
		if len(body.ConsumerIDList) == 0 {
			lastErr = brokerErr(addr, resp)
			continue
		}
		return body.ConsumerIDList, nil
	}
	return nil, lastErr
}

// addQueue takes mq: lock it (orderly), find the start offset, start its
// pull loop.
func (e *rmqPush) addQueue(ctx context.Context, mq MessageQueue) error {
	addr, ok := e.routes.brokerAddr(mq.BrokerName)
	if !ok {
		return fmt.Errorf("%w: broker %s has no master", ErrNoQueue, mq.BrokerName)
	}
	if e.cfg.orderly {
		got, err := e.lock(ctx, addr, []MessageQueue{mq})
		if err != nil {
			return err
		}
		if len(got) == 0 {
			return errors.New("client: queue locked by another member")
		}
	}
	off, err := e.startOffset(ctx, addr, mq)
	if err != nil {
		return err
	}
	q := newProcessQueue(e.ctx, mq, off)
	q.markCommitted(off)
	e.mu.Lock()
	e.queues[mq] = q
	e.mu.Unlock()
	go e.pullLoop(q)
	return nil
}

// dropQueue stops q's pull loop, commits its offset and unlocks it.
func (e *rmqPush) dropQueue(q *processQueue) {
	q.cancel()
	<-q.exited
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	e.commit(ctx, q, true)
	if e.cfg.orderly {
		if addr, ok := e.routes.brokerAddr(q.mq.BrokerName); ok {
			e.unlock(ctx, addr, []MessageQueue{q.mq})
		}
	}
}

func (e *rmqPush) owned() []*processQueue {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*processQueue, 0, len(e.queues))
	for _, q := range e.queues {
		out = append(out, q)
	}
	return out
}

func (e *rmqPush) assigned() []MessageQueue {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]MessageQueue, 0, len(e.queues))
	for mq := range e.queues {
		out = append(out, mq)
	}
	return out
}

// lock asks a broker to lock mqs for this member; it returns those granted.
func (e *rmqPush) lock(ctx context.Context, addr string, mqs []MessageQueue) ([]MessageQueue, error) {
	body, _ := remoting.EncodeBody(&remoting.LockBatchRequestBody{ConsumerGroup: e.cfg.group, ClientID: e.clientID, MQSet: wireQueues(mqs)})
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := e.cmd.Invoke(actx, addr, remoting.NewRequest(protocol.ReqLockBatchMQ, nil, body))
	if err != nil {
		return nil, err
	}
	if resp.Code != protocol.RespSuccess {
		return nil, brokerErr(addr, resp)
	}
	var got remoting.LockBatchResponseBody
	if err := remoting.DecodeBody(resp.Body, &got); err != nil {
		return nil, err
	}
	out := make([]MessageQueue, 0, len(got.LockOKMQSet))
	for _, q := range got.LockOKMQSet {
		out = append(out, MessageQueue{Topic: q.Topic, BrokerName: q.BrokerName, QueueID: int(q.QueueID)})
	}
	return out, nil
}

func (e *rmqPush) unlock(ctx context.Context, addr string, mqs []MessageQueue) {
	body, _ := remoting.EncodeBody(&remoting.LockBatchRequestBody{ConsumerGroup: e.cfg.group, ClientID: e.clientID, MQSet: wireQueues(mqs)})
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := e.cmd.Invoke(actx, addr, remoting.NewRequest(protocol.ReqUnlockBatchMQ, nil, body)); err != nil {
		logAt(e.cfg.logger, LogWarn, "unlock queues", "broker", addr, "err", err)
	}
}

// relock renews the locks of every owned queue; a queue whose lock is lost
// is dropped (and taken again by a later rebalance if it can be locked).
func (e *rmqPush) relock(ctx context.Context) {
	byBroker := make(map[string][]MessageQueue)
	for _, q := range e.owned() {
		byBroker[q.mq.BrokerName] = append(byBroker[q.mq.BrokerName], q.mq)
	}
	for name, mqs := range byBroker {
		addr, ok := e.routes.brokerAddr(name)
		if !ok {
			continue
		}
		got, err := e.lock(ctx, addr, mqs)
		if err != nil {
			continue // keep consuming; the broker's lock outlives a missed renewal
		}
		held := make(map[MessageQueue]bool, len(got))
		for _, q := range got {
			held[q] = true
		}
		for _, mq := range mqs {
			if held[mq] {
				continue
			}
			e.mu.Lock()
			q := e.queues[mq]
			delete(e.queues, mq)
			e.mu.Unlock()
			if q != nil {
				logAt(e.cfg.logger, LogWarn, "queue lock lost", "topic", mq.Topic, "queue_id", mq.QueueID)
				q.cancel()
				<-q.exited
			}
		}
	}
}

func wireQueues(mqs []MessageQueue) []remoting.MessageQueue {
	out := make([]remoting.MessageQueue, len(mqs))
	for i, q := range mqs {
		out[i] = remoting.MessageQueue{Topic: q.Topic, BrokerName: q.BrokerName, QueueID: int32(q.QueueID)}
	}
	return out
}
