package admin

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/protocol"
)

// httpGroupInfo is a group from the HTTP API's form.
func httpGroupInfo(g *protocol.HTTPGroup, b adminBroker) GroupInfo {
	return GroupInfo{GroupConfig: GroupConfig{Group: g.Name, ConsumeEnable: g.ConsumeEnable, BroadcastEnable: g.ConsumeBroadcastEnable,
		RetryMaxTimes: g.RetryMaxTimes}, Brokers: []string{b.Name}, OnlineClients: g.OnlineClients, Broadcasting: g.Broadcast}
}

func (a *httpAdmin) groups(ctx context.Context) ([]GroupInfo, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	var list []protocol.HTTPGroup
	if err := a.do(ctx, "GET", "/v1/groups", nil, nil, &list); err != nil {
		return nil, err
	}
	out := make([]GroupInfo, 0, len(list))
	for _, g := range list {
		out = append(out, httpGroupInfo(&g, self))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

func (a *httpAdmin) group(ctx context.Context, group string) (*GroupInfo, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	var g protocol.HTTPGroup
	if err := a.do(ctx, "GET", "/v1/groups/"+adminPathEscape(group), nil, nil, &g); err != nil {
		return nil, err
	}
	gi := httpGroupInfo(&g, self)
	return &gi, nil
}

func (a *httpAdmin) createGroup(ctx context.Context, spec GroupSpec) ([]string, error) {
	self, err := a.selectBroker(ctx, spec.Brokers)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPGroupInput{Name: spec.Group, RetryMaxTimes: spec.RetryMaxTimes, ConsumeEnable: spec.ConsumeEnable, ConsumeBroadcastEnable: spec.Broadcast}
	if err := a.do(ctx, "POST", "/v1/groups", nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *httpAdmin) updateGroup(ctx context.Context, spec GroupSpec) ([]string, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPGroupInput{RetryMaxTimes: spec.RetryMaxTimes, ConsumeEnable: spec.ConsumeEnable, ConsumeBroadcastEnable: spec.Broadcast}
	if err := a.do(ctx, "PUT", "/v1/groups/"+adminPathEscape(spec.Group), nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *httpAdmin) deleteGroup(ctx context.Context, group string) ([]string, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.do(ctx, "DELETE", "/v1/groups/"+adminPathEscape(group), nil, nil, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

// httpClients lists the group's online consumers. The API does not show
// subscriptions, so Subscriptions stays empty.
func (a *httpAdmin) clients(ctx context.Context, group string) (*GroupClients, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	var list []struct {
		ClientID   string    `json:"client_id"`
		Addr       string    `json:"addr"`
		Language   string    `json:"language"`
		Version    int16     `json:"version"`
		LastSeen   time.Time `json:"last_seen"`
		IsConsumer bool      `json:"is_consumer"`
	}
	if err := a.do(ctx, "GET", "/v1/groups/"+adminPathEscape(group)+"/clients", nil, nil, &list); err != nil {
		return nil, err
	}
	out := &GroupClients{Group: group, Clients: []ClientConn{}, Subscriptions: []Subscription{}}
	for _, c := range list {
		if !c.IsConsumer {
			continue
		}
		out.Clients = append(out.Clients, ClientConn{ClientID: c.ClientID, Addr: c.Addr, Language: c.Language, Version: c.Version,
			LastSeen: c.LastSeen, Brokers: []string{self.Name}})
	}
	sort.Slice(out.Clients, func(i, j int) bool { return out.Clients[i].ClientID < out.Clients[j].ClientID })
	return out, nil
}

func (a *httpAdmin) lag(ctx context.Context, group string, includeRetry bool) (*GroupLag, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	g, err := a.group(ctx, group)
	if err != nil {
		return nil, err
	}
	var ans protocol.HTTPLag
	if err := a.do(ctx, "GET", "/v1/groups/"+adminPathEscape(group)+"/lag", nil, nil, &ans); err != nil {
		return nil, err
	}
	out := &GroupLag{Group: group, Queues: []LagRow{}}
	for _, r := range ans.Rows {
		if strings.HasPrefix(r.Topic, "%") && !includeRetry {
			continue
		}
		inflight := int64(r.Inflight)
		row := LagRow{Topic: r.Topic, Broker: self.Name, QueueID: r.QueueID, BrokerOffset: r.BrokerOffset,
			ConsumerOffset: r.ConsumerOffset, Lag: r.Lag, Inflight: &inflight}
		if r.ConsumerOffset > 0 {
			row.LastConsumedMS = a.storeTime(ctx, r.Topic, r.QueueID, r.ConsumerOffset-1)
		}
		out.Queues = append(out.Queues, row)
	}
	if includeRetry {
		dl := protocol.DLQTopic(group)
		t, err := a.topic(ctx, dl)
		switch {
		case err == nil:
			for _, q := range t.Queues {
				out.Queues = append(out.Queues, LagRow{Topic: dl, Broker: self.Name, QueueID: q.QueueID,
					BrokerOffset: q.MaxOffset, ConsumerOffset: q.MinOffset, Lag: q.MaxOffset - q.MinOffset})
			}
		case !errors.Is(err, client.ErrTopicNotFound):
			return nil, err
		}
	}
	if !g.Broadcasting {
		if cl, err := a.clients(ctx, group); err == nil {
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

// httpStoreTime reads the store time of one message; 0 when it cannot.
func (a *httpAdmin) storeTime(ctx context.Context, topic string, q int32, off int64) int64 {
	ms, _, err := a.readQueue(ctx, topic, q, off, 1, 0)
	if err != nil || len(ms) == 0 || ms[0].QueueOffset != off {
		return 0
	}
	return ms[0].StoreMS
}

// --- offsets ---

func (a *httpAdmin) resetOffsets(ctx context.Context, r OffsetReset) (*OffsetResetResult, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	body := protocol.HTTPOffsetReset{Topic: r.Topic, To: r.To, Value: r.Value, Execute: r.Execute}
	var ans protocol.HTTPOffsetResetResult
	if err := a.do(ctx, "POST", "/v1/groups/"+adminPathEscape(r.Group)+"/offsets/reset", nil, body, &ans); err != nil {
		return nil, err
	}
	res := &OffsetResetResult{Group: r.Group, Topic: r.Topic, To: r.To, Value: r.Value, Executed: ans.Executed, Offsets: []OffsetChange{}}
	if r.To == ResetEarliest || r.To == ResetLatest {
		res.Value = 0
	}
	for _, o := range ans.Offsets {
		res.Offsets = append(res.Offsets, OffsetChange{Broker: self.Name, QueueID: o.QueueID, Current: o.Old, New: o.New})
	}
	sort.Slice(res.Offsets, func(i, j int) bool { return res.Offsets[i].QueueID < res.Offsets[j].QueueID })
	return res, nil
}

// --- messages ---
