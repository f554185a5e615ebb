package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// outMsg is a message prepared for the wire: its id and encoded properties.
type outMsg struct {
	m     *Message
	id    string
	props []byte
	size  int // body + properties bytes, for buffer accounting
}

func prepare(m *Message, maxSize int) (*outMsg, error) {
	if err := m.validate(maxSize); err != nil {
		return nil, err
	}
	id := protocol.NewUniqID()
	props := protocol.EncodeProperties(m.wireProperties(id))
	if len(props) > protocol.MaxPropertiesLen-64 {
		return nil, fmt.Errorf("%w: properties of %d bytes", ErrInvalidMessage, len(props))
	}
	return &outMsg{m: m, id: id, props: props, size: len(m.Body) + len(props)}, nil
}

// appendBatch appends msgs as a SEND_BATCH_MESSAGE body: per message
// int32 total size (22 + body + properties), int32 magic (0), int32 body
// CRC (0), int32 flag, int32 body length, body, int16 properties length,
// properties.
func appendBatch(dst []byte, msgs []*outMsg) []byte {
	be := binary.BigEndian
	for _, o := range msgs {
		dst = be.AppendUint32(dst, uint32(22+len(o.m.Body)+len(o.props)))
		dst = be.AppendUint32(dst, 0)
		dst = be.AppendUint32(dst, 0)
		dst = be.AppendUint32(dst, uint32(o.m.Flag))
		dst = be.AppendUint32(dst, uint32(len(o.m.Body)))
		dst = append(dst, o.m.Body...)
		dst = be.AppendUint16(dst, uint16(len(o.props)))
		dst = append(dst, o.props...)
	}
	return dst
}

func itoa(v int) string     { return strconv.Itoa(v) }
func i64(v int64) string    { return strconv.FormatInt(v, 10) }
func nowMS() string         { return i64(time.Now().UnixMilli()) }
func boolStr(b bool) string { return strconv.FormatBool(b) }

// sendRequest builds SEND_MESSAGE (V1 header) for one message or
// SEND_BATCH_MESSAGE (V2 header) for several.
func sendRequest(group string, mq MessageQueue, msgs []*outMsg, queueNums int) *remoting.Command {
	if len(msgs) == 1 {
		o := msgs[0]
		req := remoting.NewTypedRequest(protocol.ReqSendMessage, &remoting.SendHeader{ProducerGroup: group, Topic: mq.Topic,
			DefaultTopic: protocol.AutoCreateTopicTemplate, DefaultTopicQueueNums: int32(queueNums),
			QueueID: int32(mq.QueueID), BornTimestamp: time.Now().UnixMilli(), Flag: o.m.Flag,
			Properties: string(o.props), BrokerName: mq.BrokerName}, o.m.Body)
		return req
	}
	n := 0
	for _, o := range msgs {
		n += 22 + len(o.m.Body) + len(o.props)
	}
	req := remoting.NewTypedRequest(protocol.ReqSendBatchMessage, &remoting.SendHeader{V2: true, ProducerGroup: group, Topic: mq.Topic,
		DefaultTopic: protocol.AutoCreateTopicTemplate, DefaultTopicQueueNums: int32(queueNums),
		QueueID: int32(mq.QueueID), BornTimestamp: time.Now().UnixMilli(), HasMaxReconsumeTimes: true,
		Batch: true, BrokerName: mq.BrokerName}, appendBatch(make([]byte, 0, n), msgs))
	return req
}

// sendResults reads a send response for msgs stored in mq.
func sendResults(addr string, mq MessageQueue, msgs []*outMsg, resp *remoting.Command) ([]SendResult, error) {
	switch resp.Code {
	case protocol.RespSuccess, protocol.RespFlushDiskTimeout, protocol.RespSlaveNotAvailable, protocol.RespFlushSlaveTimeout:
	default:
		return nil, brokerErr(addr, resp)
	}
	qid, err := resp.Int32Or("queueId", int32(mq.QueueID))
	if err != nil {
		return nil, err
	}
	off, err := resp.Int64Or("queueOffset", -1)
	if err != nil {
		return nil, err
	}
	ids := strings.Split(resp.StringOr("msgId", ""), ",")
	q := MessageQueue{Topic: mq.Topic, BrokerName: mq.BrokerName, QueueID: int(qid)}
	out := make([]SendResult, len(msgs))
	for i, o := range msgs {
		out[i] = SendResult{MsgID: o.id, Queue: q, QueueOffset: off + int64(i)}
		if i < len(ids) {
			out[i].OffsetMsgID = ids[i]
		}
	}
	return out, nil
}

