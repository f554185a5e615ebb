package admin

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/client"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TopicBrokerConfig is a topic's configuration on one broker.
type TopicBrokerConfig struct {
	Broker      string `json:"broker"`
	Addr        string `json:"addr"`
	ReadQueues  int32  `json:"read_queues"`
	WriteQueues int32  `json:"write_queues"`
	Perm        string `json:"perm"` // "RW-" as mqadmin prints it
	Order       bool   `json:"order"`
}

// TopicInfo is a topic and its configuration on each broker holding it.
type TopicInfo struct {
	Topic   string              `json:"topic"`
	Brokers []TopicBrokerConfig `json:"brokers"`
}

// Topics lists every topic of every master, sorted by name. System topics
// (retry, dead-letter, internal) are left out unless system is true.
func (a *Admin) Topics(ctx context.Context, system bool) ([]TopicInfo, error) {
	if a.h != nil {
		return a.h.topics(ctx, system)
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	byName := map[string]*TopicInfo{}
	for _, b := range bs {
		tables, err := a.r.topicConfigs(ctx, b)
		if err != nil {
			return nil, err
		}
		for name, tc := range tables {
			ti := byName[name]
			if ti == nil {
				ti = &TopicInfo{Topic: name}
				byName[name] = ti
			}
			ti.Brokers = append(ti.Brokers, adminTopicBroker(b, tc))
		}
	}
	out := make([]TopicInfo, 0, len(byName))
	for _, name := range adminSortedKeys(byName) {
		out = append(out, *byName[name])
	}
	return adminFilterTopics(out, system), nil
}

func adminFilterTopics(in []TopicInfo, system bool) []TopicInfo {
	if system {
		return in
	}
	out := in[:0:0]
	for _, t := range in {
		if !IsSystemTopic(t.Topic) {
			out = append(out, t)
		}
	}
	return out
}

func adminTopicBroker(b adminBroker, tc remoting.TopicConfig) TopicBrokerConfig {
	return TopicBrokerConfig{Broker: b.Name, Addr: b.Addr, ReadQueues: tc.ReadQueueNums, WriteQueues: tc.WriteQueueNums,
		Perm: protocol.PermString(tc.Perm), Order: tc.Order}
}

func (a *remotingAdmin) topicConfigs(ctx context.Context, b adminBroker) (map[string]remoting.TopicConfig, error) {
	var w remoting.TopicConfigSerializeWrapper
	if err := a.invokeJSON(ctx, b.Addr, protocol.ReqGetAllTopicConfig, nil, nil, &w); err != nil {
		return nil, adminBrokerErr(b, err)
	}
	return w.TopicConfigTable, nil
}

// TopicSpec is what CreateTopic creates.
type TopicSpec struct {
	Topic       string
	ReadQueues  int32 // 0: 8
	WriteQueues int32 // 0: 8
	// Perm is "RW", "R" or "W" (0 bits: "RW").
	Perm  string
	Order bool
	// DedupWindow turns on deduplication by message id (UNIQ_KEY or HTTP
	// Idempotency-Key) within this time; 0 leaves it off.
	DedupWindow time.Duration
	// Brokers restricts the topic to these brokers (names or addresses);
	// empty means every master.
	Brokers []string
}

// ParsePerm turns "RW", "R", "W" (any case; "-" and "X" allowed as mqadmin
// prints them) into permission bits.
func ParsePerm(s string) (int32, error) {
	var p int32
	for _, r := range s {
		switch r {
		case 'R', 'r':
			p |= protocol.PermRead
		case 'W', 'w':
			p |= protocol.PermWrite
		case 'X', 'x':
			p |= protocol.PermInherit
		case '-':
		default:
			return 0, fmt.Errorf("client: permission %q: use R, W or RW", s)
		}
	}
	if s == "" {
		p = protocol.PermRead | protocol.PermWrite
	}
	return p, nil
}

// CreateTopic creates a topic on the selected brokers (every master by
// default). It fails with client.ErrTopicExists when a selected broker has it.
// It returns the brokers it created the topic on.
func (a *Admin) CreateTopic(ctx context.Context, spec TopicSpec) ([]string, error) {
	if spec.ReadQueues == 0 {
		spec.ReadQueues = 8
	}
	if spec.WriteQueues == 0 {
		spec.WriteQueues = 8
	}
	perm, err := ParsePerm(spec.Perm)
	if err != nil {
		return nil, err
	}
	if spec.ReadQueues < 0 || spec.WriteQueues < 0 || spec.ReadQueues > 1024 || spec.WriteQueues > 1024 {
		return nil, fmt.Errorf("client: queue counts must be 1 to 1024")
	}
	if a.h != nil {
		return a.h.createTopic(ctx, spec, perm)
	}
	tc := remoting.TopicConfig{TopicName: spec.Topic, ReadQueueNums: spec.ReadQueues, WriteQueueNums: spec.WriteQueues, Perm: perm, Order: spec.Order,
		DedupWindowMs: spec.DedupWindow.Milliseconds()}
	bs, err := a.r.masters(ctx, spec.Brokers)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		tables, err := a.r.topicConfigs(ctx, b)
		if err != nil {
			return nil, err
		}
		if _, ok := tables[spec.Topic]; ok {
			return nil, fmt.Errorf("%w: %s on broker %s (use topic update)", client.ErrTopicExists, spec.Topic, b.Name)
		}
	}
	var done []string
	for _, b := range bs {
		if err := a.r.putTopic(ctx, b, tc); err != nil {
			return done, err
		}
		done = append(done, b.Name)
	}
	return done, nil
}

