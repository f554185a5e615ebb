package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/protocol"
)

// messageView converts the API's message. Properties
// hold the user and the system properties, as the remoting view has them;
// the API does not show the born and store hosts.
func messageView(h *protocol.HTTPMessage, broker string) (MessageView, error) {
	v := MessageView{MsgID: h.MsgID, OffsetMsgID: h.OffsetMsgID, Topic: h.Topic, Broker: broker,
		QueueOffset: h.QueueOffset, CommitlogOffset: h.CommitlogOffset, Tags: h.Tags, Keys: strings.Join(h.Keys, " "),
		BornMS: h.BornAtMs, StoreMS: h.StoredAtMs, ReconsumeTimes: h.ReconsumeTimes, QueueID: h.QueueID,
		Properties: map[string]string{}}
	for k, x := range h.Properties {
		v.Properties[k] = x
	}
	for k, x := range h.SystemProperties {
		v.Properties[k] = x
	}
	var err error
	v.Body, err = h.DecodedBody()
	return v, err
}

func (a *httpAdmin) message(ctx context.Context, id string) (*MessageView, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	var m protocol.HTTPMessage
	if err := a.do(ctx, "GET", "/v1/messages/"+adminPathEscape(id), nil, nil, &m); err != nil {
		return nil, err
	}
	v, err := messageView(&m, self.Name)
	return &v, err
}

func (a *httpAdmin) queryMessages(ctx context.Context, topic, key string, bms, ems int64, max int) ([]MessageView, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"key": {key}, "max": {strconv.Itoa(min(max, adminHTTPMaxBatch))}}
	if bms > 0 {
		q.Set("begin_ms", strconv.FormatInt(bms, 10))
	}
	if ems > 0 {
		q.Set("end_ms", strconv.FormatInt(ems, 10))
	}
	var ans protocol.HTTPMessages
	if err := a.do(ctx, "GET", "/v1/topics/"+adminPathEscape(topic)+"/messages", q, nil, &ans); err != nil {
		return nil, err
	}
	out := make([]MessageView, 0, len(ans.Messages))
	for _, m := range ans.Messages {
		v, err := messageView(&m, self.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StoreMS < out[j].StoreMS })
	return out, nil
}

// httpReadQueue reads up to n messages of one queue from off (a stateless
// read); it returns them and the offset to read next.
func (a *httpAdmin) readQueue(ctx context.Context, topic string, q int32, off int64, n int, wait time.Duration) ([]MessageView, int64, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, off, err
	}
	query := url.Values{"offset": {strconv.FormatInt(off, 10)}, "max": {strconv.Itoa(n)}}
	if wait > 0 {
		query.Set("wait_ms", strconv.FormatInt(wait.Milliseconds(), 10))
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout+wait)
		defer cancel()
	}
	var ans protocol.HTTPQueueRead
	path := "/v1/topics/" + adminPathEscape(topic) + "/queues/" + strconv.Itoa(int(q)) + "/messages"
	if err := a.do(ctx, "GET", path, query, nil, &ans); err != nil {
		return nil, off, err
	}
	out := make([]MessageView, 0, len(ans.Messages))
	for _, m := range ans.Messages {
		v, err := messageView(&m, self.Name)
		if err != nil {
			return nil, off, err
		}
		out = append(out, v)
	}
	return out, ans.NextOffset, nil
}

// httpSend produces msgs in batches, to queue q (-1: one queue the broker
// picks per batch); each message succeeds or fails on its own, and the
// first failure ends the call.
func (a *httpAdmin) send(ctx context.Context, topic string, msgs []OutMessage, q int32) ([]SendReceipt, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SendReceipt, 0, len(msgs))
	for len(msgs) > 0 {
		batch := msgs[:min(len(msgs), adminHTTPMaxBatch)]
		msgs = msgs[len(batch):]
		req := protocol.HTTPProduceRequest{Messages: make([]protocol.HTTPProduceMessage, len(batch))}
		for i, m := range batch {
			pm := protocol.HTTPProduceMessage{Body: string(m.Body), BodyEncoding: "utf8", Tags: m.Tags, Keys: m.Keys, Properties: m.Properties}
			if q >= 0 {
				pm.QueueID = &q
			}
			if !utf8.Valid(m.Body) {
				pm.Body, pm.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
			}
			req.Messages[i] = pm
		}
		var ans protocol.HTTPProduceResponse
		path := "/v1/topics/" + adminPathEscape(topic) + "/messages"
		if err := a.do(ctx, "POST", path, nil, req, &ans); err != nil {
			return out, err
		}
		if len(ans.Results) != len(batch) {
			return out, fmt.Errorf("client: POST %s: %d results for %d messages", path, len(ans.Results), len(batch))
		}
		for _, r := range ans.Results {
			if e := r.Error; e != nil {
				return out, adminProblem(a.base, "POST", path, e.Status, e)
			}
			sr := SendReceipt{MsgID: r.MsgID, OffsetMsgID: r.OffsetMsgID, Topic: topic, Broker: self.Name}
			if r.QueueID != nil {
				sr.QueueID = *r.QueueID
			}
			if r.QueueOffset != nil {
				sr.QueueOffset = *r.QueueOffset
			}
			out = append(out, sr)
		}
	}
	return out, nil
}

