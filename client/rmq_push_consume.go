package client

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

type consumeTask struct {
	q    *processQueue
	msgs []*MessageExt
}

// taskFIFO hands pulled batches from the pull loops to the consume
// workers. A pull loop never waits on it: put returns at once, so the loop
// pulls again as soon as a batch is handed off, not when it is consumed;
// each queue's flow control (maxCachedMessages, maxCachedBytes) bounds
// what waits here. Workers take batches in the order they were put.
type taskFIFO struct {
	mu    sync.Mutex
	tasks []consumeTask // guarded by mu; tasks[head:] wait
	head  int           // guarded by mu
	bell  chan struct{} // 1-slot: a task waits
}

func newTaskFIFO() taskFIFO { return taskFIFO{bell: make(chan struct{}, 1)} }

func (f *taskFIFO) put(ts ...consumeTask) {
	f.mu.Lock()
	f.tasks = append(f.tasks, ts...)
	f.mu.Unlock()
	f.ring()
}

func (f *taskFIFO) ring() {
	select {
	case f.bell <- struct{}{}:
	default:
	}
}

// take returns the oldest waiting task, waiting for one until done ends.
// A worker that takes a task while more wait rings for the next worker.
func (f *taskFIFO) take(done <-chan struct{}) (consumeTask, bool) {
	for {
		f.mu.Lock()
		if f.head < len(f.tasks) {
			t := f.tasks[f.head]
			f.tasks[f.head] = consumeTask{}
			f.head++
			more := f.head < len(f.tasks)
			switch {
			case !more:
				f.tasks, f.head = f.tasks[:0], 0
			case f.head >= 64 && f.head*2 >= len(f.tasks):
				// Never empty under steady load: move the waiting tasks
				// to the front so the slice does not grow.
				n := copy(f.tasks, f.tasks[f.head:])
				clear(f.tasks[n:])
				f.tasks, f.head = f.tasks[:n], 0
			}
			f.mu.Unlock()
			if more {
				f.ring()
			}
			return t, true
		}
		f.mu.Unlock()
		select {
		case <-f.bell:
		case <-done:
			return consumeTask{}, false
		}
	}
}

// pullLoop pulls q until it is dropped.
func (e *rmqPush) pullLoop(q *processQueue) {
	defer close(q.exited)
	filter := e.filters[q.mq.Topic]
	expr := e.subs[q.mq.Topic]
	for q.ctx.Err() == nil {
		// Flow control: wait while the queue's cache is full. Every batch
		// consumed rings room, so no timer is needed.
		if n, b := q.cached(); n >= e.cfg.maxCachedMessages || b >= e.cfg.maxCachedBytes {
			select {
			case <-q.room:
			case <-q.ctx.Done():
			}
			continue
		}
		addr, ok := e.routes.brokerAddr(q.mq.BrokerName)
		if !ok {
			e.backoff(q.ctx, time.Second)
			continue
		}
		commit := int64(-1)
		if !e.cfg.broadcast {
			commit = q.commitOffset()
		}
		r, err := pull(q.ctx, e.poll, addr, e.cfg.group, q.mq, q.nextOffset(), e.cfg.pullBatchSize, expr, commit,
			e.cfg.longPoll, e.cfg.longPoll+10*time.Second)
		if err != nil {
			if q.ctx.Err() == nil {
				logAt(e.cfg.logger, LogWarn, "pull failed", "topic", q.mq.Topic, "queue_id", q.mq.QueueID, "err", err)
				e.backoff(q.ctx, time.Second)
			}
			continue
		}
		if commit >= 0 {
			q.markCommitted(commit)
		}
		switch r.code {
		case protocol.RespSuccess:
			if q.ctx.Err() != nil {
				continue // dropped while the pull was held: the new owner reads these
			}
			// The broker filters by tag too; a message it let through that
			// does not match is skipped (its offset is passed by r.next).
			msgs := r.msgs[:0:0]
			for _, m := range r.msgs {
				if filter.match(m.Tags) || m.Queue.Topic == protocol.RetryTopic(e.cfg.group) {
					msgs = append(msgs, m)
				}
			}
			q.add(msgs, r.next)
			if len(msgs) > 0 {
				e.dispatch(q, msgs)
			}
		case protocol.RespPullOffsetMoved:
			logAt(e.cfg.logger, LogWarn, "pull offset moved", "topic", q.mq.Topic, "queue_id", q.mq.QueueID,
				"offset", q.nextOffset(), "next", r.next)
			q.setNext(r.next)
		default:
			q.setNext(r.next)
		}
	}
}

