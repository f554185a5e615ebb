package client

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// Message is what a producer sends. The producer never modifies it, so one
// Message may be sent again or from several goroutines.
type Message struct {
	Topic string
	Body  []byte
	// Tags is the single tag consumers filter on ("TagA").
	Tags string
	// Keys index the message for lookups by key.
	Keys []string
	// Properties are user properties; names must not collide with the
	// system ones (TAGS, KEYS, UNIQ_KEY, DELAY, ...).
	Properties map[string]string
	// ShardingKey picks the queue under HashSelector: messages with the same
	// key go to the same queue, in order.
	ShardingKey string
	// DelayLevel (1..18 on a default broker: 1s 5s 10s 30s 1m ... 2h)
	// delays delivery. 0 means none.
	DelayLevel int
	// DeliverAt delivers the message at this time (zero: now). Ignored if
	// DelayLevel is set.
	DeliverAt time.Time
	// Flag is an opaque integer stored with the message.
	Flag int32
}

// MessageQueue identifies one queue of a topic on one broker.
type MessageQueue struct {
	Topic      string
	BrokerName string
	QueueID    int
}

func (q MessageQueue) String() string {
	return q.Topic + "@" + q.BrokerName + "#" + strconv.Itoa(q.QueueID)
}

func lessQueue(a, b MessageQueue) bool {
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	if a.BrokerName != b.BrokerName {
		return a.BrokerName < b.BrokerName
	}
	return a.QueueID < b.QueueID
}

func sortQueues(qs []MessageQueue) {
	sort.Slice(qs, func(i, j int) bool { return lessQueue(qs[i], qs[j]) })
}

// SendResult says where a message was stored.
type SendResult struct {
	// MsgID is the client-made id (UNIQ_KEY) consumers see as MsgID.
	MsgID string
	// OffsetMsgID is the broker's id (store host + commitlog offset).
	OffsetMsgID string
	Queue       MessageQueue
	QueueOffset int64
}

// MessageExt is a consumed message.
type MessageExt struct {
	Message
	MsgID           string
	OffsetMsgID     string
	Queue           MessageQueue // the queue it was pulled from (a %RETRY% queue for a retry)
	QueueOffset     int64
	CommitLogOffset int64
	BornAt          time.Time
	StoredAt        time.Time
	BornHost        string
	StoreHost       string
	// ReconsumeTimes counts earlier failed deliveries.
	ReconsumeTimes int
	// SysFlag is the stored system flag (compression, host families).
	SysFlag int32

	// receipt is the HTTP receive handle.
	receipt string
	// props are all stored properties, system ones included.
	props map[string]string
}

// Property returns a stored property, system properties included
// (RETRY_TOPIC, ORIGIN_MESSAGE_ID, ...).
func (m *MessageExt) Property(key string) (string, bool) {
	v, ok := m.props[key]
	return v, ok
}

// validate checks a message before it is sent.
func (m *Message) validate(maxSize int) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrInvalidMessage)
	}
	if m.Topic == "" || len(m.Topic) > protocol.MaxTopicLen || !nameRE.MatchString(m.Topic) {
		return fmt.Errorf("%w: topic %q: use letters, digits, '%%', '|', '-' and '_' (1 to %d)", ErrInvalidMessage, m.Topic, protocol.MaxTopicLen)
	}
	if len(m.Body) == 0 {
		return fmt.Errorf("%w: empty body", ErrInvalidMessage)
	}
	if len(m.Body) > maxSize {
		return fmt.Errorf("%w: body of %d bytes, limit %d", ErrMessageTooLarge, len(m.Body), maxSize)
	}
	if m.DelayLevel < 0 {
		return fmt.Errorf("%w: negative delay level %d", ErrInvalidMessage, m.DelayLevel)
	}
	check := func(what, s string) error {
		if !protocol.ValidPropertyText(s) {
			return fmt.Errorf("%w: %s %q contains a property separator (\\x01 or \\x02)", ErrInvalidMessage, what, s)
		}
		return nil
	}
	if err := check("tags", m.Tags); err != nil {
		return err
	}
	for _, k := range m.Keys {
		if err := check("key", k); err != nil {
			return err
		}
		if strings.Contains(k, " ") {
			return fmt.Errorf("%w: key %q contains a space (keys are stored space-separated)", ErrInvalidMessage, k)
		}
	}
	for k, v := range m.Properties {
		if k == "" || protocol.IsSystemProperty(k) {
			return fmt.Errorf("%w: property name %q is empty or reserved", ErrInvalidMessage, k)
		}
		if err := check("property", k); err != nil {
			return err
		}
		if err := check("property", v); err != nil {
			return err
		}
	}
	return check("sharding key", m.ShardingKey)
}

