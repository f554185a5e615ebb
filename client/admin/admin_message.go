package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ferrymq/ferry/client"

	"github.com/ferrymq/ferry/protocol"
)

// MessageView is a stored message as operators see it.
type MessageView struct {
	MsgID           string            `json:"msg_id"`
	OffsetMsgID     string            `json:"offset_msg_id"`
	Topic           string            `json:"topic"`
	Broker          string            `json:"broker"`
	QueueID         int32             `json:"queue_id"`
	QueueOffset     int64             `json:"queue_offset"`
	CommitlogOffset int64             `json:"commitlog_offset"`
	Tags            string            `json:"tags"`
	Keys            string            `json:"keys"`
	BornMS          int64             `json:"born_ms"`
	StoreMS         int64             `json:"store_ms"`
	BornHost        string            `json:"born_host"`
	StoreHost       string            `json:"store_host"`
	ReconsumeTimes  int32             `json:"reconsume_times"`
	Properties      map[string]string `json:"properties"`
	// Body is the payload. In JSON it is "body" when valid UTF-8, else
	// "body_base64".
	Body []byte `json:"-"`
}

// MarshalJSON writes the body as text or base64.
func (m MessageView) MarshalJSON() ([]byte, error) {
	type plain MessageView
	v := struct {
		plain
		BodySize   int    `json:"body_size"`
		Body       string `json:"body,omitempty"`
		BodyBase64 string `json:"body_base64,omitempty"`
	}{plain: plain(m), BodySize: len(m.Body)}
	if utf8.Valid(m.Body) {
		v.Body = string(m.Body)
	} else {
		v.BodyBase64 = base64.StdEncoding.EncodeToString(m.Body)
	}
	return json.Marshal(v)
}

// adminView copies a decoded record into a MessageView.
func adminView(r protocol.Record, broker string) MessageView {
	props := protocol.ParseProperties(r.UserProperties())
	m := MessageView{
		Topic: string(r.Topic), Broker: broker, QueueID: r.QueueID, QueueOffset: r.QueueOffset,
		CommitlogOffset: r.PhysicalOffset, BornMS: r.BornTimestamp, StoreMS: r.StoreTimestamp,
		BornHost: r.BornHost.String(), StoreHost: r.StoreHost.String(), ReconsumeTimes: r.ReconsumeTimes,
		Properties: props, Body: append([]byte(nil), r.Body...),
		OffsetMsgID: protocol.OffsetMsgID(r.StoreHost, r.PhysicalOffset),
	}
	m.MsgID = props[protocol.PropUniqKey]
	if m.MsgID == "" {
		m.MsgID = m.OffsetMsgID
	}
	m.Tags, m.Keys = props[protocol.PropTags], props[protocol.PropKeys]
	return m
}

// OutMessage is a message to send.
type OutMessage struct {
	Body       []byte
	Tags       string
	Keys       []string
	Properties map[string]string
}

// SendReceipt says where a sent message was stored.
type SendReceipt struct {
	MsgID       string `json:"msg_id"`
	OffsetMsgID string `json:"offset_msg_id"`
	Topic       string `json:"topic"`
	Broker      string `json:"broker"`
	QueueID     int32  `json:"queue_id"`
	QueueOffset int64  `json:"queue_offset"`
}

// AdminSender sends messages to one topic, spread round-robin over its
// writable queues (the route is read once, when it is made).
type AdminSender struct {
	a     *Admin
	topic string
	qs    []adminQueue
	nq    int32         // HTTP: the topic's write queues (0: the broker picks)
	next  atomic.Uint64 // round-robin position
}

// NewSender returns a sender for topic. A topic with no route goes to the
// first broker, which creates it if its configuration allows.
func (a *Admin) NewSender(ctx context.Context, topic string) (*AdminSender, error) {
	if a.h != nil {
		t, err := a.h.topic(ctx, topic)
		if err != nil && !errors.Is(err, client.ErrTopicNotFound) {
			return nil, err
		}
		return &AdminSender{a: a, topic: topic, nq: t.WriteQueues}, nil
	}
	qs, err := a.r.topicQueues(ctx, topic, true)
	if errors.Is(err, client.ErrTopicNotFound) {
		// Let a broker auto-create it, if its configuration allows.
		bs, berr := a.r.masters(ctx, nil)
		if berr != nil {
			return nil, berr
		}
		qs, err = []adminQueue{{b: bs[0], id: 0}}, nil
	}
	if err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("client: topic %s has no writable queue", topic)
	}
	return &AdminSender{a: a, topic: topic, qs: qs}, nil
}

