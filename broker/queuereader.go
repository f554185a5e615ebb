package broker

import (
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// queueReader reads what consumers get: a queue's bounds, the messages of
// a pull (remoting or HTTP) from the consume queue and the log, and the
// answer to a pull from what is there now.
type queueReader struct {
	cfg     func() *Config // the configuration in force (pull limits)
	log     zerolog.Logger
	clog    *commitlog.Log
	cq      *consumequeue.Store
	metrics *metrics
	// suggest names the replica a consumer should pull from next
	// (replication_status.go).
	suggest func(whichSlow, first int64) int64
}

// minOffset is the queue's first offset still backed by the log; an index
// read error is logged and counts as 0.
func (r *queueReader) minOffset(topic string, q int32) int64 {
	off, err := r.cq.MinOffset(topic, q)
	if err != nil {
		r.log.Error().Err(err).Str("topic", topic).Int32("queue_id", q).Msg("min offset")
	}
	return off
}

// youngQueue reports a queue whose first entry is still at 0 and recent
// enough to be in memory (within hotBytes of the log's end).
func (r *queueReader) youngQueue(topic string, q int32) bool {
	if r.minOffset(topic, q) > 0 {
		return false
	}
	if r.cq.MaxOffset(topic, q) == 0 {
		return true
	}
	es, err := r.cq.Get(topic, q, 0, 1, nil)
	if err != nil || len(es) == 0 {
		return false
	}
	return r.clog.WrittenOffset()-es[0].Offset < hotBytes()
}

var entryPool = sync.Pool{New: func() any { s := make([]consumequeue.Entry, 0, 64); return &s }}

// pullOnce answers a pull from what is there now. empty reports an answer
// that found nothing new at the end of the queue (PULL_NOT_FOUND), which a
// suspending request may wait on.
func (r *queueReader) pullOnce(req *remoting.Command, p *pullRequest, filter tagFilter) (*remoting.Command, bool) {
	minOff := r.minOffset(p.topic, p.queueID)
	maxOff := r.cq.MaxOffset(p.topic, p.queueID)
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	next := p.offset
	code := int16(protocol.RespSuccess)
	empty := false
	first := int64(-1) // commitlog offset of the first message read
	switch {
	case maxOff == 0:
		if p.offset != 0 {
			code, next = protocol.RespPullOffsetMoved, 0
		} else {
			code, empty = protocol.RespPullNotFound, true
		}
	case p.offset < minOff:
		code, next = protocol.RespPullOffsetMoved, minOff
	case p.offset == maxOff:
		code, empty = protocol.RespPullNotFound, true
	case p.offset > maxOff:
		code, next = protocol.RespPullOffsetMoved, maxOff
	default:
		var body []byte
		var n int
		var err error
		body, n, next, first, err = r.readMessagesFrom(p, filter, maxOff)
		switch {
		case err != nil:
			code = protocol.RespSystemError
			resp.Remark = err.Error()
			r.log.Error().Err(err).Str("topic", p.topic).Int32("queue_id", p.queueID).Int64("offset", p.offset).Msg("pull failed")
		case n == 0:
			code = protocol.RespPullRetryImmediately
		default:
			resp.Body = body
			r.metrics.messagesOut(p.topic, p.group, n, len(body))
		}
	}
	resp.Code = code
	resp.Header = &remoting.PullResponseHeader{NextBeginOffset: next, MinOffset: minOff, MaxOffset: maxOff,
		SuggestWhichBrokerID: r.suggest(p.whichSlow, first)}
	return resp, empty
}

// readMessages reads up to the pull's limits of matching messages from
// p.offset, returning the body, the count and the next offset to pull.
func (r *queueReader) readMessages(p *pullRequest, filter tagFilter, maxOff int64) ([]byte, int, int64, error) {
	body, n, next, _, err := r.readMessagesFrom(p, filter, maxOff)
	return body, n, next, err
}

// readMessagesFrom is readMessages that also returns the commitlog offset
// of the first message read (-1 when none was).
func (r *queueReader) readMessagesFrom(p *pullRequest, filter tagFilter, maxOff int64) ([]byte, int, int64, int64, error) {
	first := int64(-1)
	want := p.maxMsgs
	if want <= 0 {
		want = 1 // a Java store returns one message for maxMsgNums 0
	}
	want = min(want, r.cfg().PullMaxMessages)
	ep := entryPool.Get().(*[]consumequeue.Entry)
	defer entryPool.Put(ep)
	var body []byte
	n := 0
	next := p.offset
	scanned := 0
	// Scan at most a bounded window of entries per pull so a selective tag
	// filter cannot make one pull read a whole queue.
	const scanLimit = 16384
	for n < want && next < maxOff && scanned < scanLimit {
		entries, err := r.cq.Get(p.topic, p.queueID, next, min(want*4, 512), (*ep)[:0])
		if err != nil {
			return nil, 0, p.offset, -1, err
		}
		*ep = entries
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if n >= want || (n > 0 && len(body)+int(e.Size) > r.cfg().PullMaxBytes) {
				return body, n, next, first, nil
			}
			scanned++
			if !filter.match(e.TagsCode) {
				next++
				continue
			}
			start := len(body)
			body = append(body, make([]byte, e.Size)...)
			if err := r.clog.ReadAt(body[start:], e.Offset); err != nil {
				if n > 0 {
					return body[:start], n, next, first, nil
				}
				return nil, 0, p.offset, -1, fmt.Errorf("read message at commitlog offset %d: %w", e.Offset, err)
			}
			if n == 0 {
				first = e.Offset
			}
			n++
			next++
		}
	}
	return body, n, next, first, nil
}
