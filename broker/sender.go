package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// sender checks and stores the messages of every path that writes them:
// the send handlers, the HTTP produce, transactions, idempotent batches,
// send-backs and the redelivery of due messages. It finds (or creates)
// the topic a message goes to, reroutes a delayed or dead message
// (special.go), appends to the log and builds the send answer.
type sender struct {
	cfg         func() *Config // the configuration in force
	log         zerolog.Logger
	clog        *commitlog.Log
	topics      *topicTable
	groups      *groupTable
	metrics     *metrics
	delayLevels int                   // how many delay levels there are
	storeHost   func() netip.AddrPort // the broker's address, known once it listens
	// writable says why sends are refused, or "" when they are accepted.
	writable func() string
	// checkTopic refuses a client's send to a system topic (systopics.go).
	checkTopic func(topic, properties string) error
}

// checkWritable refuses a write while the broker does not accept sends.
func (s *sender) checkWritable() error {
	if why := s.writable(); why != "" {
		return fmt.Errorf("%w: %s", ErrNotWritable, why)
	}
	return nil
}

// resolveSendTopic finds the topic a send goes to, creating it when
// auto-creation allows, and checks the queue id.
func (s *sender) resolveSendTopic(h *sendHeader) (TopicConfig, error) {
	if err := ValidateTopic(h.topic); err != nil {
		return TopicConfig{}, err
	}
	if err := s.checkTopic(h.topic, h.properties); err != nil {
		return TopicConfig{}, err
	}
	tc, ok := s.topics.get(h.topic)
	if !ok {
		var err error
		switch {
		case strings.HasPrefix(h.topic, protocol.RetryTopicPrefix):
			tc, err = s.ensureGroupTopic(h.topic)
		case s.cfg().AutoCreateTopic && !protocol.IsReservedTopic(h.topic):
			tpl, ok := s.topics.get(orDefault(h.defaultTopic, protocol.AutoCreateTopicTemplate))
			if !ok || !protocol.PermInheritable(tpl.Perm) {
				tpl, _ = s.topics.get(protocol.AutoCreateTopicTemplate)
			}
			n := tpl.WriteQueueNums
			if n <= 0 {
				// No template yet: a replica that was just elected stores
				// it after it takes writes. The template is made from this.
				n = s.cfg().DefaultTopicQueueNums
			}
			if h.defaultQueueNums > 0 && h.defaultQueueNums < n {
				n = h.defaultQueueNums
			}
			tc, err = s.topics.ensure(TopicConfig{TopicName: h.topic, ReadQueueNums: n, WriteQueueNums: n,
				Perm: int32(protocol.PermRead | protocol.PermWrite)})
			if err == nil {
				s.log.Info().Str("topic", h.topic).Int32("queues", n).Msg("topic auto-created")
			}
		default:
			return TopicConfig{}, fmt.Errorf("%w: topic[%s] not exist, apply first please", ErrTopicNotFound, h.topic)
		}
		if err != nil {
			return TopicConfig{}, err
		}
	}
	if !protocol.PermWritable(tc.Perm) {
		return tc, fmt.Errorf("%w: the topic[%s] sending is forbidden", ErrNoPermission, h.topic)
	}
	nq := max(tc.WriteQueueNums, tc.ReadQueueNums)
	if h.queueID < 0 {
		h.queueID = rand.Int32N(tc.WriteQueueNums)
	} else if h.queueID >= nq {
		return tc, fmt.Errorf("%w: request queueId[%d] is illegal, topic %s has %d queues", ErrQueueIllegal, h.queueID, h.topic, nq)
	}
	return tc, nil
}

// ensureGroupTopic creates a %RETRY% or %DLQ% topic (one queue) on demand.
func (s *sender) ensureGroupTopic(topic string) (TopicConfig, error) {
	return s.topics.ensure(groupTopicConfig(topic))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// groupTopicConfig is the config of a group's %RETRY% or %DLQ% topic.
func groupTopicConfig(topic string) TopicConfig {
	return TopicConfig{TopicName: topic, ReadQueueNums: 1, WriteQueueNums: 1,
		Perm: int32(protocol.PermRead | protocol.PermWrite), TopicFilterType: remoting.TopicFilterSingleTag}
}

var resPool = sync.Pool{New: func() any { s := make([]commitlog.AppendResult, 0, 64); return &s }}

// store appends msgs and builds the send response.
func (s *sender) store(req *remoting.Command, msgs []commitlog.Message) (resp *remoting.Command) {
	s.appendMessages(msgs, func(res []commitlog.AppendResult, err error) {
		resp = s.sendResponse(req, msgs, res, err)
	})
	return resp
}

// appendMessages appends msgs in one go, logs a failure, and calls answer
// with their results (nil unless every message was appended) and the
// error. The results come from a pool: answer must not keep them.
func (s *sender) appendMessages(msgs []commitlog.Message, answer func(res []commitlog.AppendResult, err error)) {
	rp := resPool.Get().(*[]commitlog.AppendResult)
	defer resPool.Put(rp)
	res, err := s.clog.Append(msgs, (*rp)[:0])
	*rp = res
	if err != nil && !errors.Is(err, commitlog.ErrFlushTimeout) {
		s.log.Warn().Err(err).Str("topic", msgs[0].Topic).Msg("send failed")
	}
	if len(res) != len(msgs) {
		res = nil
	}
	answer(res, err)
}

// sendResponse answers a send whose msgs were appended as res (nil when
// the append failed with err).
func (s *sender) sendResponse(req *remoting.Command, msgs []commitlog.Message, res []commitlog.AppendResult, err error) *remoting.Command {
	code := int16(protocol.RespSuccess)
	remark := ""
	if err == nil && (len(msgs) == 0 || len(res) != len(msgs)) {
		// handleSends never groups a request without messages, and a
		// successful append answers every message: a broken invariant,
		// answered as an error rather than a panic after the store.
		err = fmt.Errorf("broker: %d messages appended as %d results", len(msgs), len(res))
	}
	if err != nil {
		if errors.Is(err, commitlog.ErrFlushTimeout) && res != nil {
			code, remark = protocol.RespFlushDiskTimeout, err.Error()
		} else {
			code, remark = sendError(err)
			return remoting.NewResponse(req, code, remark)
		}
	}
	out := remoting.NewResponse(req, code, remark)
	var ids strings.Builder
	host := s.storeHost()
	for i, r := range res {
		if i > 0 {
			ids.WriteByte(',')
		}
		ids.WriteString(protocol.OffsetMsgID(host, r.Offset))
	}
	rh := &remoting.SendResponseHeader{MsgID: ids.String(), QueueID: msgs[0].QueueID,
		QueueOffset: res[0].QueueOffset, MsgRegion: "DefaultRegion", TraceOn: "true"}
	if msgs[0].Topic == protocol.TransHalfTopic {
		rh.TransactionID, _ = protocol.Property(msgs[0].Properties, protocol.PropUniqKey)
	}
	out.Header = rh
	var bytes int
	for i := range msgs {
		bytes += len(msgs[i].Body)
	}
	s.metrics.messagesIn(msgs[0].Topic, len(msgs), bytes)
	return out
}
