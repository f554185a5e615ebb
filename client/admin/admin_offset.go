package admin

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/ferrymq/ferry/protocol"
)

// Offset reset targets.
const (
	ResetEarliest = "earliest"
	ResetLatest   = "latest"
	ResetTime     = "time"   // Value is a store time in ms
	ResetOffset   = "offset" // Value is the offset, clamped to each queue's range
)

// OffsetReset asks to move a group's committed offsets on a topic.
type OffsetReset struct {
	Group string
	Topic string
	To    string // ResetEarliest, ResetLatest, ResetTime or ResetOffset
	Value int64
	// Execute applies the reset; without it ResetOffsets only computes the
	// new offsets (a dry run). Brokers refuse to reset a group with online
	// consumers.
	Execute bool
}

// OffsetChange is one queue's committed offset before and after a reset.
type OffsetChange struct {
	Broker  string `json:"broker"`
	QueueID int32  `json:"queue_id"`
	// Current is -1 when the group has no committed offset on the queue.
	Current int64 `json:"current"`
	New     int64 `json:"new"`
}

// OffsetResetResult is what a reset did, or would do.
type OffsetResetResult struct {
	Group    string         `json:"group"`
	Topic    string         `json:"topic"`
	To       string         `json:"to"`
	Value    int64          `json:"value,omitempty"`
	Executed bool           `json:"executed"`
	Offsets  []OffsetChange `json:"offsets"`
}

// ResetOffsets computes, and with r.Execute applies, new committed offsets
// for every queue of r.Topic. client.ErrGroupNotFound and client.ErrTopicNotFound when they
// do not exist.
func (a *Admin) ResetOffsets(ctx context.Context, r OffsetReset) (*OffsetResetResult, error) {
	switch r.To {
	case ResetEarliest, ResetLatest, ResetTime, ResetOffset:
	default:
		return nil, fmt.Errorf("client: reset target %q: want earliest, latest, time or offset", r.To)
	}
	if a.h != nil {
		return a.h.resetOffsets(ctx, r)
	}
	if _, err := a.Group(ctx, r.Group); err != nil {
		return nil, err
	}
	qs, err := a.r.topicQueues(ctx, r.Topic, false)
	if err != nil {
		return nil, err
	}
	res := &OffsetResetResult{Group: r.Group, Topic: r.Topic, To: r.To, Value: r.Value, Offsets: []OffsetChange{}}
	if r.To == ResetEarliest || r.To == ResetLatest {
		res.Value = 0
	}
	for _, q := range qs {
		cur, err := a.r.committed(ctx, q, r.Group, r.Topic)
		if err != nil {
			return nil, err
		}
		nw, err := a.r.offsetAt(ctx, q, r.Topic, r.To, r.Value)
		if err != nil {
			return nil, err
		}
		res.Offsets = append(res.Offsets, OffsetChange{Broker: q.b.Name, QueueID: q.id, Current: cur, New: nw})
	}
	if !r.Execute {
		return res, nil
	}
	done := map[string]map[string]int64{}
	for _, q := range qs {
		if _, ok := done[q.b.Name]; ok {
			continue
		}
		var ans struct {
			Offsets map[string]int64 `json:"offsets"`
		}
		ext := map[string]string{"group": r.Group, "topic": r.Topic, "to": r.To, "value": strconv.FormatInt(r.Value, 10)}
		if err := a.r.invokeJSON(ctx, q.b.Addr, protocol.ReqResetOffset, ext, nil, &ans); err != nil {
			return nil, adminBrokerErr(q.b, err)
		}
		done[q.b.Name] = ans.Offsets
	}
	for i, o := range res.Offsets {
		if v, ok := done[o.Broker][strconv.Itoa(int(o.QueueID))]; ok {
			res.Offsets[i].New = v
		}
	}
	res.Executed = true
	sort.SliceStable(res.Offsets, func(i, j int) bool {
		if res.Offsets[i].Broker != res.Offsets[j].Broker {
			return res.Offsets[i].Broker < res.Offsets[j].Broker
		}
		return res.Offsets[i].QueueID < res.Offsets[j].QueueID
	})
	return res, nil
}

// adminCommitted is the group's committed offset of a queue, -1 if none.
func (a *remotingAdmin) committed(ctx context.Context, q adminQueue, group, topic string) (int64, error) {
	ext := map[string]string{"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(int(q.id)), "bname": q.b.Name}
	resp, err := a.invoke(ctx, q.b.Addr, protocol.ReqQueryConsumerOffset, ext, nil)
	if adminIsCode(err, protocol.RespQueryNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, adminBrokerErr(q.b, err)
	}
	return resp.Int64("offset")
}

// adminQueueOffset asks a broker for a queue's min (31), max (30) or
// by-time (29) offset.
func (a *remotingAdmin) queueOffset(ctx context.Context, q adminQueue, topic string, code int16, ts int64) (int64, error) {
	ext := map[string]string{"topic": topic, "queueId": strconv.Itoa(int(q.id)), "bname": q.b.Name}
	if code == protocol.ReqSearchOffsetByTimestamp {
		ext["timestamp"] = strconv.FormatInt(ts, 10)
	}
	resp, err := a.invoke(ctx, q.b.Addr, code, ext, nil)
	if err != nil {
		return 0, adminBrokerErr(q.b, err)
	}
	return resp.Int64("offset")
}

// adminOffsetAt computes the offset a reset target gives one queue, as the
// broker would.
func (a *remotingAdmin) offsetAt(ctx context.Context, q adminQueue, topic, to string, value int64) (int64, error) {
	switch to {
	case ResetEarliest:
		return a.queueOffset(ctx, q, topic, protocol.ReqGetMinOffset, 0)
	case ResetLatest:
		return a.queueOffset(ctx, q, topic, protocol.ReqGetMaxOffset, 0)
	case ResetTime:
		return a.queueOffset(ctx, q, topic, protocol.ReqSearchOffsetByTimestamp, value)
	}
	lo, err := a.queueOffset(ctx, q, topic, protocol.ReqGetMinOffset, 0)
	if err != nil {
		return 0, err
	}
	hi, err := a.queueOffset(ctx, q, topic, protocol.ReqGetMaxOffset, 0)
	if err != nil {
		return 0, err
	}
	return max(lo, min(value, hi)), nil
}
