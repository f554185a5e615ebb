package namesrv

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

// DefaultBrokerExpiry is how long a broker may stay silent before it is
// dropped (Java BROKER_CHANNEL_EXPIRED_TIME).
const DefaultBrokerExpiry = 120 * time.Second

// Registration is one REGISTER_BROKER call.
type Registration struct {
	Cluster      string
	BrokerName   string
	BrokerAddr   string
	HAServerAddr string
	// HTTPAddr is where the broker serves its HTTP API ("": none).
	HTTPAddr string
	BrokerID int64
	// Topics is the broker's whole topic table. nil means "not reported"
	// (the previous view stays); an empty map means "no topics".
	Topics      map[string]remoting.TopicConfig
	DataVersion remoting.DataVersion
	// ConnID is the remoting connection the registration came over (0 if
	// none); when it closes, ConnClosed drops the broker.
	ConnID uint64
}

// brokerGroup is one brokerName: its cluster and addresses by broker id.
type brokerGroup struct {
	cluster string
	addrs   map[int64]string
}

// liveBroker is what the registry knows about one registered address.
type liveBroker struct {
	cluster, name string
	id            int64
	haServerAddr  string
	httpAddr      string
	lastUpdate    time.Time
	connID        uint64
	dataVersion   remoting.DataVersion
}

// Registry is the name server's routing state. Safe for concurrent use;
// it starts no goroutines and reads time only through the injected clock.
type Registry struct {
	now    func() time.Time
	expiry time.Duration

	mu       sync.RWMutex
	topics   map[string]map[string]remoting.QueueData // topic → brokerName → queues
	groups   map[string]*brokerGroup                  // brokerName →
	clusters map[string]map[string]struct{}           // cluster → brokerNames
	live     map[string]*liveBroker                   // brokerAddr →
}

// NewRegistry returns an empty registry. now nil means time.Now; expiry <= 0
// means DefaultBrokerExpiry.
func NewRegistry(now func() time.Time, expiry time.Duration) *Registry {
	if now == nil {
		now = time.Now
	}
	if expiry <= 0 {
		expiry = DefaultBrokerExpiry
	}
	return &Registry{
		now:      now,
		expiry:   expiry,
		topics:   make(map[string]map[string]remoting.QueueData),
		groups:   make(map[string]*brokerGroup),
		clusters: make(map[string]map[string]struct{}),
		live:     make(map[string]*liveBroker),
	}
}

// Register records a broker registration and returns what to answer it: for
// a slave, its master's address and HA address. isNew reports a broker
// address not registered before.
func (r *Registry) Register(reg Registration) (res remoting.RegisterBrokerResult, isNew bool) {
	r.mu.Lock()
	defer r.mu.Unlock()

	names := r.clusters[reg.Cluster]
	if names == nil {
		names = make(map[string]struct{})
		r.clusters[reg.Cluster] = names
	}
	names[reg.BrokerName] = struct{}{}

	g := r.groups[reg.BrokerName]
	if g == nil {
		g = &brokerGroup{cluster: reg.Cluster, addrs: make(map[int64]string)}
		r.groups[reg.BrokerName] = g
	}
	if g.cluster != reg.Cluster {
		// The broker moved to another cluster.
		if old := r.clusters[g.cluster]; old != nil {
			delete(old, reg.BrokerName)
			if len(old) == 0 {
				delete(r.clusters, g.cluster)
			}
		}
		g.cluster = reg.Cluster
	}
	for id, addr := range g.addrs {
		if addr == reg.BrokerAddr && id != reg.BrokerID {
			delete(g.addrs, id) // the same address changed role
		}
	}
	if old, ok := g.addrs[reg.BrokerID]; ok && old != reg.BrokerAddr {
		delete(r.live, old) // the id moved to a new address
	}
	g.addrs[reg.BrokerID] = reg.BrokerAddr

	if reg.BrokerID == 0 && reg.Topics != nil {
		r.replaceQueuesLocked(reg.BrokerName, reg.Topics)
	}

	_, existed := r.live[reg.BrokerAddr]
	r.live[reg.BrokerAddr] = &liveBroker{
		cluster: reg.Cluster, name: reg.BrokerName, id: reg.BrokerID,
		haServerAddr: reg.HAServerAddr, httpAddr: reg.HTTPAddr, lastUpdate: r.now(), connID: reg.ConnID,
		dataVersion: reg.DataVersion,
	}

	if reg.BrokerID != 0 {
		if master, ok := g.addrs[0]; ok {
			res.MasterAddr = master
			if lb := r.live[master]; lb != nil {
				res.HAServerAddr = lb.haServerAddr
			}
		}
	}
	return res, !existed
}

// replaceQueuesLocked makes topics the whole set of brokerName's queues.
func (r *Registry) replaceQueuesLocked(brokerName string, topics map[string]remoting.TopicConfig) {
	for topic, byBroker := range r.topics {
		if _, still := topics[topic]; still {
			continue
		}
		if _, had := byBroker[brokerName]; had {
			delete(byBroker, brokerName)
			if len(byBroker) == 0 {
				delete(r.topics, topic)
			}
		}
	}
	for key, tc := range topics {
		topic := tc.TopicName
		if topic == "" {
			topic = key
		}
		byBroker := r.topics[topic]
		if byBroker == nil {
			byBroker = make(map[string]remoting.QueueData)
			r.topics[topic] = byBroker
		}
		byBroker[brokerName] = remoting.QueueData{
			BrokerName:     brokerName,
			ReadQueueNums:  tc.ReadQueueNums,
			WriteQueueNums: tc.WriteQueueNums,
			Perm:           tc.Perm,
			TopicSysFlag:   tc.TopicSysFlag,
		}
	}
}

