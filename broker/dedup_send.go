package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/idempotence"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// dedupSpan is a send request to a topic with a dedup window within a
// group of requests appended together (handleSends): its claimed keys and
// where each of its messages is, filled in by the group's append.
type dedupSpan struct {
	topic    string
	windowMs int64
	keys     []string // per message, "" when it has no key
	mine     chan struct{}
	out      []dedupStored
	freshAt  []int       // the request's messages appended (the others are duplicates)
	dupOf    map[int]int // a message whose key an earlier one of the request has → that one
}

// tryClaim is claim without waiting: nil when a key is in flight.
func (s *dedupWindows) tryClaim(keys []string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if _, ok := s.pending[k]; ok && k != "" {
			return nil
		}
	}
	if s.pending == nil {
		s.pending = make(map[string]chan struct{})
	}
	mine := make(chan struct{})
	for _, k := range keys {
		if k != "" {
			s.pending[k] = mine
		}
	}
	return mine
}

// dedupKeys are the keys msgs are deduplicated by.
func dedupKeys(msgs []commitlog.Message) []string {
	topic := dedupTopic(&msgs[0])
	keys := make([]string, len(msgs))
	for i := range msgs {
		if k := messageDedupKey(msgs[i].Properties); k != "" {
			keys[i] = dedupKey(topic, k)
		}
	}
	return keys
}

// check looks up the claimed keys of d's messages and decides which
// are new. The caller holds snapMu for reading.
func (s *dedupWindows) check(d *dedupSpan, window time.Duration) error {
	d.windowMs = window.Milliseconds()
	notBefore := time.Now().UnixMilli() - d.windowMs
	d.out = make([]dedupStored, len(d.keys))
	d.freshAt = make([]int, 0, len(d.keys))
	var seen map[string]int
	for i, k := range d.keys {
		if k != "" {
			if len(d.keys) > 1 {
				if seen == nil {
					seen, d.dupOf = make(map[string]int, len(d.keys)), make(map[int]int)
				}
				if j, ok := seen[k]; ok {
					d.dupOf[i] = j
					continue
				}
				seen[k] = i
			}
			st, ok, err := s.find(k, notBefore)
			if err != nil {
				return err
			}
			if ok {
				d.out[i] = st
				continue
			}
		}
		d.freshAt = append(d.freshAt, i)
	}
	return nil
}

