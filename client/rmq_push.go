package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// rmqPush is the remoting PushConsumer.
//
// Goroutines, all started by start and gone after close:
//   - control: heartbeat, route refresh, rebalance (on start, on its
//     period and on NOTIFY_CONSUMER_IDS_CHANGED), offset commits;
//   - one pull loop per owned queue (orderly consumption runs the handler
//     inside it, so a queue's messages are consumed one at a time in order);
//   - consumeGoroutines workers for concurrent consumption, fed through a
//     FIFO the pull loops never wait on (taskFIFO): a queue is pulled again
//     as soon as its batch is handed off, within its flow-control limits.
//
// Pulls use their own remoting.Client (poll), so a long poll held by the
// broker never delays the control traffic on cmd.
type rmqPush struct {
	cfg      *config
	handler  Handler
	subs     map[string]string    // topic → expression, retry topic included in clustering
	filters  map[string]tagFilter // topic → filter
	clientID string
	ns       *remoting.Client
	cmd      *remoting.Client
	poll     *remoting.Client
	routes   *routeTable
	work     taskFIFO      // concurrent consumption
	bell     chan struct{} // 1-slot: rebalance now

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // control loop and workers

	mu     sync.Mutex
	queues map[MessageQueue]*processQueue // owned queues; guarded by mu
	// offsets remembers broadcast positions of queues no longer owned;
	// guarded by mu.
	offsets map[MessageQueue]int64
	// offsetFile persists offsets in broadcasting mode ("" = memory only).
	offsetFile string
}

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

func newRMQPush(cfg *config, h Handler, subs map[string]string) *rmqPush {
	e := &rmqPush{cfg: cfg, handler: h, subs: subs, filters: make(map[string]tagFilter), clientID: newClientID(cfg.instance),
		bell: make(chan struct{}, 1), queues: make(map[MessageQueue]*processQueue), offsets: make(map[MessageQueue]int64)}
	for t, expr := range subs {
		e.filters[t], _ = parseTagExpr(expr)
	}
	if !cfg.broadcast {
		e.subs[protocol.RetryTopic(cfg.group)] = "*"
		e.filters[protocol.RetryTopic(cfg.group)] = nil
	}
	e.ns = remoting.NewClient(cfg.remotingConfig())
	e.cmd = remoting.NewClient(withHandler(cfg.remotingConfig(), remoting.HandlerFunc(e.serveBroker)))
	e.poll = remoting.NewClient(cfg.remotingConfig())
	e.routes = newRouteTable(cfg, e.ns)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if cfg.broadcast && cfg.offsetDir != "" {
		e.offsetFile = broadcastOffsetFile(cfg.offsetDir, cfg.group, cfg.instance)
		offs, err := loadBroadcastOffsets(e.offsetFile)
		if err != nil {
			logAt(cfg.logger, LogWarn, "broadcast offsets unreadable; starting by the consume-from policy", "file", e.offsetFile, "err", err)
		}
		e.offsets = offs
	}
	return e
}

// serveBroker handles requests brokers send on the cmd connection.
func (e *rmqPush) serveBroker(c *remoting.Conn, req *remoting.Command) {
	if req.Code == protocol.ReqNotifyConsumerIDsChanged {
		logAt(e.cfg.logger, LogDebug, "consumer ids changed", "group", e.cfg.group)
		e.rebalanceSoon()
		if !req.IsOneway() {
			_ = c.Reply(remoting.NewResponse(req, protocol.RespSuccess, ""))
		}
		return
	}
	remoting.NotSupported(c, req)
}

func (e *rmqPush) rebalanceSoon() {
	select {
	case e.bell <- struct{}{}:
	default:
	}
}

func (e *rmqPush) start(ctx context.Context) error {
	for t := range e.subs {
		if t == protocol.RetryTopic(e.cfg.group) {
			continue
		}
		if _, err := e.routes.get(ctx, t, false); err != nil {
			return fmt.Errorf("client: subscribe %s: %w", t, err)
		}
	}
	e.heartbeat(ctx)
	// The retry topic is created by the heartbeat; its route may take a
	// moment to reach the name servers. Rebalance picks it up later.
	_, _ = e.routes.get(ctx, protocol.RetryTopic(e.cfg.group), false)
	if !e.cfg.orderly {
		e.work = newTaskFIFO()
		for i := 0; i < e.cfg.consumeGoroutines; i++ {
			e.wg.Add(1)
			go e.worker()
		}
	}
	e.rebalance(ctx)
	e.wg.Add(1)
	go e.control()
	return nil
}