// Unregister removes the broker at addr with the given id. It reports
// whether anything was removed.
func (r *Registry) Unregister(cluster, brokerName, addr string, id int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = cluster // the brokerName's recorded cluster is authoritative
	return r.removeLocked(brokerName, addr, id)
}

// removeLocked drops one address of brokerName; when it was the last, the
// brokerName, its cluster membership and its queues go too.
func (r *Registry) removeLocked(brokerName, addr string, id int64) bool {
	removed := false
	if lb, ok := r.live[addr]; ok && lb.name == brokerName && lb.id == id {
		delete(r.live, addr)
		removed = true
	}
	g := r.groups[brokerName]
	if g == nil {
		return removed
	}
	if g.addrs[id] == addr {
		delete(g.addrs, id)
		removed = true
	}
	if len(g.addrs) > 0 {
		return removed
	}
	delete(r.groups, brokerName)
	if names := r.clusters[g.cluster]; names != nil {
		delete(names, brokerName)
		if len(names) == 0 {
			delete(r.clusters, g.cluster)
		}
	}
	for topic, byBroker := range r.topics {
		delete(byBroker, brokerName)
		if len(byBroker) == 0 {
			delete(r.topics, topic)
		}
	}
	return removed
}

// ExpiredBroker describes a broker dropped by Expire or ConnClosed.
type ExpiredBroker struct {
	Cluster, BrokerName, BrokerAddr string
	BrokerID                        int64
}

// Expire drops brokers not heard from for longer than the expiry and
// returns them.
func (r *Registry) Expire() []ExpiredBroker {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var out []ExpiredBroker
	for addr, lb := range r.live {
		if now.Sub(lb.lastUpdate) > r.expiry {
			out = append(out, ExpiredBroker{lb.cluster, lb.name, addr, lb.id})
			r.removeLocked(lb.name, addr, lb.id)
		}
	}
	return out
}

// ConnClosed drops the brokers that registered over connection connID.
func (r *Registry) ConnClosed(connID uint64) []ExpiredBroker {
	if connID == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ExpiredBroker
	for addr, lb := range r.live {
		if lb.connID == connID {
			out = append(out, ExpiredBroker{lb.cluster, lb.name, addr, lb.id})
			r.removeLocked(lb.name, addr, lb.id)
		}
	}
	return out
}

// Route returns topic's route, or false if no broker serves it. Queue and
// broker data are sorted by brokerName.
func (r *Registry) Route(topic string) (*remoting.TopicRouteData, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	byBroker := r.topics[topic]
	if len(byBroker) == 0 {
		return nil, false
	}
	route := &remoting.TopicRouteData{
		QueueDatas:        make([]remoting.QueueData, 0, len(byBroker)),
		BrokerDatas:       make([]remoting.BrokerData, 0, len(byBroker)),
		FilterServerTable: map[string][]string{},
	}
	for name, qd := range byBroker {
		route.QueueDatas = append(route.QueueDatas, qd)
		if g := r.groups[name]; g != nil {
			route.BrokerDatas = append(route.BrokerDatas, g.brokerData(name))
		}
	}
	if len(route.BrokerDatas) == 0 {
		return nil, false
	}
	slices.SortFunc(route.QueueDatas, func(a, b remoting.QueueData) int { return cmp.Compare(a.BrokerName, b.BrokerName) })
	slices.SortFunc(route.BrokerDatas, func(a, b remoting.BrokerData) int { return cmp.Compare(a.BrokerName, b.BrokerName) })
	return route, true
}

func (g *brokerGroup) brokerData(name string) remoting.BrokerData {
	addrs := make(map[int64]string, len(g.addrs))
	for id, a := range g.addrs {
		addrs[id] = a
	}
	return remoting.BrokerData{Cluster: g.cluster, BrokerName: name, BrokerAddrs: addrs}
}

// ClusterInfo returns every broker and the brokerNames of every cluster
// (sorted).
func (r *Registry) ClusterInfo() *remoting.ClusterInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ci := &remoting.ClusterInfo{
		BrokerAddrTable:  make(map[string]remoting.BrokerData, len(r.groups)),
		ClusterAddrTable: make(map[string][]string, len(r.clusters)),
	}
	for name, g := range r.groups {
		ci.BrokerAddrTable[name] = g.brokerData(name)
	}
	for addr, lb := range r.live {
		if lb.httpAddr != "" {
			if ci.HTTPAddrs == nil {
				ci.HTTPAddrs = make(map[string]string)
			}
			ci.HTTPAddrs[addr] = lb.httpAddr
		}
	}
	for cluster, names := range r.clusters {
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		slices.Sort(list)
		ci.ClusterAddrTable[cluster] = list
	}
	return ci
}

// Topics returns every topic with a route, sorted.
func (r *Registry) Topics() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.topics))
	for t := range r.topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// DeleteTopic removes topic's route; with a cluster name, only the queues of
// that cluster's brokers. It reports whether anything was removed. A broker
// that still has the topic brings it back at its next registration.
func (r *Registry) DeleteTopic(topic, cluster string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	byBroker, ok := r.topics[topic]
	if !ok {
		return false
	}
	if cluster == "" {
		delete(r.topics, topic)
		return true
	}
	removed := false
	for name := range r.clusters[cluster] {
		if _, ok := byBroker[name]; ok {
			delete(byBroker, name)
			removed = true
		}
	}
	if len(byBroker) == 0 {
		delete(r.topics, topic)
	}
	return removed
}

// BrokerCount returns the number of registered broker addresses.
func (r *Registry) BrokerCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.live)
}