// adminNewUniqID returns a fresh message id (32 hex digits).
func adminNewUniqID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// Send sends one message.
func (s *AdminSender) Send(ctx context.Context, m OutMessage) (SendReceipt, error) {
	if s.a.h != nil {
		q := int32(-1)
		if s.nq > 0 {
			q = int32(s.next.Add(1)-1) % s.nq
		}
		rs, err := s.a.h.send(ctx, s.topic, []OutMessage{m}, q)
		if err != nil {
			return SendReceipt{}, err
		}
		return rs[0], nil
	}
	props := map[string]string{}
	for k, v := range m.Properties {
		props[k] = v
	}
	id := adminNewUniqID()
	props[protocol.PropUniqKey] = id
	if m.Tags != "" {
		props[protocol.PropTags] = m.Tags
	}
	if len(m.Keys) > 0 {
		props[protocol.PropKeys] = strings.Join(m.Keys, " ")
	}
	props["WAIT"] = "true"
	q := s.qs[int(s.next.Add(1)-1)%len(s.qs)]
	ext := map[string]string{
		"producerGroup": "FERRY_ADMIN_PRODUCER", "topic": s.topic, "defaultTopic": protocol.AutoCreateTopicTemplate, "defaultTopicQueueNums": "4",
		"queueId": strconv.Itoa(int(q.id)), "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag": "0", "properties": string(protocol.EncodeProperties(props)), "reconsumeTimes": "0",
		"unitMode": "false", "batch": "false", "bname": q.b.Name,
	}
	resp, err := s.a.r.invoke(ctx, q.b.Addr, protocol.ReqSendMessage, ext, m.Body)
	if err != nil {
		return SendReceipt{}, adminBrokerErr(q.b, err)
	}
	r := SendReceipt{MsgID: id, OffsetMsgID: resp.StringOr("msgId", ""), Topic: s.topic, Broker: q.b.Name}
	qid, _ := resp.Int32Or("queueId", q.id)
	r.QueueID = qid
	r.QueueOffset, _ = resp.Int64Or("queueOffset", 0)
	return r, nil
}