func (e *rmqPush) backoff(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// dispatch hands pulled messages to the consumers: orderly consumption
// runs them here, in order; concurrent consumption queues batches for the
// workers and returns at once.
func (e *rmqPush) dispatch(q *processQueue, msgs []*MessageExt) {
	if e.cfg.orderly {
		for _, m := range msgs {
			if q.ctx.Err() != nil {
				return
			}
			e.consumeOrderly(q, m)
		}
		return
	}
	var arr [8]consumeTask
	ts := arr[:0]
	for len(msgs) > 0 {
		n := min(len(msgs), e.cfg.consumeBatchSize)
		ts = append(ts, consumeTask{q: q, msgs: msgs[:n]})
		msgs = msgs[n:]
	}
	e.work.put(ts...)
}

// consumeOrderly runs the handler on m until it succeeds, waiting the
// suspend interval between attempts; past the reconsume limit the message
// goes to the dead-letter queue.
func (e *rmqPush) consumeOrderly(q *processQueue, m *MessageExt) {
	for {
		err := e.call(q.ctx, []*MessageExt{m})
		if err == nil {
			break
		}
		if q.ctx.Err() != nil {
			return // not consumed: stays in flight, redelivered to the next owner
		}
		m.ReconsumeTimes++
		if m.ReconsumeTimes > e.cfg.maxReconsumeTimes {
			if e.sendBackUntil(q.ctx, m, -1) != nil {
				return
			}
			break
		}
		logAt(e.cfg.logger, LogDebug, "orderly consume failed, retrying", "topic", m.Topic, "offset", m.QueueOffset, "err", err)
		e.backoff(q.ctx, e.cfg.suspendInterval)
		if q.ctx.Err() != nil {
			return
		}
	}
	q.done([]*MessageExt{m})
}

// call runs the handler, turning a panic into an error.
func (e *rmqPush) call(ctx context.Context, msgs []*MessageExt) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("client: handler panic: %v", r)
		}
	}()
	return e.handler(ctx, msgs)
}

func (e *rmqPush) worker() {
	defer e.wg.Done()
	for {
		t, ok := e.work.take(e.ctx.Done())
		if !ok {
			return
		}
		if t.q.ctx.Err() != nil && !e.cfg.broadcast {
			continue // the queue was dropped: left in flight for its next owner
		}
		err := e.call(t.q.ctx, t.msgs)
		if err != nil {
			if e.cfg.broadcast {
				logAt(e.cfg.logger, LogWarn, "broadcast consume failed, dropped", "topic", t.q.mq.Topic, "err", err)
			} else {
				ok := true
				for _, m := range t.msgs {
					if e.sendBackUntil(e.ctx, m, 0) != nil {
						ok = false
						break
					}
				}
				if !ok {
					continue // closing: leave them in flight
				}
			}
		}
		t.q.done(t.msgs)
	}
}

