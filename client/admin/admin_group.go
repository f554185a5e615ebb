package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferrymq/ferry/client"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// GroupConfig is a consumer group's configuration.
type GroupConfig struct {
	Group                    string `json:"group"`
	ConsumeEnable            bool   `json:"consume_enable"`
	ConsumeFromMinEnable     bool   `json:"consume_from_min_enable"`
	BroadcastEnable          bool   `json:"broadcast_enable"`
	RetryQueueNums           int32  `json:"retry_queue_nums"`
	RetryMaxTimes            int32  `json:"retry_max_times"`
	BrokerID                 int64  `json:"broker_id"`
	WhichBrokerWhenSlow      int64  `json:"which_broker_when_consume_slowly"`
	NotifyConsumerIDsChanged bool   `json:"notify_consumer_ids_changed"`
}

// groupConfigOf converts the broker's form (RocketMQ SubscriptionGroupConfig).
func groupConfigOf(w protocol.SubscriptionGroupConfig) GroupConfig {
	return GroupConfig{Group: w.GroupName, ConsumeEnable: w.ConsumeEnable, ConsumeFromMinEnable: w.ConsumeFromMinEnable,
		BroadcastEnable: w.ConsumeBroadcastEnable, RetryQueueNums: w.RetryQueueNums, RetryMaxTimes: w.RetryMaxTimes,
		BrokerID: w.BrokerID, WhichBrokerWhenSlow: w.WhichBrokerWhenSlow, NotifyConsumerIDsChanged: w.NotifyConsumerIDs}
}

func adminWire(c GroupConfig) protocol.SubscriptionGroupConfig {
	return protocol.SubscriptionGroupConfig{GroupName: c.Group, ConsumeEnable: c.ConsumeEnable, ConsumeFromMinEnable: c.ConsumeFromMinEnable,
		ConsumeBroadcastEnable: c.BroadcastEnable, RetryQueueNums: c.RetryQueueNums, RetryMaxTimes: c.RetryMaxTimes,
		BrokerID: c.BrokerID, WhichBrokerWhenSlow: c.WhichBrokerWhenSlow, NotifyConsumerIDs: c.NotifyConsumerIDsChanged}
}

// GroupInfo is a group, where it is configured and how many of its
// clients are online.
type GroupInfo struct {
	GroupConfig
	Brokers       []string `json:"brokers"`
	OnlineClients int      `json:"online_clients"`
	// Broadcasting: the online consumers consume in broadcasting mode.
	Broadcasting bool `json:"broadcasting"`
}

// Groups lists every group configured on any master, sorted by name.
func (a *Admin) Groups(ctx context.Context) ([]GroupInfo, error) {
	if a.h != nil {
		return a.h.groups(ctx)
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	byName := map[string]*GroupInfo{}
	for _, b := range bs {
		var list []protocol.GroupState
		if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqFerryGroupList, nil, nil, &list); err != nil {
			return nil, adminBrokerErr(b, err)
		}
		for _, g := range list {
			gi := byName[g.GroupName]
			if gi == nil {
				gi = &GroupInfo{GroupConfig: groupConfigOf(g.SubscriptionGroupConfig)}
				byName[g.GroupName] = gi
			}
			gi.Brokers = append(gi.Brokers, b.Name)
			gi.OnlineClients += g.Online
			gi.Broadcasting = gi.Broadcasting || g.Broadcast
		}
	}
	out := make([]GroupInfo, 0, len(byName))
	for _, n := range adminSortedKeys(byName) {
		out = append(out, *byName[n])
	}
	return out, nil
}