// wireProperties builds the property map sent with m: the user's plus the
// system ones. uniq is the UNIQ_KEY.
func (m *Message) wireProperties(uniq string) map[string]string {
	p := make(map[string]string, len(m.Properties)+5)
	for k, v := range m.Properties {
		p[k] = v
	}
	if m.Tags != "" {
		p[protocol.PropTags] = m.Tags
	}
	if len(m.Keys) > 0 {
		p[protocol.PropKeys] = strings.Join(m.Keys, " ")
	}
	if m.ShardingKey != "" {
		p[protocol.PropShardingKey] = m.ShardingKey
	}
	if m.DelayLevel > 0 {
		p[protocol.PropDelayLevel] = strconv.Itoa(m.DelayLevel)
	} else if !m.DeliverAt.IsZero() {
		p[protocol.PropTimerDeliverMS] = strconv.FormatInt(m.DeliverAt.UnixMilli(), 10)
	}
	p[protocol.PropUniqKey] = uniq
	return p
}

var clientSeq atomic.Uint64

// newClientID returns "ip@instance"; instance defaults to pid and a
// per-process sequence so that clients of one process stay distinct.
func newClientID(instance string) string {
	if instance == "" {
		instance = strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(clientSeq.Add(1), 10) +
			"-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	}
	return protocol.LocalIPv4().String() + "@" + instance
}

// decodePulled decodes a pull response body into messages of queue mq.
func decodePulled(body []byte, mq MessageQueue) ([]*MessageExt, error) {
	var out []*MessageExt
	for len(body) > 0 {
		r, err := protocol.Decode(body)
		if err != nil {
			return out, fmt.Errorf("client: pulled record: %w", err)
		}
		body = body[r.Size:]
		props := protocol.ParseProperties(r.Properties)
		m := &MessageExt{
			Queue: mq, QueueOffset: r.QueueOffset, CommitLogOffset: r.PhysicalOffset,
			BornAt: time.UnixMilli(r.BornTimestamp), StoredAt: time.UnixMilli(r.StoreTimestamp),
			BornHost: r.BornHost.String(), StoreHost: r.StoreHost.String(),
			ReconsumeTimes: int(r.ReconsumeTimes), SysFlag: r.SysFlag, props: props,
			OffsetMsgID: protocol.OffsetMsgID(r.StoreHost, r.PhysicalOffset),
		}
		m.Topic = string(r.Topic)
		m.Flag = r.Flag
		m.Body = r.Body
		if r.SysFlag&protocol.SysFlagCompressed != 0 {
			if zr, err := zlib.NewReader(bytes.NewReader(r.Body)); err == nil {
				if b, err := io.ReadAll(zr); err == nil {
					m.Body = b
				}
			}
		}
		fillFromProps(m)
		out = append(out, m)
	}
	return out, nil
}

// fillFromProps sets the Message fields carried as properties and moves
// the user properties into Message.Properties.
func fillFromProps(m *MessageExt) {
	p := m.props
	m.Tags = p[protocol.PropTags]
	if k := p[protocol.PropKeys]; k != "" {
		m.Keys = strings.Fields(k)
	}
	m.ShardingKey = p[protocol.PropShardingKey]
	if d, err := strconv.Atoi(p[protocol.PropDelayLevel]); err == nil {
		m.DelayLevel = d
	}
	if ms, err := strconv.ParseInt(p[protocol.PropTimerDeliverMS], 10, 64); err == nil {
		m.DeliverAt = time.UnixMilli(ms)
	}
	m.MsgID = p[protocol.PropUniqKey]
	if m.MsgID == "" {
		m.MsgID = m.OffsetMsgID
	}
	for k, v := range p {
		if !protocol.IsSystemProperty(k) {
			if m.Properties == nil {
				m.Properties = make(map[string]string)
			}
			m.Properties[k] = v
		}
	}
	// A retry carries its original topic: show the message as it was sent.
	if rt := p[protocol.PropRetryTopic]; rt != "" && strings.HasPrefix(m.Topic, protocol.RetryTopicPrefix) {
		m.Topic = rt
	}
}