// Send sends messages one by one to topic, spread round-robin over its
// writable queues. A topic with no route goes to the first broker, which
// creates it if its configuration allows. It returns the receipts of the
// messages sent before any error.
func (a *Admin) Send(ctx context.Context, topic string, msgs ...OutMessage) ([]SendReceipt, error) {
	s, err := a.NewSender(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make([]SendReceipt, 0, len(msgs))
	for _, m := range msgs {
		r, err := s.Send(ctx, m)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ConsumeSpec says what Consume reads.
type ConsumeSpec struct {
	Topic string
	// Group is the consumer group whose committed offsets Consume starts
	// from and, with Commit, advances. Without one Consume reads as a tool
	// (protocol.ToolsConsumerGroup): no group is created and nothing committed.
	Group string
	// FromBeginning starts at each queue's first offset instead. Otherwise
	// a queue starts at the group's committed offset or, when the group has
	// none (no group, or a group that does not exist yet), at its end: only
	// new messages.
	FromBeginning bool
	// Max stops after this many messages (0: no limit).
	Max int
	// Follow waits for new messages until ctx ends; without it Consume
	// returns once every queue is read to its end.
	Follow bool
	// Commit stores the offsets reached for Group.
	Commit bool
}

// Consume pulls the topic's queues (with the subscription in the request,
// so no heartbeat) and calls fn for each message, queue after queue (in
// follow mode, as they arrive). It returns how many messages fn got.
//
// Over the HTTP API it reads the queues statelessly, from the group's
// committed offsets (or the beginning); committing is not supported there.
func (a *Admin) Consume(ctx context.Context, spec ConsumeSpec, fn func(MessageView) error) (int, error) {
	if spec.Group == "" && spec.Commit {
		return 0, errors.New("client: consume can commit offsets only for a group")
	}
	if a.h != nil {
		return a.h.consume(ctx, spec, fn)
	}
	qs, err := a.r.topicQueues(ctx, spec.Topic, false)
	if err != nil {
		return 0, err
	}
	// Committed offsets only of a group that exists: a broker answers 0
	// for a new group on a young queue (RocketMQ's rule for consumers).
	committed := false
	if spec.Group != "" && !spec.FromBeginning {
		switch _, err := a.Group(ctx, spec.Group); {
		case err == nil:
			committed = true
		case !errors.Is(err, client.ErrGroupNotFound):
			return 0, err
		}
	}
	pullGroup := spec.Group
	if pullGroup == "" {
		pullGroup = protocol.ToolsConsumerGroup
	}
	type cursor struct {
		q         adminQueue
		off, from int64
	}
	cs := make([]*cursor, len(qs))
	for i, q := range qs {
		off := int64(-1)
		switch {
		case spec.FromBeginning:
			off, err = a.r.queueOffset(ctx, q, spec.Topic, protocol.ReqGetMinOffset, 0)
		case committed:
			off, err = a.r.committed(ctx, q, spec.Group, spec.Topic)
		}
		if err == nil && off < 0 {
			off, err = a.r.queueOffset(ctx, q, spec.Topic, protocol.ReqGetMaxOffset, 0)
		}
		if err != nil {
			return 0, err
		}
		cs[i] = &cursor{q: q, off: off, from: off}
	}
	var n int
	errStop := errors.New("stop")
	deliver := func(c *cursor, recs []protocol.Record, next int64) error {
		for _, r := range recs {
			if spec.Max > 0 && n >= spec.Max {
				return errStop
			}
			if err := fn(adminView(r, c.q.b.Name)); err != nil {
				return err
			}
			n++
			c.off = r.QueueOffset + 1
		}
		if len(recs) == 0 || next > c.off {
			c.off = max(c.off, next)
		}
		if spec.Max > 0 && n >= spec.Max {
			return errStop
		}
		return nil
	}
	run := func() error {
		// Read every queue to its end, queue after queue.
		for _, c := range cs {
			for {
				recs, next, err := a.r.pull(ctx, c.q.b, pullGroup, spec.Topic, c.q.id, c.off, 32, 0)
				if err != nil {
					return adminBrokerErr(c.q.b, err)
				}
				if len(recs) == 0 && next <= c.off {
					break
				}
				if err := deliver(c, recs, next); err != nil {
					return err
				}
			}
		}
		// Then, following, long-poll the queues in turn.
		for spec.Follow {
			for _, c := range cs {
				recs, next, err := a.r.pull(ctx, c.q.b, pullGroup, spec.Topic, c.q.id, c.off, 32, time.Second)
				if ctx.Err() != nil {
					return nil
				}
				if err != nil {
					return adminBrokerErr(c.q.b, err)
				}
				if err := deliver(c, recs, next); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err = run()
	if errors.Is(err, errStop) {
		err = nil
	}
	if spec.Commit {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		defer cancel()
		for _, c := range cs {
			if c.off == c.from {
				continue
			}
			ext := map[string]string{"consumerGroup": spec.Group, "topic": spec.Topic, "queueId": strconv.Itoa(int(c.q.id)),
				"commitOffset": strconv.FormatInt(c.off, 10), "bname": c.q.b.Name}
			if _, cerr := a.r.invoke(cctx, c.q.b.Addr, protocol.ReqUpdateConsumerOffset, ext, nil); cerr != nil && err == nil {
				err = adminBrokerErr(c.q.b, cerr)
			}
		}
	}
	return n, err
}

// Message finds a message by id (the producer's UNIQ_KEY or the broker's
// offset id) on every master; client.ErrMessageNotFound when none has it.
func (a *Admin) Message(ctx context.Context, id string) (*MessageView, error) {
	if a.h != nil {
		return a.h.message(ctx, id)
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	if host, _, err := protocol.ParseOffsetMsgID(id); err == nil {
		// An offset id names its broker: ask it first.
		sort.SliceStable(bs, func(i, j int) bool { return bs[i].Addr == host.String() && bs[j].Addr != host.String() })
	}
	for _, b := range bs {
		resp, err := a.r.invoke(ctx, b.Addr, protocol.ReqViewMessageByID, map[string]string{"msgId": id}, nil)
		if err != nil {
			var se *client.ServerError
			if errors.As(err, &se) {
				continue // not on this broker
			}
			return nil, adminBrokerErr(b, err)
		}
		recs, err := adminDecodeRecords(resp.Body)
		if err != nil || len(recs) == 0 {
			continue
		}
		m := adminView(recs[0], b.Name)
		return &m, nil
	}
	return nil, fmt.Errorf("%w: %s", client.ErrMessageNotFound, id)
}

// QueryMessages finds up to max messages of topic whose KEYS hold key,
// stored between begin and end (zero times: unbounded), on every broker
// of the topic, sorted by store time.
func (a *Admin) QueryMessages(ctx context.Context, topic, key string, begin, end time.Time, max int) ([]MessageView, error) {
	if max <= 0 {
		max = 32
	}
	var bms, ems int64
	if !begin.IsZero() {
		bms = begin.UnixMilli()
	}
	if !end.IsZero() {
		ems = end.UnixMilli()
	}
	if a.h != nil {
		return a.h.queryMessages(ctx, topic, key, bms, ems, max)
	}
	qs, err := a.r.topicQueues(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	out := []MessageView{}
	seen := map[string]bool{}
	for _, q := range qs {
		if seen[q.b.Name] {
			continue
		}
		seen[q.b.Name] = true
		ext := map[string]string{"topic": topic, "key": key, "maxNum": strconv.Itoa(max),
			"beginTimestamp": strconv.FormatInt(bms, 10), "endTimestamp": strconv.FormatInt(ems, 10)}
		resp, err := a.r.invoke(ctx, q.b.Addr, protocol.ReqQueryMessage, ext, nil)
		if adminIsCode(err, protocol.RespQueryNotFound) {
			continue
		}
		if err != nil {
			return nil, adminBrokerErr(q.b, err)
		}
		recs, err := adminDecodeRecords(resp.Body)
		if err != nil {
			return nil, adminBrokerErr(q.b, err)
		}
		for _, r := range recs {
			out = append(out, adminView(r, q.b.Name))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StoreMS < out[j].StoreMS })
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// Resend sends a stored message again as a new message: to topic, or when
// topic is empty to the topic it was first sent to (a retried or dead
// message goes back to its original topic). Body, tags, keys and user
// properties are kept; ORIGIN_MESSAGE_ID names the original.
func (a *Admin) Resend(ctx context.Context, id, topic string) (*SendReceipt, error) {
	m, err := a.Message(ctx, id)
	if err != nil {
		return nil, err
	}
	if topic == "" {
		topic = m.Topic
		if t := m.Properties[protocol.PropRetryTopic]; t != "" && !strings.HasPrefix(t, "%") {
			topic = t
		}
		if strings.HasPrefix(topic, "%") {
			return nil, fmt.Errorf("client: message %s is on %s and names no original topic; give one", id, topic)
		}
	}
	props := map[string]string{}
	for k, v := range m.Properties {
		switch k {
		case protocol.PropUniqKey, protocol.PropTags, protocol.PropKeys, protocol.PropRetryTopic,
			protocol.PropDelayLevel, protocol.PropRealTopic, protocol.PropRealQueueID, protocol.PropCluster, protocol.PropWait,
			protocol.PropMinOffset, protocol.PropMaxOffset, protocol.PropOriginMessageID:
			continue
		}
		props[k] = v
	}
	props[protocol.PropOriginMessageID] = m.MsgID
	out := OutMessage{Body: m.Body, Tags: m.Tags, Properties: props}
	if m.Keys != "" {
		out.Keys = strings.Fields(m.Keys)
	}
	rs, err := a.Send(ctx, topic, out)
	if err != nil {
		return nil, err
	}
	return &rs[0], nil
}