func (e *rmqPush) heartbeatData() *remoting.HeartbeatData {
	model, where := remoting.MessageModelClustering, remoting.ConsumeFromLastOffset
	if e.cfg.broadcast {
		model = remoting.MessageModelBroadcast
	}
	switch e.cfg.consumeFrom {
	case ConsumeFromFirstOffset:
		where = remoting.ConsumeFromFirstOffset
	case ConsumeFromTimestamp:
		where = remoting.ConsumeFromTimestamp
	}
	cd := remoting.ConsumerData{GroupName: e.cfg.group, ConsumeType: remoting.ConsumePassively, MessageModel: model,
		ConsumeFromWhere: where}
	for t, expr := range e.subs {
		sd := remoting.SubscriptionData{Topic: t, SubString: expr, TagsSet: []string{}, CodeSet: remoting.CodeSet{},
			SubVersion: time.Now().UnixNano(), ExpressionType: remoting.ExpressionTypeTag}
		if f := e.filters[t]; f != nil {
			sd.TagsSet = f.tags()
		}
		cd.SubscriptionDataSet = append(cd.SubscriptionDataSet, sd)
	}
	return &remoting.HeartbeatData{ClientID: e.clientID, ProducerDataSet: []remoting.ProducerData{},
		ConsumerDataSet: []remoting.ConsumerData{cd}}
}

func (e *rmqPush) heartbeat(ctx context.Context) {
	heartbeatAll(ctx, e.cmd, e.routes.brokerAddrs(), e.heartbeatData(), e.cfg.logger)
}

// control runs the periodic work.
func (e *rmqPush) control() {
	defer e.wg.Done()
	hb := time.NewTicker(e.cfg.heartbeatInterval)
	defer hb.Stop()
	rb := time.NewTicker(e.cfg.rebalanceInterval)
	defer rb.Stop()
	rt := time.NewTicker(e.cfg.routeRefreshInterval)
	defer rt.Stop()
	cm := time.NewTicker(e.cfg.commitInterval)
	defer cm.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-hb.C:
			e.heartbeat(e.ctx)
		case <-rt.C:
			e.routes.refresh(e.ctx)
		case <-rb.C:
			e.rebalance(e.ctx)
		case <-e.bell:
			e.rebalance(e.ctx)
		case <-cm.C:
			e.commitAll(e.ctx, false)
		}
	}
}

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

func (e *rmqPush) startOffset(ctx context.Context, addr string, mq MessageQueue) (int64, error) {
	ext := queueExt(mq)
	if e.cfg.broadcast {
		e.mu.Lock()
		off, ok := e.offsets[mq]
		e.mu.Unlock()
		if ok {
			return off, nil
		}
	} else {
		ext["consumerGroup"] = e.cfg.group
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		off, err := offsetCall(actx, e.cmd, addr, protocol.ReqQueryConsumerOffset, ext)
		cancel()
		if err != nil {
			return 0, err
		}
		if off >= 0 {
			return off, nil
		}
		delete(ext, "consumerGroup")
		if mq.Topic == protocol.RetryTopic(e.cfg.group) {
			return 0, nil
		}
	}
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	switch e.cfg.consumeFrom {
	case ConsumeFromFirstOffset:
		return 0, nil
	case ConsumeFromTimestamp:
		ext["timestamp"] = i64(e.cfg.consumeTimestamp.UnixMilli())
		return offsetCall(actx, e.cmd, addr, protocol.ReqSearchOffsetByTimestamp, ext)
	}
	return offsetCall(actx, e.cmd, addr, protocol.ReqGetMaxOffset, ext)
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

// commit stores q's commit offset on its broker (clustering) or in memory
// (broadcasting).
func (e *rmqPush) commit(ctx context.Context, q *processQueue, force bool) {
	off := q.commitOffset()
	if e.cfg.broadcast {
		e.mu.Lock()
		e.offsets[q.mq] = off
		e.mu.Unlock()
		return
	}
	if !force && off == q.lastCommitted() {
		return
	}
	addr, ok := e.routes.brokerAddr(q.mq.BrokerName)
	if !ok {
		return
	}
	ext := queueExt(q.mq)
	ext["consumerGroup"] = e.cfg.group
	ext["commitOffset"] = i64(off)
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := offsetCall(actx, e.cmd, addr, protocol.ReqUpdateConsumerOffset, ext)
	cancel()
	if err != nil {
		logAt(e.cfg.logger, LogWarn, "commit offset", "topic", q.mq.Topic, "queue_id", q.mq.QueueID, "offset", off, "err", err)
		return
	}
	q.markCommitted(off)
}

func (e *rmqPush) commitAll(ctx context.Context, force bool) {
	for _, q := range e.owned() {
		e.commit(ctx, q, force)
	}
	if e.offsetFile != "" {
		e.mu.Lock()
		offs := make(map[MessageQueue]int64, len(e.offsets))
		for q, off := range e.offsets {
			offs[q] = off
		}
		e.mu.Unlock()
		if err := saveBroadcastOffsets(e.offsetFile, offs); err != nil {
			logAt(e.cfg.logger, LogWarn, "save broadcast offsets", "file", e.offsetFile, "err", err)
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

func (e *rmqPush) close() error {
	e.cancel()
	e.wg.Wait()
	qs := e.owned()
	for _, q := range qs {
		<-q.exited
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.commitAll(ctx, true)
	if e.cfg.orderly {
		byBroker := make(map[string][]MessageQueue)
		for _, q := range qs {
			byBroker[q.mq.BrokerName] = append(byBroker[q.mq.BrokerName], q.mq)
		}
		for name, mqs := range byBroker {
			if addr, ok := e.routes.brokerAddr(name); ok {
				e.unlock(ctx, addr, mqs)
			}
		}
	}
	return errors.Join(e.poll.Close(), e.cmd.Close(), e.ns.Close())
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
