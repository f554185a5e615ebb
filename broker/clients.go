package broker

import (
	"sort"
	"sync"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

// clientConn is one client instance (clientID) on one connection.
type clientConn struct {
	id       string
	conn     *remoting.Conn
	lastSeen time.Time
	language string
	version  int16
}

// consumerGroupInfo is one consumer group's members and subscriptions.
type consumerGroupInfo struct {
	group        string
	consumeType  string
	messageModel string
	fromWhere    string
	clients      map[string]*clientConn // by clientID
	subs         map[string]*subscription
}

// subscription is a parsed subscription of a group to a topic.
type subscription struct {
	data  remoting.SubscriptionData
	all   bool            // "*" or empty
	tags  map[string]bool // tagsSet
	codes map[int64]bool  // hash codes of tagsSet
	since time.Time       // when it was last registered
}

func newSubscription(d remoting.SubscriptionData, now time.Time) *subscription {
	s := &subscription{data: d, since: now}
	s.all = d.SubString == "" || d.SubString == remoting.SubscribeAll
	if !s.all {
		s.tags = make(map[string]bool)
		s.codes = make(map[int64]bool)
		tags := d.TagsSet
		if len(tags) == 0 {
			tags = splitTags(d.SubString)
		}
		for _, t := range tags {
			s.tags[t] = true
			s.codes[tagsCode(t)] = true
		}
	}
	return s
}

// ClientInfo describes a connected client for admin views.
type ClientInfo struct {
	ClientID   string    `json:"client_id"`
	Addr       string    `json:"addr"`
	Language   string    `json:"language"`
	Version    int16     `json:"version"`
	LastSeen   time.Time `json:"last_seen"`
	Group      string    `json:"group"`
	IsConsumer bool      `json:"is_consumer"`
}

// clientRegistry tracks producers and consumers from heartbeats and drops
// them when their connection closes or they fall silent.
type clientRegistry struct {
	mu        sync.Mutex
	consumers map[string]*consumerGroupInfo     // by group
	producers map[string]map[string]*clientConn // group → clientID
	// connGroups remembers which groups a connection joined, to clean up
	// when it closes.
	connGroups map[uint64]map[string]bool
}

func newClientRegistry() *clientRegistry {
	return &clientRegistry{
		consumers:  make(map[string]*consumerGroupInfo),
		producers:  make(map[string]map[string]*clientConn),
		connGroups: make(map[uint64]map[string]bool),
	}
}

// registerConsumer records a heartbeat's consumer data. It reports whether
// the group's membership changed (a new client), and whether the
// connection is new to the registry (to hook its close).
func (r *clientRegistry) registerConsumer(c *remoting.Conn, hb clientConn, d remoting.ConsumerData, now time.Time) (changed, newConn bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.consumers[d.GroupName]
	if g == nil {
		g = &consumerGroupInfo{group: d.GroupName, clients: make(map[string]*clientConn), subs: make(map[string]*subscription)}
		r.consumers[d.GroupName] = g
	}
	g.consumeType, g.messageModel, g.fromWhere = d.ConsumeType, d.MessageModel, d.ConsumeFromWhere
	cur := g.clients[hb.id]
	if cur == nil || cur.conn != c {
		changed = true
	}
	hb.conn = c
	hb.lastSeen = now
	g.clients[hb.id] = &hb
	for _, sd := range d.SubscriptionDataSet {
		if old := g.subs[sd.Topic]; old != nil && sameSub(old.data, sd) {
			old.since = now
			continue
		}
		g.subs[sd.Topic] = newSubscription(sd, now)
	}
	newConn = r.rememberConnLocked(c, "c/"+d.GroupName)
	return changed, newConn
}

func sameSub(a, b remoting.SubscriptionData) bool {
	if a.SubString != b.SubString || a.ExpressionType != b.ExpressionType || len(a.TagsSet) != len(b.TagsSet) {
		return false
	}
	for i := range a.TagsSet {
		if a.TagsSet[i] != b.TagsSet[i] {
			return false
		}
	}
	return true
}

func (r *clientRegistry) registerProducer(c *remoting.Conn, hb clientConn, group string, now time.Time) (newConn bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.producers[group]
	if m == nil {
		m = make(map[string]*clientConn)
		r.producers[group] = m
	}
	hb.conn = c
	hb.lastSeen = now
	m[hb.id] = &hb
	return r.rememberConnLocked(c, "p/"+group)
}

func (r *clientRegistry) rememberConnLocked(c *remoting.Conn, key string) bool {
	m := r.connGroups[c.ID()]
	isNew := m == nil
	if isNew {
		m = make(map[string]bool)
		r.connGroups[c.ID()] = m
	}
	m[key] = true
	return isNew
}

// removeConn drops every client on connection c and returns the consumer
// groups whose membership changed.
func (r *clientRegistry) removeConn(c *remoting.Conn) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed []string
	for key := range r.connGroups[c.ID()] {
		kind, group := key[:2], key[2:]
		if kind == "c/" {
			if g := r.consumers[group]; g != nil {
				for id, cc := range g.clients {
					if cc.conn == c {
						delete(g.clients, id)
						changed = append(changed, group)
					}
				}
				if len(g.clients) == 0 {
					delete(r.consumers, group)
				}
			}
		} else if m := r.producers[group]; m != nil {
			for id, cc := range m {
				if cc.conn == c {
					delete(m, id)
				}
			}
			if len(m) == 0 {
				delete(r.producers, group)
			}
		}
	}
	delete(r.connGroups, c.ID())
	return dedupe(changed)
}