func (a *remotingAdmin) putTopic(ctx context.Context, b adminBroker, tc remoting.TopicConfig) error {
	ext := map[string]string{
		"topic": tc.TopicName, "defaultTopic": protocol.AutoCreateTopicTemplate,
		"readQueueNums":  strconv.Itoa(int(tc.ReadQueueNums)),
		"writeQueueNums": strconv.Itoa(int(tc.WriteQueueNums)),
		"perm":           strconv.Itoa(int(tc.Perm)), "topicFilterType": remoting.TopicFilterSingleTag,
		"topicSysFlag": "0", "order": strconv.FormatBool(tc.Order),
		"dedupWindow": strconv.FormatInt(tc.DedupWindowMs, 10),
	}
	if _, err := a.invoke(ctx, b.Addr, protocol.ReqUpdateAndCreateTopic, ext, nil); err != nil {
		return adminBrokerErr(b, err)
	}
	return nil
}

// TopicUpdate changes the fields that are set, on every broker holding the
// topic.
type TopicUpdate struct {
	ReadQueues  *int32
	WriteQueues *int32
	Perm        *string
	Order       *bool
	DedupWindow *time.Duration // 0 turns it off
}

// UpdateTopic changes a topic's configuration on every broker that has it
// (client.ErrTopicNotFound when none has). It returns the brokers changed.
func (a *Admin) UpdateTopic(ctx context.Context, topic string, u TopicUpdate) ([]string, error) {
	if a.h != nil {
		return a.h.updateTopic(ctx, topic, u)
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, b := range bs {
		tables, err := a.r.topicConfigs(ctx, b)
		if err != nil {
			return done, err
		}
		tc, ok := tables[topic]
		if !ok {
			continue
		}
		if u.ReadQueues != nil {
			tc.ReadQueueNums = *u.ReadQueues
		}
		if u.WriteQueues != nil {
			tc.WriteQueueNums = *u.WriteQueues
		}
		if u.Perm != nil {
			if tc.Perm, err = ParsePerm(*u.Perm); err != nil {
				return nil, err
			}
		}
		if u.Order != nil {
			tc.Order = *u.Order
		}
		if u.DedupWindow != nil {
			tc.DedupWindowMs = u.DedupWindow.Milliseconds()
		}
		tc.TopicName = topic
		if err := a.r.putTopic(ctx, b, tc); err != nil {
			return done, err
		}
		done = append(done, b.Name)
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("%w: %s", client.ErrTopicNotFound, topic)
	}
	return done, nil
}

// DeleteTopic deletes a topic from every broker that has it and from every
// name server. Its messages stay in the commitlog until their segments
// expire. client.ErrTopicNotFound when no broker has it.
func (a *Admin) DeleteTopic(ctx context.Context, topic string) ([]string, error) {
	if a.h != nil {
		return a.h.deleteTopic(ctx, topic)
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, b := range bs {
		tables, err := a.r.topicConfigs(ctx, b)
		if err != nil {
			return done, err
		}
		if _, ok := tables[topic]; !ok {
			continue
		}
		if _, err := a.r.invoke(ctx, b.Addr, protocol.ReqDeleteTopicInBroker, map[string]string{"topic": topic}, nil); err != nil {
			return done, adminBrokerErr(b, err)
		}
		done = append(done, b.Name)
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("%w: %s", client.ErrTopicNotFound, topic)
	}
	for _, ns := range a.r.namesrvs {
		if _, err := a.r.invoke(ctx, ns, protocol.ReqDeleteTopicInNameServer, map[string]string{"topic": topic}, nil); err != nil {
			return done, fmt.Errorf("name server %s: %w", ns, err)
		}
	}
	return done, nil
}

// TopicQueue is one queue's offsets.
type TopicQueue struct {
	Broker      string `json:"broker"`
	QueueID     int32  `json:"queue_id"`
	MinOffset   int64  `json:"min_offset"`
	MaxOffset   int64  `json:"max_offset"`
	Messages    int64  `json:"messages"`
	LastStoreMS int64  `json:"last_store_ms"` // 0: never written
}

// TopicDescription is a topic's configuration and queues on every broker.
type TopicDescription struct {
	Topic    string              `json:"topic"`
	Brokers  []TopicBrokerConfig `json:"brokers"`
	Queues   []TopicQueue        `json:"queues"`
	Messages int64               `json:"messages"`
}

// DescribeTopic returns a topic's configuration and per-queue offsets on
// every broker holding it; client.ErrTopicNotFound when none does.
func (a *Admin) DescribeTopic(ctx context.Context, topic string) (*TopicDescription, error) {
	if a.h != nil {
		return a.h.describeTopic(ctx, topic)
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	d := &TopicDescription{Topic: topic, Brokers: []TopicBrokerConfig{}, Queues: []TopicQueue{}}
	for _, b := range bs {
		tables, err := a.r.topicConfigs(ctx, b)
		if err != nil {
			return nil, err
		}
		tc, ok := tables[topic]
		if !ok {
			continue
		}
		d.Brokers = append(d.Brokers, adminTopicBroker(b, tc))
		qs, err := a.r.topicStats(ctx, b, topic)
		if err != nil {
			return nil, err
		}
		d.Queues = append(d.Queues, qs...)
	}
	if len(d.Brokers) == 0 {
		return nil, fmt.Errorf("%w: %s", client.ErrTopicNotFound, topic)
	}
	for _, q := range d.Queues {
		d.Messages += q.Messages
	}
	return d, nil
}

func (a *remotingAdmin) topicStats(ctx context.Context, b adminBroker, topic string) ([]TopicQueue, error) {
	var st protocol.TopicStats
	if err := a.invokeJSON(ctx, b.Addr, protocol.ReqGetTopicStatsInfo, map[string]string{"topic": topic}, nil, &st); err != nil {
		return nil, adminBrokerErr(b, err)
	}
	out := make([]TopicQueue, 0, len(st.Queues))
	for _, q := range st.Queues {
		out = append(out, TopicQueue{Broker: b.Name, QueueID: q.QueueID, MinOffset: q.MinOffset, MaxOffset: q.MaxOffset,
			Messages: q.MaxOffset - q.MinOffset, LastStoreMS: q.LastStoreMs})
	}
	return out, nil
}

// RouteQueues is one broker's queues in a topic route.
type RouteQueues struct {
	Broker      string `json:"broker"`
	ReadQueues  int32  `json:"read_queues"`
	WriteQueues int32  `json:"write_queues"`
	Perm        string `json:"perm"`
}

// RouteBroker is one broker of a topic route and its addresses by id.
type RouteBroker struct {
	Cluster string           `json:"cluster"`
	Broker  string           `json:"broker"`
	Addrs   map[int64]string `json:"addrs"`
}

// TopicRoute is what the name servers answer for a topic.
type TopicRoute struct {
	Topic   string        `json:"topic"`
	Queues  []RouteQueues `json:"queues"`
	Brokers []RouteBroker `json:"brokers"`
}

// Route asks the name servers for a topic's route; client.ErrTopicNotFound when
// they have none.
func (a *Admin) Route(ctx context.Context, topic string) (*TopicRoute, error) {
	if a.h != nil {
		return nil, a.h.notSupported("topic routes come from the name servers, not")
	}
	rd, err := a.r.route(ctx, topic)
	if err != nil {
		return nil, err
	}
	r := &TopicRoute{Topic: topic, Queues: []RouteQueues{}, Brokers: []RouteBroker{}}
	for _, q := range rd.QueueDatas {
		r.Queues = append(r.Queues, RouteQueues{Broker: q.BrokerName, ReadQueues: q.ReadQueueNums, WriteQueues: q.WriteQueueNums, Perm: protocol.PermString(q.Perm)})
	}
	for _, b := range rd.BrokerDatas {
		r.Brokers = append(r.Brokers, RouteBroker{Cluster: b.Cluster, Broker: b.BrokerName, Addrs: b.BrokerAddrs})
	}
	sort.Slice(r.Queues, func(i, j int) bool { return r.Queues[i].Broker < r.Queues[j].Broker })
	sort.Slice(r.Brokers, func(i, j int) bool { return r.Brokers[i].Broker < r.Brokers[j].Broker })
	return r, nil
}

func (a *remotingAdmin) route(ctx context.Context, topic string) (*remoting.TopicRouteData, error) {
	resp, err := a.namesrv(ctx, protocol.ReqGetRouteInfoByTopic, map[string]string{"topic": topic})
	if adminIsCode(err, protocol.RespTopicNotExist) {
		return nil, fmt.Errorf("%w: %s (the name servers have no route for it)", client.ErrTopicNotFound, topic)
	}
	if err != nil {
		return nil, err
	}
	return remoting.DecodeTopicRouteData(resp.Body)
}

// adminQueue is one queue of a topic on one broker.
type adminQueue struct {
	b  adminBroker
	id int32
}

// adminTopicQueues lists a topic's queues from its route: read queues, or
// writable ones when write is true.
func (a *remotingAdmin) topicQueues(ctx context.Context, topic string, write bool) ([]adminQueue, error) {
	rd, err := a.route(ctx, topic)
	if err != nil {
		return nil, err
	}
	addrs := map[string]adminBroker{}
	for _, bd := range rd.BrokerDatas {
		if addr, ok := bd.BrokerAddrs[0]; ok {
			addrs[bd.BrokerName] = adminBroker{Cluster: bd.Cluster, Name: bd.BrokerName, Addr: addr}
		}
	}
	var out []adminQueue
	for _, q := range rd.QueueDatas {
		b, ok := addrs[q.BrokerName]
		if !ok {
			continue
		}
		n := q.ReadQueueNums
		if write {
			if !protocol.PermWritable(q.Perm) {
				continue
			}
			n = q.WriteQueueNums
		}
		for i := int32(0); i < n; i++ {
			out = append(out, adminQueue{b: b, id: i})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].b.Name != out[j].b.Name {
			return out[i].b.Name < out[j].b.Name
		}
		return out[i].id < out[j].id
	})
	return out, nil
}