// Group returns one group; client.ErrGroupNotFound when no broker has it.
func (a *Admin) Group(ctx context.Context, group string) (*GroupInfo, error) {
	if a.h != nil {
		return a.h.group(ctx, group)
	}
	gs, err := a.Groups(ctx)
	if err != nil {
		return nil, err
	}
	for i := range gs {
		if gs[i].Group == group {
			return &gs[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s", client.ErrGroupNotFound, group)
}

// GroupSpec creates or changes a group: unset fields keep their current
// value (or the broker's default on create).
type GroupSpec struct {
	Group         string
	RetryMaxTimes *int32
	Broadcast     *bool
	ConsumeEnable *bool
	// Brokers restricts a create to these brokers (names or addresses);
	// empty means every master.
	Brokers []string
}

func (s GroupSpec) apply(c *GroupConfig) {
	if s.RetryMaxTimes != nil {
		c.RetryMaxTimes = *s.RetryMaxTimes
	}
	if s.Broadcast != nil {
		c.BroadcastEnable = *s.Broadcast
	}
	if s.ConsumeEnable != nil {
		c.ConsumeEnable = *s.ConsumeEnable
	}
}

// CreateGroup creates a group on the selected brokers (every master by
// default); client.ErrGroupExists when one of them has it.
func (a *Admin) CreateGroup(ctx context.Context, spec GroupSpec) ([]string, error) {
	c := GroupConfig{Group: spec.Group, ConsumeEnable: true, ConsumeFromMinEnable: true, BroadcastEnable: true,
		RetryQueueNums: 1, RetryMaxTimes: 16, WhichBrokerWhenSlow: 1, NotifyConsumerIDsChanged: true}
	spec.apply(&c)
	if err := adminCheckGroupName(spec.Group); err != nil {
		return nil, err
	}
	if a.h != nil {
		return a.h.createGroup(ctx, spec)
	}
	gs, err := a.Groups(ctx)
	if err != nil {
		return nil, err
	}
	bs, err := a.r.masters(ctx, spec.Brokers)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		if g.Group != spec.Group {
			continue
		}
		for _, b := range bs {
			if adminContains(g.Brokers, b.Name) {
				return nil, fmt.Errorf("%w: %s on broker %s (use group update)", client.ErrGroupExists, spec.Group, b.Name)
			}
		}
	}
	return a.r.putGroup(ctx, bs, c)
}

func adminCheckGroupName(g string) error {
	if g == "" || len(g) > 255 || strings.ContainsAny(g, " \t\r\n") || strings.HasPrefix(g, "%") {
		return fmt.Errorf("client: group name %q: want 1 to 255 characters, no spaces, not starting with %%", g)
	}
	return nil
}

func (a *remotingAdmin) putGroup(ctx context.Context, bs []adminBroker, c GroupConfig) ([]string, error) {
	body, err := json.Marshal(adminWire(c))
	if err != nil {
		return nil, err
	}
	var done []string
	for _, b := range bs {
		if _, err := a.invoke(ctx, b.Addr, protocol.ReqUpdateAndCreateGroup, nil, body); err != nil {
			return done, adminBrokerErr(b, err)
		}
		done = append(done, b.Name)
	}
	return done, nil
}

// UpdateGroup changes the set fields of a group on every broker that has
// it; client.ErrGroupNotFound when none has.
func (a *Admin) UpdateGroup(ctx context.Context, spec GroupSpec) ([]string, error) {
	if a.h != nil {
		return a.h.updateGroup(ctx, spec)
	}
	g, err := a.Group(ctx, spec.Group)
	if err != nil {
		return nil, err
	}
	c := g.GroupConfig
	spec.apply(&c)
	bs, err := a.r.masters(ctx, g.Brokers)
	if err != nil {
		return nil, err
	}
	return a.r.putGroup(ctx, bs, c)
}

// DeleteGroup deletes a group's config and committed offsets on every
// broker that has it; client.ErrGroupNotFound when none has.
func (a *Admin) DeleteGroup(ctx context.Context, group string) ([]string, error) {
	if a.h != nil {
		return a.h.deleteGroup(ctx, group)
	}
	g, err := a.Group(ctx, group)
	if err != nil {
		return nil, err
	}
	bs, err := a.r.masters(ctx, g.Brokers)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, b := range bs {
		if _, err := a.r.invoke(ctx, b.Addr, protocol.ReqDeleteSubscriptionGroup, map[string]string{"groupName": group}, nil); err != nil {
			return done, adminBrokerErr(b, err)
		}
		done = append(done, b.Name)
	}
	return done, nil
}

// ClientConn is one online client of a group, as a broker sees it.
type ClientConn struct {
	ClientID string    `json:"client_id"`
	Addr     string    `json:"addr"`
	Language string    `json:"language"`
	Version  int16     `json:"version"`
	LastSeen time.Time `json:"last_seen"`
	Brokers  []string  `json:"brokers"`
}

// Subscription is one topic a group subscribes to.
type Subscription struct {
	Topic      string `json:"topic"`
	Expression string `json:"expression"`
	Type       string `json:"type"`
}

// GroupClients is a group's online clients and subscriptions.
type GroupClients struct {
	Group         string         `json:"group"`
	Clients       []ClientConn   `json:"clients"`
	Subscriptions []Subscription `json:"subscriptions"`
}

type adminConnList struct {
	Clients []struct {
		ClientID string    `json:"client_id"`
		Addr     string    `json:"addr"`
		Language string    `json:"language"`
		Version  int16     `json:"version"`
		LastSeen time.Time `json:"last_seen"`
	} `json:"clients"`
	Subscriptions map[string]remoting.SubscriptionData `json:"subscriptions"`
}

// Clients lists a group's online clients on every broker, merged by client
// id; client.ErrGroupNotFound when no broker has the group.
func (a *Admin) Clients(ctx context.Context, group string) (*GroupClients, error) {
	if a.h != nil {
		return a.h.clients(ctx, group)
	}
	g, err := a.Group(ctx, group)
	if err != nil {
		return nil, err
	}
	bs, err := a.r.masters(ctx, g.Brokers)
	if err != nil {
		return nil, err
	}
	out := &GroupClients{Group: group, Clients: []ClientConn{}, Subscriptions: []Subscription{}}
	byID := map[string]*ClientConn{}
	subs := map[string]Subscription{}
	for _, b := range bs {
		var cl adminConnList
		if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqGetConsumerConnList, map[string]string{"consumerGroup": group}, nil, &cl); err != nil {
			return nil, adminBrokerErr(b, err)
		}
		for _, c := range cl.Clients {
			cc := byID[c.ClientID]
			if cc == nil {
				cc = &ClientConn{ClientID: c.ClientID, Addr: c.Addr, Language: c.Language, Version: c.Version, LastSeen: c.LastSeen}
				byID[c.ClientID] = cc
			}
			if c.LastSeen.After(cc.LastSeen) {
				cc.LastSeen = c.LastSeen
			}
			cc.Brokers = append(cc.Brokers, b.Name)
		}
		for t, s := range cl.Subscriptions {
			typ := s.ExpressionType
			if typ == "" {
				typ = remoting.ExpressionTypeTag
			}
			subs[t] = Subscription{Topic: t, Expression: s.SubString, Type: typ}
		}
	}
	for _, id := range adminSortedKeys(byID) {
		out.Clients = append(out.Clients, *byID[id])
	}
	for _, t := range adminSortedKeys(subs) {
		out.Subscriptions = append(out.Subscriptions, subs[t])
	}
	return out, nil
}

// LagRow is one queue's consumption by a group.
type LagRow struct {
	Topic          string `json:"topic"`
	Broker         string `json:"broker"`
	QueueID        int32  `json:"queue_id"`
	BrokerOffset   int64  `json:"broker_offset"`
	ConsumerOffset int64  `json:"consumer_offset"`
	Lag            int64  `json:"lag"`
	// Inflight is the number of messages leased over the HTTP API and not
	// yet settled; null over the remoting protocol, which does not report
	// it.
	Inflight *int64 `json:"inflight"`
	// LastConsumedMS is the store time of the last committed message
	// (the one before ConsumerOffset); 0 when nothing is consumed.
	LastConsumedMS int64 `json:"last_consumed_ms"`
	// Client is the online client that the default (averaging) allocation
	// gives this queue; empty when none is online.
	Client string `json:"client"`
}

// GroupLag is a group's lag on every queue, with the total.
type GroupLag struct {
	Group    string   `json:"group"`
	Queues   []LagRow `json:"queues"`
	TotalLag int64    `json:"total_lag"`
}

// Lag returns a group's offsets and lag on every broker (client.ErrGroupNotFound when
// no broker has the group). The retry topic's rows and a row for the
// dead-letter queue (its consumer offset is its first offset: the lag is
// the number of dead letters) come only with includeRetry.
func (a *Admin) Lag(ctx context.Context, group string, includeRetry bool) (*GroupLag, error) {
	if a.h != nil {
		return a.h.lag(ctx, group, includeRetry)
	}
	g, err := a.Group(ctx, group)
	if err != nil {
		return nil, err
	}
	bs, err := a.r.masters(ctx, g.Brokers)
	if err != nil {
		return nil, err
	}
	out := &GroupLag{Group: group, Queues: []LagRow{}}
	for _, b := range bs {
		var st protocol.ConsumeStats
		if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqGetConsumeStats, map[string]string{"consumerGroup": group}, nil, &st); err != nil {
			return nil, adminBrokerErr(b, err)
		}
		for _, q := range st.Queues {
			if strings.HasPrefix(q.Topic, "%") && !includeRetry {
				continue
			}
			row := LagRow{Topic: q.Topic, Broker: b.Name, QueueID: q.QueueID, BrokerOffset: q.BrokerOffset,
				ConsumerOffset: q.ConsumerOffset, Lag: q.Lag}
			if q.ConsumerOffset > 0 {
				row.LastConsumedMS = a.r.storeTime(ctx, b, group, q.Topic, q.QueueID, q.ConsumerOffset-1)
			}
			out.Queues = append(out.Queues, row)
		}
		if includeRetry {
			dl := protocol.DLQTopic(group)
			if qs, err := a.r.topicStats(ctx, b, dl); err == nil {
				for _, q := range qs {
					out.Queues = append(out.Queues, LagRow{Topic: dl, Broker: b.Name, QueueID: q.QueueID,
						BrokerOffset: q.MaxOffset, ConsumerOffset: q.MinOffset, Lag: q.MaxOffset - q.MinOffset, LastConsumedMS: 0})
				}
			} else if !adminIsCode(err, protocol.RespTopicNotExist) {
				return nil, err
			}
		}
	}
	if !g.Broadcasting {
		if cl, err := a.Clients(ctx, group); err == nil {
			ids := make([]string, 0, len(cl.Clients))
			for _, c := range cl.Clients {
				ids = append(ids, c.ClientID)
			}
			adminAssign(out.Queues, ids)
		}
	}
	adminSortLag(out)
	return out, nil
}