// unregister drops one client from one group (UNREGISTER_CLIENT).
func (r *clientRegistry) unregister(clientID, producerGroup, consumerGroup string) (changed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.producers[producerGroup]; m != nil {
		delete(m, clientID)
	}
	if g := r.consumers[consumerGroup]; g != nil {
		if _, ok := g.clients[clientID]; ok {
			delete(g.clients, clientID)
			changed = true
		}
		if len(g.clients) == 0 {
			delete(r.consumers, consumerGroup)
		}
	}
	return changed
}

// expire drops clients not heard from since before deadline and returns
// the consumer groups that changed.
func (r *clientRegistry) expire(deadline time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed []string
	for name, g := range r.consumers {
		for id, c := range g.clients {
			if c.lastSeen.Before(deadline) {
				delete(g.clients, id)
				changed = append(changed, name)
			}
		}
		if len(g.clients) == 0 {
			delete(r.consumers, name)
		}
	}
	for name, m := range r.producers {
		for id, c := range m {
			if c.lastSeen.Before(deadline) {
				delete(m, id)
			}
		}
		if len(m) == 0 {
			delete(r.producers, name)
		}
	}
	return dedupe(changed)
}

// consumerIDs returns the group's client ids, sorted.
func (r *clientRegistry) consumerIDs(group string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.consumers[group]
	if g == nil {
		return nil
	}
	out := make([]string, 0, len(g.clients))
	for id := range g.clients {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// consumerConns returns the connections of the group's clients.
func (r *clientRegistry) consumerConns(group string) []*remoting.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.consumers[group]
	if g == nil {
		return nil
	}
	var out []*remoting.Conn
	seen := map[*remoting.Conn]bool{}
	for _, c := range g.clients {
		if !seen[c.conn] {
			seen[c.conn] = true
			out = append(out, c.conn)
		}
	}
	return out
}

// subscriptionOf returns the group's registered subscription of topic.
func (r *clientRegistry) subscriptionOf(group, topic string) (*subscription, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.consumers[group]
	if g == nil {
		return nil, ""
	}
	return g.subs[topic], g.messageModel
}

// clients lists the clients of a group (consumers and producers).
func (r *clientRegistry) clients(group string) []ClientInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ClientInfo
	if g := r.consumers[group]; g != nil {
		for _, c := range g.clients {
			out = append(out, ClientInfo{ClientID: c.id, Addr: c.conn.RemoteAddr(), Language: c.language, Version: c.version, LastSeen: c.lastSeen, Group: group, IsConsumer: true})
		}
	}
	for _, c := range r.producers[group] {
		out = append(out, ClientInfo{ClientID: c.id, Addr: c.conn.RemoteAddr(), Language: c.language, Version: c.version, LastSeen: c.lastSeen, Group: group})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out
}

// groupSubscriptions returns the topics a consumer group subscribes to.
func (r *clientRegistry) groupSubscriptions(group string) map[string]remoting.SubscriptionData {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]remoting.SubscriptionData{}
	if g := r.consumers[group]; g != nil {
		for t, s := range g.subs {
			out[t] = s.data
		}
	}
	return out
}

func (r *clientRegistry) counts() (producers, consumers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.producers {
		producers += len(m)
	}
	for _, g := range r.consumers {
		consumers += len(g.clients)
	}
	return
}

func (r *clientRegistry) onlineGroups() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.consumers))
	for g := range r.consumers {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// lockTable holds orderly consumers' queue locks: (group, queue) → owner.
type lockTable struct {
	mu    sync.Mutex
	locks map[lockKey]lockEntry
}

type lockKey struct {
	group string
	mq    remoting.MessageQueue
}

type lockEntry struct {
	clientID string
	at       time.Time
}

func newLockTable() *lockTable { return &lockTable{locks: make(map[lockKey]lockEntry)} }

// lock grants the queues that are free, already the caller's, or whose
// owner's lock is older than expiry, and returns the queues the caller now
// holds.
func (t *lockTable) lock(group, clientID string, mqs []remoting.MessageQueue, now time.Time, expiry time.Duration) []remoting.MessageQueue {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []remoting.MessageQueue
	for _, mq := range mqs {
		k := lockKey{group, mq}
		cur, ok := t.locks[k]
		if ok && cur.clientID != clientID && now.Sub(cur.at) < expiry {
			continue
		}
		t.locks[k] = lockEntry{clientID: clientID, at: now}
		out = append(out, mq)
	}
	return out
}

func (t *lockTable) unlock(group, clientID string, mqs []remoting.MessageQueue) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, mq := range mqs {
		k := lockKey{group, mq}
		if cur, ok := t.locks[k]; ok && cur.clientID == clientID {
			delete(t.locks, k)
		}
	}
}

// releaseClient frees every lock held by clientIDs of a departed client.
func (t *lockTable) releaseClient(clientID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.locks {
		if v.clientID == clientID {
			delete(t.locks, k)
		}
	}
}
