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

// rmqProducer is the remoting transport of a Producer: routes from the
// name servers, sends to the brokers' masters. It owns one goroutine, the
// route refresher.
type rmqProducer struct {
	cfg      *config
	stats    *producerStats
	clientID string
	ns       *remoting.Client // name servers
	cmd      *remoting.Client // brokers
	routes   *routeTable
	tx       txConns // connections announced for check-backs (transaction.go)

	stop chan struct{}
	wg   sync.WaitGroup
}

func newRMQProducer(cfg *config, stats *producerStats) *rmqProducer {
	cmdCfg := cfg.remotingConfig()
	if cfg.txChecker != nil {
		cmdCfg = withHandler(cmdCfg, txCheckHandler{cfg: cfg})
	}
	t := &rmqProducer{cfg: cfg, stats: stats, clientID: newClientID(cfg.instance),
		ns: remoting.NewClient(cfg.remotingConfig()), cmd: remoting.NewClient(cmdCfg),
		stop: make(chan struct{})}
	t.routes = newRouteTable(cfg, t.ns)
	t.wg.Add(1)
	go t.refreshLoop()
	return t
}

// refreshLoop re-reads routes and heartbeats the brokers periodically.
func (t *rmqProducer) refreshLoop() {
	defer t.wg.Done()
	routeT := time.NewTicker(t.cfg.routeRefreshInterval)
	defer routeT.Stop()
	hbT := time.NewTicker(t.cfg.heartbeatInterval)
	defer hbT.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-t.stop; cancel() }()
	for {
		select {
		case <-t.stop:
			return
		case <-routeT.C:
			t.routes.refresh(ctx)
		case <-hbT.C:
			hb := &remoting.HeartbeatData{ClientID: t.clientID, ProducerDataSet: []remoting.ProducerData{{GroupName: t.cfg.group}},
				ConsumerDataSet: []remoting.ConsumerData{}}
			heartbeatAll(ctx, t.cmd, t.routes.brokerAddrs(), hb, t.cfg.logger)
		}
	}
}

func (t *rmqProducer) queues(ctx context.Context, topic string) ([]MessageQueue, error) {
	r, err := t.routes.get(ctx, topic, true)
	if err != nil {
		return nil, err
	}
	if len(r.publish) == 0 {
		return nil, ErrNoQueue
	}
	return r.publish, nil
}

func (t *rmqProducer) send(ctx context.Context, topic string, msgs []*outMsg, pick func([]MessageQueue) MessageQueue,
	avoid []string, oneway bool) ([]SendResult, string, error) {
	r, err := t.routes.get(ctx, topic, true)
	if err != nil {
		return nil, "", err
	}
	qs := r.publish
	if len(avoid) > 0 {
		var keep []MessageQueue
		for _, q := range qs {
			if !contains(avoid, q.BrokerName) {
				keep = append(keep, q)
			}
		}
		if len(keep) > 0 {
			qs = keep
		}
	}
	if len(qs) == 0 {
		return nil, "", ErrNoQueue
	}
	mq := pick(qs)
	addr, ok := r.brokers[mq.BrokerName]
	if !ok {
		return nil, mq.BrokerName, ErrNoQueue
	}
	nq := 0
	for _, q := range r.publish {
		if q.BrokerName == mq.BrokerName {
			nq++
		}
	}
	req := sendRequest(t.cfg.group, mq, msgs, max(nq, defaultAutoCreateQueueNums))
	t.stats.requests.Add(1)
	if oneway {
		err := t.cmd.InvokeOneway(ctx, addr, req)
		if err != nil {
			return nil, mq.BrokerName, err
		}
		out := make([]SendResult, len(msgs))
		for i, o := range msgs {
			out[i] = SendResult{MsgID: o.id, Queue: mq, QueueOffset: -1}
		}
		return out, mq.BrokerName, nil
	}
	resp, err := t.cmd.Invoke(ctx, addr, req)
	if err != nil {
		if errors.Is(err, remoting.ErrClientClosed) {
			err = ErrClosed
		}
		return nil, mq.BrokerName, err
	}
	res, err := sendResults(addr, mq, msgs, resp)
	if err != nil {
		var be *ServerError
		if errors.As(err, &be) && be.Code == protocol.RespTopicNotExist {
			t.routes.forget(topic)
		}
	}
	return res, mq.BrokerName, err
}

// brokerAddr is the master address of broker, from topic's route.
func (t *rmqProducer) brokerAddr(ctx context.Context, topic, broker string) (string, error) {
	r, err := t.routes.get(ctx, topic, true)
	if err != nil {
		return "", err
	}
	if a, ok := r.brokers[broker]; ok {
		return a, nil
	}
	if a, ok := t.routes.brokerAddr(broker); ok {
		return a, nil
	}
	return "", fmt.Errorf("%w: broker %s has no master address", ErrNoQueue, broker)
}

func (t *rmqProducer) close() error {
	close(t.stop)
	t.wg.Wait()
	return errors.Join(t.cmd.Close(), t.ns.Close())
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// heartbeatAll sends hb to every address; failures are logged.
func heartbeatAll(ctx context.Context, rc *remoting.Client, addrs []string, hb *remoting.HeartbeatData, log Logger) {
	body, err := remoting.EncodeBody(hb)
	if err != nil {
		return
	}
	for _, a := range addrs {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		resp, err := rc.Invoke(actx, a, remoting.NewRequest(protocol.ReqHeartBeat, nil, body))
		cancel()
		if err == nil && resp.Code != protocol.RespSuccess {
			err = brokerErr(a, resp)
		}
		if err != nil {
			logAt(log, LogWarn, "heartbeat failed", "broker", a, "err", err)
		}
	}
}