// Pull request sysFlag bits (part of the protocol).
const (
	pullFlagCommit       = 1
	pullFlagSuspend      = 2
	pullFlagSubscription = 4
)

// pullResult is a decoded PULL_MESSAGE answer.
type pullResult struct {
	code       int16
	next       int64
	minOffset  int64
	maxOffset  int64
	msgs       []*MessageExt
	brokerAddr string
}

// pull sends one PULL_MESSAGE. commit < 0 means no offset piggy-back.
// timeout > 0 bounds the wait for the answer with a pooled timer (no
// context per pull).
func pull(ctx context.Context, rc *remoting.Client, addr, group string, mq MessageQueue, offset int64, max int,
	sub string, commit int64, suspend, timeout time.Duration) (*pullResult, error) {
	flag := pullFlagSubscription
	if suspend > 0 {
		flag |= pullFlagSuspend
	}
	if commit >= 0 {
		flag |= pullFlagCommit
	} else {
		commit = 0
	}
	if sub == "" {
		sub = "*"
	}
	req := remoting.NewTypedRequest(protocol.ReqPullMessage, &remoting.PullHeader{ConsumerGroup: group, Topic: mq.Topic, QueueID: int32(mq.QueueID),
		QueueOffset: offset, MaxMsgNums: int32(max), SysFlag: int32(flag), CommitOffset: commit,
		SuspendTimeoutMillis: suspend.Milliseconds(), Subscription: sub,
		ExpressionType: remoting.ExpressionTypeTag, BrokerName: mq.BrokerName}, nil)
	resp, err := rc.InvokeTimeout(ctx, addr, req, timeout)
	if err != nil {
		return nil, err
	}
	r := &pullResult{code: resp.Code, brokerAddr: addr}
	switch resp.Code {
	case protocol.RespSuccess, protocol.RespPullNotFound, protocol.RespPullRetryImmediately, protocol.RespPullOffsetMoved:
	default:
		return nil, brokerErr(addr, resp)
	}
	if r.next, err = resp.Int64("nextBeginOffset"); err != nil {
		return nil, fmt.Errorf("client: pull answer from %s: %w", addr, err)
	}
	r.minOffset, _ = resp.Int64Or("minOffset", 0)
	r.maxOffset, _ = resp.Int64Or("maxOffset", 0)
	if resp.Code == protocol.RespSuccess {
		if r.msgs, err = decodePulled(resp.Body, mq); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// tagFilter matches a message's tag against a TAG subscription ("*" or
// "A || B").
type tagFilter map[string]bool

func parseTagExpr(expr string) (tagFilter, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		return nil, nil
	}
	f := tagFilter{}
	for _, t := range strings.Split(expr, "||") {
		t = strings.TrimSpace(t)
		if t == "" || t == "*" {
			return nil, fmt.Errorf("%w: subscription expression %q", ErrInvalidOption, expr)
		}
		f[t] = true
	}
	return f, nil
}

func (f tagFilter) match(tag string) bool { return f == nil || f[tag] }

func (f tagFilter) tags() []string {
	out := make([]string, 0, len(f))
	for t := range f {
		out = append(out, t)
	}
	return out
}

// offsetCall sends an offset request (14, 15, 29, 30) and returns the
// answer's "offset" (-1 when the broker has none).
func offsetCall(ctx context.Context, rc *remoting.Client, addr string, code int16, ext map[string]string) (int64, error) {
	resp, err := rc.Invoke(ctx, addr, remoting.NewRequest(code, ext, nil))
	if err != nil {
		return 0, err
	}
	if code == protocol.ReqQueryConsumerOffset && resp.Code == protocol.RespQueryNotFound {
		return -1, nil
	}
	if resp.Code != protocol.RespSuccess {
		return 0, brokerErr(addr, resp)
	}
	if code == protocol.ReqUpdateConsumerOffset {
		return 0, nil
	}
	return resp.Int64("offset")
}

func queueExt(mq MessageQueue) map[string]string {
	return map[string]string{"topic": mq.Topic, "queueId": itoa(mq.QueueID), "bname": mq.BrokerName}
}
