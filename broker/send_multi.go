package broker

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

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
	dedup   []multiDedup
}

// multiDedup is a message of a topic with a dedup window, stored on its own
// after the batch's append (the dedup windows store one topic at a time).
type multiDedup struct {
	at     int
	m      commitlog.Message
	window time.Duration
}

var multiPool = sync.Pool{New: func() any { return new(multiState) }}

func (s *multiState) reset() {
	clear(s.entries)
	clear(s.results)
	clear(s.msgs)
	clear(s.dedup)
	s.entries, s.results, s.msgs, s.at, s.dedup = s.entries[:0], s.results[:0], s.msgs[:0], s.at[:0], s.dedup[:0]
}

// handleSendMulti serves FERRY_SEND_MULTI (the protocol package documents
// it): the messages that pass their checks are stored with one append, in
// body order, and every message gets its own result.
func (ch *clientHandlers) handleSendMulti(c *remoting.Conn, req *remoting.Command) {
	if why := ch.b.writable(); why != "" {
		reply(c, req, protocol.RespServiceNotAvailable, "service not available now: "+why)
		return
	}
	st := multiPool.Get().(*multiState)
	defer func() { st.reset(); multiPool.Put(st) }()
	var err error
	if st.entries, err = protocol.DecodeMulti(req.Body, st.entries); err != nil {
		reply(c, req, protocol.RespMessageIllegal, err.Error())
		return
	}
	born := parseAddrPort(c.RemoteAddr())
	group := req.StringOr("a", "")
	for i := range st.entries {
		st.results = append(st.results, protocol.MultiResult{})
		m, err := ch.prepareMultiEntry(&st.entries[i], group, born)
		if err != nil {
			r := &st.results[i]
			r.Code, r.Text = sendError(err)
			r.QueueID = st.entries[i].QueueID
			continue
		}
		if w := ch.b.dedup.window([]commitlog.Message{m}); w > 0 {
			st.dedup = append(st.dedup, multiDedup{at: i, m: m, window: w})
			continue
		}
		st.msgs = append(st.msgs, m)
		st.at = append(st.at, i)
	}
	if len(st.msgs) > 0 {
		ch.b.sender.appendMessages(st.msgs, func(res []commitlog.AppendResult, err error) {
			ch.multiResults(st, res, err)
		})
	}
	for _, d := range st.dedup {
		ch.b.dedup.store([]commitlog.Message{d.m}, d.window, func(out []dedupStored, flushErr, err error) {
			r := &st.results[d.at]
			r.QueueID = d.m.QueueID
			if err != nil {
				r.Code, r.Text = sendError(err)
				return
			}
			r.Code = protocol.RespSuccess
			if flushErr != nil {
				r.Code = protocol.RespFlushDiskTimeout
			}
			r.QueueID, r.QueueOffset = out[0].QueueID, out[0].QueueOffset
			r.Text = protocol.OffsetMsgID(ch.b.storeHost, out[0].CommitlogOffset)
			if !out[0].Dup {
				ch.b.metrics.messagesIn(d.m.Topic, 1, len(d.m.Body))
			}
		})
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	var body []byte
	for i := range st.results {
		body = protocol.AppendMultiResult(body, &st.results[i])
	}
	resp.Body = body
	// A batch over several topics waits as the group's ack mode says.
	ch.b.repl.replyAfterWrite(c, req, resp, "") // replication.go
}

// prepareMultiEntry checks one message of a multi-queue batch as a single
// send of it would be checked, and returns it ready to append.
func (ch *clientHandlers) prepareMultiEntry(e *protocol.MultiEntry, group string, born netip.AddrPort) (commitlog.Message, error) {
	h := sendHeader{producerGroup: group, topic: e.Topic, queueID: e.QueueID, flag: e.Flag,
		bornTimestamp: e.BornTimestamp, properties: string(e.Properties)}
	if _, err := ch.b.sender.resolveSendTopic(&h); err != nil {
		return commitlog.Message{}, err
	}
	m := commitlog.Message{Topic: h.topic, QueueID: h.queueID, Flag: h.flag, Body: e.Body,
		Properties: e.Properties, BornTimestamp: h.bornTimestamp, BornHost: born, StoreHost: ch.b.storeHost}
	if _, err := ch.b.txn.routeHalf(&m, &h, true); err != nil { // transaction.go: no halves in a batch
		return commitlog.Message{}, err
	}
	if err := ch.b.sender.routeSpecial(&m, &h); err != nil {
		return commitlog.Message{}, err
	}
	if _, err := m.EncodedSize(ch.b.cfg.MaxMessageSize); err != nil {
		return commitlog.Message{}, err
	}
	return m, nil
}

// multiResults fills the results of the appended messages.
func (ch *clientHandlers) multiResults(st *multiState, res []commitlog.AppendResult, err error) {
	stored := len(res) == len(st.msgs) && (err == nil || errors.Is(err, commitlog.ErrFlushTimeout))
	if !stored && err == nil {
		err = fmt.Errorf("broker: %d messages appended as %d results", len(st.msgs), len(res))
	}
	// The metrics are counted per run of one topic, not per message.
	var topic string
	var n, bytes int
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
		r.Text = protocol.OffsetMsgID(ch.b.storeHost, res[k].Offset)
		if m.Topic != topic && n > 0 {
			ch.b.metrics.messagesIn(topic, n, bytes)
			n, bytes = 0, 0
		}
		topic = m.Topic
		n++
		bytes += len(m.Body)
	}
	if n > 0 {
		ch.b.metrics.messagesIn(topic, n, bytes)
	}
}