// adminSortLag sorts the rows by topic, broker and queue and sums the lag.
func adminSortLag(l *GroupLag) {
	sort.SliceStable(l.Queues, func(i, j int) bool {
		x, y := l.Queues[i], l.Queues[j]
		if x.Topic != y.Topic {
			return x.Topic < y.Topic
		}
		if x.Broker != y.Broker {
			return x.Broker < y.Broker
		}
		return x.QueueID < y.QueueID
	})
	l.TotalLag = 0
	for _, q := range l.Queues {
		l.TotalLag += q.Lag
	}
}

// adminAssign fills Client as RocketMQ's AllocateMessageQueueAveragely
// would: per topic, the queues sorted by broker and id, the clients by id,
// each client a contiguous block.
func adminAssign(rows []LagRow, clients []string) {
	if len(clients) == 0 {
		return
	}
	sort.Strings(clients)
	byTopic := map[string][]int{}
	for i, r := range rows {
		if protocol.IsDLQTopic(r.Topic) {
			continue
		}
		byTopic[r.Topic] = append(byTopic[r.Topic], i)
	}
	for _, idx := range byTopic {
		sort.Slice(idx, func(i, j int) bool {
			x, y := rows[idx[i]], rows[idx[j]]
			if x.Broker != y.Broker {
				return x.Broker < y.Broker
			}
			return x.QueueID < y.QueueID
		})
		n, c := len(idx), len(clients)
		for ci, id := range clients {
			mod := n % c
			size := n / c
			if ci < mod {
				size++
			}
			start := ci*(n/c) + min(ci, mod)
			for k := start; k < start+size && k < n; k++ {
				rows[idx[k]].Client = id
			}
		}
	}
}

