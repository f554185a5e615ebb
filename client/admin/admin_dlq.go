package admin

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferrymq/ferry/client"

	"github.com/ferrymq/ferry/protocol"
)

// DeadLetter is one message in a group's dead-letter queue.
type DeadLetter struct {
	Broker          string `json:"broker"`
	QueueOffset     int64  `json:"queue_offset"`
	CommitlogOffset int64  `json:"commitlog_offset"`
	MsgID           string `json:"msg_id"`
	OriginMsgID     string `json:"origin_msg_id,omitempty"`
	Topic           string `json:"topic"` // the topic it was first consumed from
	Tags            string `json:"tags,omitempty"`
	Keys            string `json:"keys,omitempty"`
	ReconsumeTimes  int32  `json:"reconsume_times"`
	FailedAtMS      int64  `json:"failed_at_ms"`
	BornAtMS        int64  `json:"born_at_ms"`
	BodySize        int    `json:"body_size"`
	// OffsetMsgID names this copy, in the DLQ (MsgID is shared with the
	// original message and its retries).
	OffsetMsgID string `json:"offset_msg_id,omitempty"`
	// ResentAtMS and ResentTo ("topic" or "retry") say that it was resent;
	// a dead letter is resent once.
	ResentAtMS int64  `json:"resent_at_ms,omitempty"`
	ResentTo   string `json:"resent_to,omitempty"`
}

// DeadLetters lists up to max dead letters of group (max <= 0: all) from
// every broker that has the group; client.ErrGroupNotFound when none has.
func (a *Admin) DeadLetters(ctx context.Context, group string, max int) ([]DeadLetter, error) {
	if a.h != nil {
		return a.h.deadLetters(ctx, group, max)
	}
	g, err := a.Group(ctx, group)
	if err != nil {
		return nil, err
	}
	bs, err := a.r.masters(ctx, g.Brokers)
	if err != nil {
		return nil, err
	}
	out := []DeadLetter{}
	for _, b := range bs {
		from := int64(0)
		for max <= 0 || len(out) < max {
			page := 256
			if max > 0 {
				page = min(page, max-len(out))
			}
			ext := map[string]string{"group": group, "from": strconv.FormatInt(from, 10), "max": strconv.Itoa(page)}
			var p protocol.DLQPage
			if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqFerryDLQList, ext, nil, &p); err != nil {
				return nil, adminBrokerErr(b, err)
			}
			for i := range p.DeadLetters {
				out = append(out, deadLetterOf(&p.DeadLetters[i], b.Name))
			}
			if len(p.DeadLetters) == 0 || p.Next <= from {
				break
			}
			from = p.Next
		}
	}
	return out, nil
}

// DLQResend says which dead letters to resend, and where.
type DLQResend struct {
	Group string
	// IDs selects dead letters by message id (or original message id);
	// empty with All resends every one.
	IDs []string
	All bool
	// ToRetry puts them back on the group's retry topic (with a fresh
	// retry count) instead of their original topic.
	ToRetry bool
	// Progress, when set, is called after each batch with the number
	// resent so far and the total.
	Progress func(done, total int)
}

// DLQResendResult counts what was resent, and what was skipped because it
// had been resent before (a dead letter is resent once).
type DLQResendResult struct {
	Group   string `json:"group"`
	Target  string `json:"target"`
	Resent  int    `json:"resent"`
	Skipped int    `json:"skipped"`
}

// adminDLQBatch is how many dead letters one resend request carries.
const adminDLQBatch = 100

// ResendDeadLetters resends the selected dead letters. Unknown ids are an
// error before anything is sent.
func (a *Admin) ResendDeadLetters(ctx context.Context, r DLQResend) (*DLQResendResult, error) {
	target := "topic"
	if r.ToRetry {
		target = "retry"
	}
	if len(r.IDs) == 0 && !r.All {
		return nil, fmt.Errorf("client: say which dead letters to resend (ids, or all)")
	}
	res := &DLQResendResult{Group: r.Group, Target: target}
	if a.h != nil && len(r.IDs) == 0 {
		return res, a.h.resendDeadLetters(ctx, r, target, nil, res)
	}
	dls, err := a.DeadLetters(ctx, r.Group, 0)
	if err != nil {
		return nil, err
	}
	// Select the offsets per broker.
	byBroker := map[string][]int64{}
	var order []string
	add := func(d DeadLetter) {
		if _, ok := byBroker[d.Broker]; !ok {
			order = append(order, d.Broker)
		}
		byBroker[d.Broker] = append(byBroker[d.Broker], d.QueueOffset)
	}
	total := 0
	if len(r.IDs) > 0 {
		var missing []string
		for _, id := range r.IDs {
			found := false
			for _, d := range dls {
				if d.MsgID == id || d.OriginMsgID == id {
					add(d)
					found = true
					total++
					break
				}
			}
			if !found {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: %s not in the dead-letter queue of %s", client.ErrMessageNotFound, strings.Join(missing, ", "), r.Group)
		}
	} else {
		for _, d := range dls {
			add(d)
		}
		total = len(dls)
	}
	if a.h != nil {
		var offs []int64
		for _, b := range order {
			offs = append(offs, byBroker[b]...)
		}
		return res, a.h.resendDeadLetters(ctx, r, target, offs, res)
	}
	bs, err := a.r.masters(ctx, order)
	if len(order) == 0 {
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		offs := byBroker[b.Name]
		for len(offs) > 0 {
			n := min(len(offs), adminDLQBatch)
			parts := make([]string, n)
			for i, o := range offs[:n] {
				parts[i] = strconv.FormatInt(o, 10)
			}
			var ans protocol.DLQResendResult
			ext := map[string]string{"group": r.Group, "offsets": strings.Join(parts, ","), "target": target}
			if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqFerryDLQResend, ext, nil, &ans); err != nil {
				return res, adminBrokerErr(b, err)
			}
			res.Resent += ans.Resent
			res.Skipped += ans.Skipped
			offs = offs[n:]
			if r.Progress != nil {
				r.Progress(res.Resent, total)
			}
		}
	}
	return res, nil
}

// deadLetterOf is d as listed by broker.
func deadLetterOf(d *protocol.DeadLetter, broker string) DeadLetter {
	return DeadLetter{Broker: broker, QueueOffset: d.QueueOffset, CommitlogOffset: d.CommitOffset,
		MsgID: d.MsgID, OriginMsgID: d.OriginMsgID, Topic: d.Topic, Tags: d.Tags, Keys: d.Keys,
		ReconsumeTimes: d.ReconsumeTimes, FailedAtMS: d.FailedAtMillis, BornAtMS: d.BornAtMillis, BodySize: d.BodySize,
		OffsetMsgID: d.OffsetMsgID, ResentAtMS: d.ResentAtMillis, ResentTo: d.ResentTo}
}