// sendBackUntil sends m back, retrying every second until it succeeds or
// ctx ends.
func (e *rmqPush) sendBackUntil(ctx context.Context, m *MessageExt, delayLevel int) error {
	for {
		err := e.sendBack(ctx, m, delayLevel)
		if err == nil {
			return nil
		}
		logAt(e.cfg.logger, LogWarn, "send back failed", "topic", m.Topic, "msg_id", m.MsgID, "err", err)
		e.backoff(ctx, time.Second)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// sendBack hands a failed message to the broker's retry machinery
// (CONSUMER_SEND_MSG_BACK); if the broker refuses, it sends the retry
// message to %RETRY%<group> itself.
func (e *rmqPush) sendBack(ctx context.Context, m *MessageExt, delayLevel int) error {
	addr, ok := e.routes.brokerAddr(m.Queue.BrokerName)
	if ok {
		req := remoting.NewRequest(protocol.ReqConsumerSendMsgBack, map[string]string{
			"group": e.cfg.group, "offset": i64(m.CommitLogOffset), "delayLevel": itoa(delayLevel),
			"originMsgId": m.MsgID, "originTopic": m.Topic, "unitMode": "false",
			"maxReconsumeTimes": itoa(e.cfg.maxReconsumeTimes), "bname": m.Queue.BrokerName,
		}, nil)
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := e.cmd.Invoke(actx, addr, req)
		cancel()
		if err == nil && resp.Code == protocol.RespSuccess {
			return nil
		}
		if err == nil {
			err = brokerErr(addr, resp)
		}
		logAt(e.cfg.logger, LogInfo, "send back refused, sending to the retry topic", "msg_id", m.MsgID, "err", err)
	}
	return sendToRetry(ctx, e.cmd, e.routes, e.cfg, m, delayLevel)
}

// sendToRetry is the send-back fallback: the message goes to
// %RETRY%<group> as a plain send with reconsumeTimes+1 and delay level
// 3+reconsumeTimes; the broker moves it to the DLQ past the limit.
func sendToRetry(ctx context.Context, rc *remoting.Client, routes *routeTable, cfg *config, m *MessageExt, delayLevel int) error {
	topic := protocol.RetryTopic(cfg.group)
	r, err := routes.get(ctx, topic, false)
	if err != nil {
		routes.forget(topic)
		return err
	}
	if len(r.publish) == 0 {
		return ErrNoQueue
	}
	mq := r.publish[int(m.QueueOffset%int64(len(r.publish)))]
	addr := r.brokers[mq.BrokerName]
	props := make(map[string]string, len(m.props)+3)
	for k, v := range m.props {
		if k != protocol.CRCProperty && k != protocol.PropTransaction {
			props[k] = v
		}
	}
	if _, ok := props[protocol.PropRetryTopic]; !ok {
		props[protocol.PropRetryTopic] = m.Topic
	}
	if _, ok := props[protocol.PropOriginMessageID]; !ok {
		props[protocol.PropOriginMessageID] = m.MsgID
	}
	if delayLevel == 0 {
		delayLevel = 3 + m.ReconsumeTimes
	}
	if delayLevel > 0 {
		props[protocol.PropDelayLevel] = strconv.Itoa(delayLevel)
	}
	reconsume := m.ReconsumeTimes + 1
	maxTimes := cfg.maxReconsumeTimes
	if delayLevel < 0 {
		maxTimes = 0 // straight to the DLQ
		delete(props, protocol.PropDelayLevel)
	}
	req := remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
		"producerGroup": innerProducerGroup, "topic": topic, "defaultTopic": protocol.AutoCreateTopicTemplate,
		"defaultTopicQueueNums": "1", "queueId": itoa(mq.QueueID), "sysFlag": strconv.Itoa(int(m.SysFlag & protocol.SysFlagCompressed)),
		"bornTimestamp": i64(m.BornAt.UnixMilli()), "flag": itoa(int(m.Flag)),
		"properties": string(protocol.EncodeProperties(props)), "reconsumeTimes": itoa(reconsume),
		"unitMode": "false", "maxReconsumeTimes": itoa(maxTimes), "batch": "false", "bname": mq.BrokerName,
	}, m.Body)
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := rc.Invoke(actx, addr, req)
	if err != nil {
		return err
	}
	if resp.Code != protocol.RespSuccess {
		return brokerErr(addr, resp)
	}
	return nil
}