// adminStoreTime reads the store time of one message by pulling it with
// the group's own name (no commit, no suspend); 0 when it cannot.
func (a *remotingAdmin) storeTime(ctx context.Context, b adminBroker, group, topic string, q int32, off int64) int64 {
	recs, _, err := a.pull(ctx, b, group, topic, q, off, 1, 0)
	if err != nil || len(recs) == 0 {
		return 0
	}
	return recs[0].StoreTimestamp
}

// adminPullFlag is PullSysFlag SUBSCRIPTION (the expression is in the
// request, so no heartbeat is needed); suspend adds SUSPEND.
const (
	adminPullSuspend      = 2
	adminPullSubscription = 4
)

// adminPull pulls up to n messages of one queue from offset. It returns
// the records (copies), the next offset, and an error; "nothing new" is no
// error.
func (a *remotingAdmin) pull(ctx context.Context, b adminBroker, group, topic string, q int32, off int64, n int, suspend time.Duration) ([]protocol.Record, int64, error) {
	flag := adminPullSubscription
	if suspend > 0 {
		flag |= adminPullSuspend
	}
	ext := map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(q)), "queueOffset": strconv.FormatInt(off, 10),
		"maxMsgNums": strconv.Itoa(n), "sysFlag": strconv.Itoa(flag), "commitOffset": "0",
		"suspendTimeoutMillis": strconv.FormatInt(suspend.Milliseconds(), 10), "subscription": "*", "subVersion": "0",
		"expressionType": remoting.ExpressionTypeTag, "bname": b.Name,
	}
	pctx, cancel := context.WithTimeout(ctx, a.timeout+suspend)
	defer cancel()
	resp, err := a.rc.Invoke(pctx, b.Addr, remoting.NewRequest(protocol.ReqPullMessage, ext, nil))
	if err != nil {
		return nil, off, err
	}
	next, perr := strconv.ParseInt(resp.StringOr("nextBeginOffset", ""), 10, 64)
	if perr != nil {
		next = off
	}
	switch resp.Code {
	case protocol.RespSuccess:
	case protocol.RespPullNotFound, protocol.RespPullRetryImmediately, protocol.RespPullOffsetMoved:
		return nil, next, nil
	default:
		return nil, off, brokerErr(b.Addr, resp)
	}
	recs, err := adminDecodeRecords(resp.Body)
	return recs, next, err
}

// adminDecodeRecords decodes concatenated stored records.
func adminDecodeRecords(b []byte) ([]protocol.Record, error) {
	var out []protocol.Record
	for len(b) > 0 {
		r, err := protocol.Decode(b)
		if err != nil {
			return out, fmt.Errorf("client: decode message: %w", err)
		}
		out = append(out, r)
		b = b[r.Size:]
	}
	return out, nil
}
