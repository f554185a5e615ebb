package broker

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// multiState is the reusable memory of one FERRY_SEND_MULTI request.
type multiState struct {
	entries []protocol.MultiEntry
	results []protocol.MultiResult
	msgs    []commitlog.Message
	at      []int // at[k] is the entry of msgs[k]
}

var multiPool = sync.Pool{New: func() any { return new(multiState) }}

func (s *multiState) reset() {
	clear(s.entries)
	clear(s.results)
	clear(s.msgs)
	s.entries, s.results, s.msgs, s.at = s.entries[:0], s.results[:0], s.msgs[:0], s.at[:0]
}

// handleSendMulti serves FERRY_SEND_MULTI (the protocol package documents
// it): the messages that pass their checks are stored with one append, in
// body order, and every message gets its own result.
func (b *Broker) handleSendMulti(c *remoting.Conn, req *remoting.Command) {
	if why := b.writable(); why != "" {
		b.reply(c, req, protocol.RespServiceNotAvailable, "service not available now: "+why)
		return
	}
	st := multiPool.Get().(*multiState)
	defer func() { st.reset(); multiPool.Put(st) }()
	var err error
	if st.entries, err = protocol.DecodeMulti(req.Body, st.entries); err != nil {
		b.reply(c, req, protocol.RespMessageIllegal, err.Error())
		return
	}
	born := parseAddrPort(c.RemoteAddr())
	group := req.ExtFields["a"]
	for i := range st.entries {
		st.results = append(st.results, protocol.MultiResult{})
		m, err := b.prepareMultiEntry(&st.entries[i], group, born)
		if err != nil {
			r := &st.results[i]
			r.Code, r.Text = sendError(err)
			r.QueueID = st.entries[i].QueueID
			continue
		}
		st.msgs = append(st.msgs, m)
		st.at = append(st.at, i)
	}
	if len(st.msgs) > 0 {
		b.appendMessages(st.msgs, func(res []commitlog.AppendResult, err error) {
			b.multiResults(st, res, err)
		})
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	var body []byte
	for i := range st.results {
		body = protocol.AppendMultiResult(body, &st.results[i])
	}
	resp.Body = body
	_ = c.Reply(resp)
}

// prepareMultiEntry checks one message of a multi-queue batch as a single
// send of it would be checked, and returns it ready to append.
func (b *Broker) prepareMultiEntry(e *protocol.MultiEntry, group string, born netip.AddrPort) (commitlog.Message, error) {
	h := sendHeader{producerGroup: group, topic: e.Topic, queueID: e.QueueID, flag: e.Flag,
		bornTimestamp: e.BornTimestamp, properties: string(e.Properties)}
	if _, err := b.resolveSendTopic(&h); err != nil {
		return commitlog.Message{}, err
	}
	m := commitlog.Message{Topic: h.topic, QueueID: h.queueID, Flag: h.flag, Body: e.Body,
		Properties: e.Properties, BornTimestamp: h.bornTimestamp, BornHost: born, StoreHost: b.storeHost}
	if err := b.routeSpecial(&m, &h); err != nil {
		return commitlog.Message{}, err
	}
	if _, err := m.EncodedSize(b.cfg.MaxMessageSize); err != nil {
		return commitlog.Message{}, err
	}
	if b.dedupWindow([]commitlog.Message{m}) > 0 {
		return commitlog.Message{}, fmt.Errorf("%w: topic %s deduplicates by key: send its messages with SEND_MESSAGE", ErrInvalidRequest, m.Topic)
	}
	return m, nil
}

// multiResults fills the results of the appended messages.
func (b *Broker) multiResults(st *multiState, res []commitlog.AppendResult, err error) {
	stored := len(res) == len(st.msgs) && (err == nil || errors.Is(err, commitlog.ErrFlushTimeout))
	if !stored && err == nil {
		err = fmt.Errorf("broker: %d messages appended as %d results", len(st.msgs), len(res))
	}
	for k := range st.msgs {
		m := &st.msgs[k]
		r := &st.results[st.at[k]]
		r.QueueID = m.QueueID
		if !stored {
			r.Code, r.Text = sendError(err)
			continue
		}
		r.Code = protocol.RespSuccess
		if err != nil {
			r.Code = protocol.RespFlushDiskTimeout
		}
		r.QueueOffset = res[k].QueueOffset
		r.Text = protocol.OffsetMsgID(b.storeHost, res[k].Offset)
		b.metrics.messagesIn(m.Topic, 1, len(m.Body))
	}
}
