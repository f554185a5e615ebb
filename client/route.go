package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// topicRoute is what the name servers say about one topic.
type topicRoute struct {
	publish   []MessageQueue    // writable queues on brokers with a master, sorted
	subscribe []MessageQueue    // readable queues, sorted
	brokers   map[string]string // broker name → master address
}

// routeTable caches topic routes and refreshes them from the name servers.
type routeTable struct {
	cfg *config
	ns  *remoting.Client
	rr  atomic.Uint32 // next name server to ask

	mu     sync.RWMutex
	routes map[string]*topicRoute // guarded by mu
	// brokers is every master address seen, by broker name; guarded by mu.
	brokers map[string]string
}

func newRouteTable(cfg *config, ns *remoting.Client) *routeTable {
	return &routeTable{cfg: cfg, ns: ns, routes: make(map[string]*topicRoute), brokers: make(map[string]string)}
}

// fetch asks the name servers for topic's route, trying each in turn.
func (rt *routeTable) fetch(ctx context.Context, topic string) (*topicRoute, error) {
	var lastErr error
	n := len(rt.cfg.namesrvAddrs)
	start := int(rt.rr.Add(1))
	for i := 0; i < n; i++ {
		addr := rt.cfg.namesrvAddrs[(start+i)%n]
		actx, cancel := context.WithTimeout(ctx, 6*time.Second)
		resp, err := rt.ns.Invoke(actx, addr, remoting.NewRequest(protocol.ReqGetRouteInfoByTopic, map[string]string{"topic": topic}, nil))
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("client: route of %s from %s: %w", topic, addr, err)
			continue
		}
		if resp.Code == protocol.RespTopicNotExist {
			return nil, &noRouteError{topic: topic, se: &ServerError{Broker: addr, Code: int(resp.Code), Remark: resp.Remark}}
		}
		if resp.Code != protocol.RespSuccess || len(resp.Body) == 0 {
			lastErr = brokerErr(addr, resp)
			continue
		}
		data, err := remoting.DecodeTopicRouteData(resp.Body)
		if err != nil {
			lastErr = err
			continue
		}
		return buildRoute(topic, data), nil
	}
	return nil, lastErr
}

// noRouteError is a name server's answer that it routes no topic of that
// name. It unwraps to that answer, a *ServerError with TOPIC_NOT_EXIST,
// so errors.Is(err, ErrTopicNotFound) holds and errors.As finds the code,
// as for an HTTP broker's answer about an unknown topic. Unlike a broker's
// TOPIC_NOT_EXIST it is final: no broker has the topic, so a send does
// not retry.
type noRouteError struct {
	topic string
	se    *ServerError
}

func (e *noRouteError) Error() string {
	return fmt.Sprintf("%v: %s (the name server at %s has no route for it)", ErrTopicNotFound, e.topic, e.se.Broker)
}

func (e *noRouteError) Unwrap() error { return e.se }

// buildRoute turns route data into sorted queue lists.
func buildRoute(topic string, d *remoting.TopicRouteData) *topicRoute {
	r := &topicRoute{brokers: make(map[string]string)}
	for _, b := range d.BrokerDatas {
		if a, ok := b.BrokerAddrs[0]; ok && a != "" {
			r.brokers[b.BrokerName] = a
		}
	}
	for _, q := range d.QueueDatas {
		_, master := r.brokers[q.BrokerName]
		if protocol.PermWritable(q.Perm) && master {
			for i := 0; i < int(q.WriteQueueNums); i++ {
				r.publish = append(r.publish, MessageQueue{Topic: topic, BrokerName: q.BrokerName, QueueID: i})
			}
		}
		if protocol.PermReadable(q.Perm) {
			for i := 0; i < int(q.ReadQueueNums); i++ {
				r.subscribe = append(r.subscribe, MessageQueue{Topic: topic, BrokerName: q.BrokerName, QueueID: i})
			}
		}
	}
	sortQueues(r.publish)
	sortQueues(r.subscribe)
	return r
}

// get returns the cached route of topic, fetching it on first use. With
// autoCreate, a topic the name servers do not know is routed like the
// auto-create template topic, so the broker creates it on the first send.
func (rt *routeTable) get(ctx context.Context, topic string, autoCreate bool) (*topicRoute, error) {
	rt.mu.RLock()
	r := rt.routes[topic]
	rt.mu.RUnlock()
	if r != nil {
		return r, nil
	}
	r, err := rt.fetch(ctx, topic)
	if errors.Is(err, ErrTopicNotFound) && autoCreate {
		tpl, terr := rt.fetch(ctx, protocol.AutoCreateTopicTemplate)
		if terr != nil {
			return nil, err
		}
		r = &topicRoute{brokers: tpl.brokers}
		for _, q := range tpl.publish {
			r.publish = append(r.publish, MessageQueue{Topic: topic, BrokerName: q.BrokerName, QueueID: q.QueueID})
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}
	rt.store(topic, r)
	return r, nil
}

func (rt *routeTable) store(topic string, r *topicRoute) {
	rt.mu.Lock()
	rt.routes[topic] = r
	for n, a := range r.brokers {
		rt.brokers[n] = a
	}
	rt.mu.Unlock()
}

// refresh re-reads every cached route; a failed read keeps the old one, a
// route read as template (auto-create) is replaced once the topic exists.
func (rt *routeTable) refresh(ctx context.Context) {
	rt.mu.RLock()
	topics := make([]string, 0, len(rt.routes))
	for t := range rt.routes {
		topics = append(topics, t)
	}
	rt.mu.RUnlock()
	for _, t := range topics {
		r, err := rt.fetch(ctx, t)
		if err != nil {
			logAt(rt.cfg.logger, LogDebug, "route refresh failed", "topic", t, "err", err)
			continue
		}
		rt.store(t, r)
	}
}

// forget drops a cached route so the next get reads it again.
func (rt *routeTable) forget(topic string) {
	rt.mu.Lock()
	delete(rt.routes, topic)
	rt.mu.Unlock()
}

// brokerAddr is the master address of a broker name.
func (rt *routeTable) brokerAddr(name string) (string, bool) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	a, ok := rt.brokers[name]
	return a, ok
}

// brokerAddrs lists every known master address, sorted.
func (rt *routeTable) brokerAddrs() []string {
	rt.mu.RLock()
	out := make([]string, 0, len(rt.brokers))
	for _, a := range rt.brokers {
		out = append(out, a)
	}
	rt.mu.RUnlock()
	sort.Strings(out)
	return out
}