// record fills in where the new messages of the group's dedup spans
// went (res: the appended messages' results, starting at each span's
// first) and puts their keys in memory. It reports whether the keys in
// memory are due to be written.
func (s *dedupWindows) record(spans []sendSpan, res []commitlog.AppendResult, msgs []commitlog.Message) (full bool) {
	some := false
	for _, sp := range spans {
		d := sp.dd
		if d == nil {
			continue
		}
		for j, i := range d.freshAt {
			r := res[sp.first+j]
			d.out[i] = dedupStored{Stored: idempotence.Stored{CommitlogOffset: r.Offset, QueueOffset: r.QueueOffset}, QueueID: msgs[sp.first+j].QueueID}
			some = some || d.keys[i] != ""
		}
	}
	if !some {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range spans {
		d := sp.dd
		if d == nil {
			continue
		}
		for j, i := range d.freshAt {
			if d.keys[i] != "" {
				var v dedupValue
				ms := res[sp.first+j].StoreTimestamp
				putDedupValue(v[:], ms, d.out[i])
				full = s.recordLocked(d.keys[i], v, ms+d.windowMs) || full
			}
		}
	}
	return full
}

// answer answers a dedup span of a group whose append gave res (the
// span's own results) and err.
func (s *dedupWindows) answer(c *remoting.Conn, sp sendSpan, msgs []commitlog.Message, res []commitlog.AppendResult, err error) {
	d := sp.dd
	if sp.size > 0 && (res == nil || (err != nil && !errors.Is(err, commitlog.ErrFlushTimeout))) {
		if err == nil {
			err = fmt.Errorf("broker: %d messages appended as %d results", sp.size, len(res))
		}
		code, remark := sendError(err)
		_ = c.Reply(remoting.NewResponse(sp.req, code, remark))
		return
	}
	d.resolveDups()
	if dups := len(d.keys) - sp.size; dups > 0 {
		s.metrics.duplicates.WithLabelValues("dedup_window").Add(float64(dups))
	}
	stored := make([]idempotence.Stored, len(d.out))
	allDup := true
	for i := range d.out {
		stored[i] = d.out[i].Stored
		allDup = allDup && d.out[i].Dup
	}
	resp := resultResponse(s.host(), sp.req, d.out[0].QueueID, stored, allDup)
	if sp.size > 0 {
		if err != nil {
			resp.Code, resp.Remark = protocol.RespFlushDiskTimeout, err.Error()
		}
		bytes := 0
		for _, m := range msgs[sp.first : sp.first+sp.size] {
			bytes += len(m.Body)
		}
		s.metrics.messagesIn(d.topic, sp.size, bytes)
	}
	s.repl.replyAfterWrite(c, sp.req, resp, d.topic) // replication.go
}

// resolveDups gives each message whose key an earlier message of the
// request has that message's place.
func (d *dedupSpan) resolveDups() {
	for i, j := range d.dupOf {
		d.out[i] = d.out[j]
		d.out[i].Dup = true
	}
}

// group adds the request whose messages are msgs[first:], to a topic
// with a dedup window, to the group g: it claims their keys, looks them up
// and keeps only the new messages in msgs. A key in flight (maybe in this
// very group) makes it answer the group so far first (appendGroup, the
// send path's), then wait for the key: it never waits holding the
// snapshot lock or keys.
func (s *dedupWindows) group(c *remoting.Conn, g *sendGroup, req *remoting.Command, msgs []commitlog.Message, spans []sendSpan,
	first int, window time.Duration, appendGroup func(msgs []commitlog.Message, spans []sendSpan)) ([]commitlog.Message, []sendSpan) {
	if err := s.repl.producerStateReady(); err != nil { // eos_replica.go
		clear(msgs[first:])
		code, remark := sendError(err)
		_ = c.Reply(remoting.NewResponse(req, code, remark))
		return msgs[:first], spans
	}
	d := &dedupSpan{topic: msgs[first].Topic, keys: dedupKeys(msgs[first:])}
	if d.mine = s.tryClaim(d.keys); d.mine == nil {
		appendGroup(msgs[:first], spans)
		n := copy(msgs, msgs[first:])
		clear(msgs[n:])
		msgs, first = msgs[:n], 0
		clear(spans)
		spans = spans[:0]
		d.mine = s.claim(d.keys)
	}
	if !g.snap {
		s.snapMu.RLock()
		g.snap = true
	}
	if err := s.check(d, window); err != nil {
		s.release(d.keys, d.mine)
		clear(msgs[first:])
		s.log.Warn().Err(err).Str("topic", d.topic).Msg("send failed")
		code, remark := sendError(err)
		_ = c.Reply(remoting.NewResponse(req, code, remark))
		return msgs[:first], spans
	}
	j := first
	for _, i := range d.freshAt {
		msgs[j] = msgs[first+i]
		j++
	}
	clear(msgs[j:])
	return msgs[:j], append(spans, sendSpan{req: req, first: first, size: j - first, dd: d})
}

// done lets go of what the group holds once its requests are answered:
// the keys of its dedup spans, the snapshot lock, and writes the keys in
// memory when full says they are due.
func (g *sendGroup) done(s *dedupWindows, spans []sendSpan, full bool) {
	for _, sp := range spans {
		if sp.dd != nil {
			s.release(sp.dd.keys, sp.dd.mine)
		}
	}
	if g.snap {
		s.snapMu.RUnlock()
		g.snap = false
	}
	if full {
		if err := s.flush(); err != nil {
			s.log.Warn().Err(err).Msg("record dedup keys")
		}
	}
}
