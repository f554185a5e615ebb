package client

import (
	"context"
	"errors"
	"fmt"
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
//
// This file holds its lifecycle and control loop; rmq_push_rebalance.go
// the queue assignment and orderly locks, rmq_push_consume.go the pull
// loops, the workers and sending back, rmq_push_offset.go the offsets.
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