// --- dead letters ---

func (a *httpAdmin) deadLetters(ctx context.Context, group string, max int) ([]DeadLetter, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	out := []DeadLetter{}
	from := int64(0)
	for max <= 0 || len(out) < max {
		page := adminHTTPMaxBatch
		if max > 0 {
			page = min(page, max-len(out))
		}
		q := url.Values{"from": {strconv.FormatInt(from, 10)}, "max": {strconv.Itoa(page)}}
		var p protocol.DLQPage
		if err := a.do(ctx, "GET", "/v1/groups/"+adminPathEscape(group)+"/dlq", q, nil, &p); err != nil {
			return nil, err
		}
		for i := range p.DeadLetters {
			out = append(out, deadLetterOf(&p.DeadLetters[i], self.Name))
		}
		if len(p.DeadLetters) == 0 || p.Next <= from {
			break
		}
		from = p.Next
	}
	return out, nil
}

// httpResendOffsets resends the dead letters at offsets (all of them when
// offsets is nil) in batches.
func (a *httpAdmin) resendDeadLetters(ctx context.Context, r DLQResend, target string, offsets []int64, res *DLQResendResult) error {
	path := "/v1/groups/" + adminPathEscape(r.Group) + "/dlq/resend"
	var ans protocol.DLQResendResult
	if offsets == nil {
		if err := a.do(ctx, "POST", path, nil, protocol.HTTPDLQResend{All: true, Target: target}, &ans); err != nil {
			return err
		}
		res.Resent, res.Skipped = ans.Resent, ans.Skipped
		if r.Progress != nil {
			r.Progress(res.Resent, res.Resent)
		}
		return nil
	}
	total := len(offsets)
	for len(offsets) > 0 {
		n := min(len(offsets), adminDLQBatch)
		if err := a.do(ctx, "POST", path, nil, protocol.HTTPDLQResend{Offsets: offsets[:n], Target: target}, &ans); err != nil {
			return err
		}
		res.Resent += ans.Resent
		res.Skipped += ans.Skipped
		offsets = offsets[n:]
		if r.Progress != nil {
			r.Progress(res.Resent, total)
		}
	}
	return nil
}

// httpConsume reads the topic's queues with stateless queue reads: from
// each queue's first offset, or the group's committed offset (the end when
// it has none). With Commit it commits the offsets reached (PUT
// /v1/groups/{group}/offsets) when it stops, as the remoting path does.
func (a *httpAdmin) consume(ctx context.Context, spec ConsumeSpec, fn func(MessageView) error) (n int, err error) {
	t, err := a.topic(ctx, spec.Topic)
	if err != nil {
		return 0, err
	}
	committed := map[int32]int64{}
	if !spec.FromBeginning && spec.Group != "" {
		l, err := a.lag(ctx, spec.Group, false)
		if err != nil && !errors.Is(err, client.ErrGroupNotFound) {
			return 0, err
		}
		if l != nil {
			for _, r := range l.Queues {
				if r.Topic == spec.Topic {
					committed[r.QueueID] = r.ConsumerOffset
				}
			}
		}
	}
	type cursor struct {
		q   int32
		off int64
	}
	var cs []*cursor
	for _, q := range t.Queues {
		off, ok := committed[q.QueueID]
		switch {
		case spec.FromBeginning:
			off = q.MinOffset
		case !ok:
			off = q.MaxOffset
		}
		cs = append(cs, &cursor{q: q.QueueID, off: off})
	}
	if spec.Commit {
		defer func() {
			if err != nil || spec.Group == "" {
				return
			}
			offs := protocol.HTTPOffsets{Offsets: make([]protocol.HTTPOffset, 0, len(cs))}
			for _, c := range cs {
				offs.Offsets = append(offs.Offsets, protocol.HTTPOffset{Topic: spec.Topic, QueueID: int32(c.q), Offset: c.off})
			}
			// The reads may have used up ctx (--follow until interrupted).
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
			defer cancel()
			err = a.do(cctx, "PUT", "/v1/groups/"+adminPathEscape(spec.Group)+"/offsets", nil, offs, nil)
		}()
	}
	// read reads one queue once; done reports that Max is reached.
	read := func(c *cursor, wait time.Duration) (got int, done bool, err error) {
		ms, next, err := a.readQueue(ctx, spec.Topic, c.q, c.off, 32, wait)
		if err != nil {
			return 0, false, err
		}
		for _, m := range ms {
			if spec.Max > 0 && n >= spec.Max {
				return got, true, nil
			}
			if err := fn(m); err != nil {
				return got, false, err
			}
			n++
			got++
			c.off = m.QueueOffset + 1
		}
		c.off = max(c.off, next)
		return got, spec.Max > 0 && n >= spec.Max, nil
	}
	for _, c := range cs {
		for {
			got, done, err := read(c, 0)
			if err != nil || done {
				return n, err
			}
			if got == 0 {
				break
			}
		}
	}
	for spec.Follow && ctx.Err() == nil {
		for _, c := range cs {
			_, done, err := read(c, time.Second)
			if ctx.Err() != nil {
				return n, nil
			}
			if err != nil || done {
				return n, err
			}
		}
	}
	return n, nil
}
