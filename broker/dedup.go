package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/idempotence"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// The dedup window of a topic (TopicConfig.DedupWindowMs) serves clients
// that carry no sequence: within the window, a message whose idempotency
// key (protocol.PropIdempotencyKey, from HTTP's Idempotency-Key header)
// or else client message id (UNIQ_KEY) was stored before is not stored
// again, and the original result is returned.
//
// The keys are held in memory and journaled in the metadata store
// (dedupmem.go); the keys memory cannot hold, and those left from before
// the journal, are in the store one by one (part of the format):
//
//	dd/<topic>\x00<key> → store ms uint64 BE ‖ queue id uint32 BE ‖ queue offset uint64 BE ‖ commitlog offset uint64 BE
//
// written without sync, swept once a minute, and looked up only when the
// key filter does not rule the key out. Memory also holds the keys of
// sends in flight (pending), so that two copies of one message racing on
// two connections wait for each other instead of both being stored.
// Lock order: snapMu, flushMu, mu; mu is never held while waiting,
// appending or writing to the store.
type dedupState struct {
	mu         sync.Mutex
	pending    map[string]chan struct{} // dd key → closed when its send is answered; guarded by mu
	mem        map[string]dedupValue    // the keys in their windows, up to memKeys; guarded by mu
	order      []string                 // mem's keys, oldest first from head (and keys gone since); guarded by mu
	head       int                      // guarded by mu
	journal    []byte                   // keys recorded since the last journal write; guarded by mu
	journalN   int                      // guarded by mu
	journalExp int64                    // when journal's last key leaves its window (unix ms); guarded by mu
	memKeys    int                      // keys memory holds; 0: dedupMemKeys; guarded by mu
	flushMu    sync.Mutex               // one write of keys at a time
	seq        uint64                   // the next journal value's sequence; guarded by flushMu
	journals   []journalValue           // journal values written; guarded by flushMu
	written    map[string]bool          // dd keys written while a sweep runs; guarded by flushMu
	filter     *keyFilter               // the dd keys in the store (dedupfilter.go)
	kept       atomic.Int64             // dd keys the last sweep kept: the next filter's size
}

// dedupValue is a key's value in the metadata store.
type dedupValue [28]byte

const dedupPrefix = "dd/"

// maxDedupWindow bounds a topic's dedup window.
const maxDedupWindow = 7 * 24 * time.Hour

// dedupStored is where one message of a dedup send went.
type dedupStored struct {
	idempotence.Stored
	QueueID int32
	Dup     bool // stored by an earlier send
}

func dedupKey(topic, key string) string { return dedupPrefix + topic + "\x00" + key }

// messageDedupKey is the key a message is deduplicated by, or "".
func messageDedupKey(props []byte) string {
	if k, ok := protocol.Property(props, protocol.PropIdempotencyKey); ok && k != "" {
		return k
	}
	k, _ := protocol.Property(props, protocol.PropUniqKey)
	return k
}

// dedupTopic is the topic whose window applies to m: its real topic when
// the message was routed to the delay service.
func dedupTopic(m *commitlog.Message) string {
	if m.Topic == protocol.ScheduleTopic || m.Topic == protocol.TimerTopic {
		if t, ok := protocol.Property(m.Properties, protocol.PropRealTopic); ok {
			return t
		}
	}
	return m.Topic
}

// dedupWindow is the dedup window of msgs' topic, 0 when off.
func (b *Broker) dedupWindow(msgs []commitlog.Message) time.Duration {
	tc, ok := b.topics.get(dedupTopic(&msgs[0]))
	if !ok {
		return 0
	}
	return time.Duration(tc.DedupWindowMs) * time.Millisecond
}

// claimDedup registers keys as in flight, first waiting for any send of
// one of them that is in flight already.
func (s *dedupState) claim(keys []string) chan struct{} {
	mine := make(chan struct{})
	for {
		s.mu.Lock()
		var busy chan struct{}
		for _, k := range keys {
			if ch, ok := s.pending[k]; ok && k != "" {
				busy = ch
				break
			}
		}
		if busy == nil {
			if s.pending == nil {
				s.pending = make(map[string]chan struct{})
			}
			for _, k := range keys {
				if k != "" {
					s.pending[k] = mine
				}
			}
			s.mu.Unlock()
			return mine
		}
		s.mu.Unlock()
		<-busy
	}
}

func (s *dedupState) release(keys []string, mine chan struct{}) {
	s.mu.Lock()
	for _, k := range keys {
		if s.pending[k] == mine {
			delete(s.pending, k)
		}
	}
	s.mu.Unlock()
	close(mine)
}

// appendDedup appends the messages of msgs not stored within window and
// calls answer with where every message is (the earlier copy for a
// duplicate), or with the error. flushErr is ErrFlushTimeout when the new
// messages were stored but not synced in time. The new keys are in
// memory before answer is called, while they are still claimed, so a
// copy racing in finds them; they reach the metadata store with the
// next batch of keys, written after answer returns.
func (b *Broker) appendDedup(msgs []commitlog.Message, window time.Duration, answer func(out []dedupStored, flushErr, err error)) {
	if err := b.producerStateReady(); err != nil { // eos_replica.go
		answer(nil, nil, err)
		return
	}
	d := &dedupSpan{topic: msgs[0].Topic, keys: dedupKeys(msgs)}
	d.mine = b.dedup.claim(d.keys)
	defer b.dedup.release(d.keys, d.mine)
	full := false
	func() {
		b.idem.snapMu.RLock()
		defer b.idem.snapMu.RUnlock()
		if err := b.checkDedup(d, window); err != nil {
			answer(nil, nil, err)
			return
		}
		fresh := make([]commitlog.Message, len(d.freshAt))
		for j, i := range d.freshAt {
			fresh[j] = msgs[i]
		}
		var res []commitlog.AppendResult
		var flushErr error
		if len(fresh) > 0 {
			var err error
			if res, err = b.clog.Append(fresh, nil); len(res) != len(fresh) {
				answer(nil, nil, err)
				return
			}
			flushErr = err
		}
		full = b.recordDedup([]sendSpan{{size: len(fresh), dd: d}}, res, fresh)
		d.resolveDups()
		if n := len(msgs) - len(fresh); n > 0 {
			b.metrics.duplicates.WithLabelValues("dedup_window").Add(float64(n))
		}
		answer(d.out, flushErr, nil)
	}()
	if full {
		if err := b.flushDedup(); err != nil {
			b.log.Warn().Err(err).Str("topic", d.topic).Msg("record dedup keys")
		}
	}
}

// findDedup finds key stored since notBefore (unix ms): in memory, or,
// unless the filter rules it out, in the metadata store.
func (b *Broker) findDedup(key string, notBefore int64) (dedupStored, bool, error) {
	s := &b.dedup
	if v, ok := s.memLookup(key); ok {
		st, ok := decodeDedupValue(v[:], notBefore)
		return st, ok, nil
	}
	if !s.filter.mayContain(key) {
		return dedupStored{}, false, nil
	}
	return b.lookupDedup(key, notBefore)
}

func putDedupValue(v []byte, storeMs int64, st dedupStored) {
	be := binary.BigEndian
	be.PutUint64(v, uint64(storeMs))
	be.PutUint32(v[8:], uint32(st.QueueID))
	be.PutUint64(v[12:], uint64(st.QueueOffset))
	be.PutUint64(v[20:], uint64(st.CommitlogOffset))
}

// decodeDedupValue reads a key's value; ok is false when it is not one
// or was stored before notBefore (unix ms).
func decodeDedupValue(v []byte, notBefore int64) (dedupStored, bool) {
	if len(v) != 28 {
		return dedupStored{}, false // not ours: store the message
	}
	be := binary.BigEndian
	if int64(be.Uint64(v)) < notBefore {
		return dedupStored{}, false
	}
	return dedupStored{Stored: idempotence.Stored{QueueOffset: int64(be.Uint64(v[12:])), CommitlogOffset: int64(be.Uint64(v[20:]))},
		QueueID: int32(be.Uint32(v[8:])), Dup: true}, true
}

// lookupDedup finds key in the metadata store, stored since notBefore
// (unix ms).
func (b *Broker) lookupDedup(key string, notBefore int64) (dedupStored, bool, error) {
	v, closer, err := b.meta.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return dedupStored{}, false, nil
	}
	if err != nil {
		return dedupStored{}, false, fmt.Errorf("broker: dedup lookup: %w", err)
	}
	defer closer.Close()
	st, ok := decodeDedupValue(v, notBefore)
	return st, ok, nil
}

// replayDedup records the key of a replayed record of a topic with a
// dedup window, if the record is still inside it and memory does not
// hold it already; it reports whether the keys in memory are due to be
// written.
func (b *Broker) replayDedup(rec *protocol.Record, off int64, now time.Time) bool {
	topic := string(rec.Topic)
	if topic == protocol.ScheduleTopic || topic == protocol.TimerTopic {
		if t, ok := protocol.Property(rec.Properties, protocol.PropRealTopic); ok {
			topic = t
		}
	}
	tc, ok := b.topics.get(topic)
	if !ok || tc.DedupWindowMs <= 0 || rec.StoreTimestamp < now.UnixMilli()-tc.DedupWindowMs {
		return false
	}
	k := messageDedupKey(rec.Properties)
	if k == "" {
		return false
	}
	var v dedupValue
	putDedupValue(v[:], rec.StoreTimestamp, dedupStored{Stored: idempotence.Stored{CommitlogOffset: off, QueueOffset: rec.QueueOffset}, QueueID: rec.QueueID})
	key := dedupKey(topic, k)
	s := &b.dedup
	s.mu.Lock()
	have, inMem := s.mem[key]
	s.mu.Unlock()
	if inMem && have == v {
		return false // recorded by the send that stored it, or replayed before
	}
	if !inMem && s.filter != nil && s.filter.mayContain(key) {
		if old, closer, err := b.meta.db.Get([]byte(key)); err == nil {
			same := string(old) == string(v[:])
			closer.Close()
			if same {
				return false // moved out of memory to the store
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordLocked(key, v, rec.StoreTimestamp+tc.DedupWindowMs)
}

// sweepDedup drops the keys older than their topic's window from memory,
// the journal and the store. The key filter is rebuilt from the dd keys
// kept.
func (b *Broker) sweepDedup(now time.Time) error {
	s := &b.dedup
	if err := b.sweepDedupMem(now); err != nil { // dedupmem.go
		return err
	}
	defer func() { s.flushMu.Lock(); s.written = nil; s.flushMu.Unlock() }()
	var gone [][]byte
	kept := 0
	err := s.filter.rebuild(int(s.kept.Load()), func(add func(string)) error {
		// Keys written from here on (moved out of memory) may be written
		// again after the scan saw their old value: they are not deleted.
		s.flushMu.Lock()
		s.written = make(map[string]bool)
		s.flushMu.Unlock()
		return b.meta.scan(dedupPrefix, func(k, v []byte) error {
			rest := string(k[len(dedupPrefix):])
			topic, _, _ := strings.Cut(rest, "\x00")
			tc, ok := b.topics.get(topic)
			if ok && len(v) == 28 && int64(binary.BigEndian.Uint64(v)) >= now.UnixMilli()-tc.DedupWindowMs {
				add(string(k))
				kept++
				return nil
			}
			gone = append(gone, slices.Clone(k))
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.kept.Store(int64(kept))
	batch := b.meta.db.NewBatch()
	defer batch.Close()
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for _, k := range gone {
		if s.written[string(k)] {
			continue // stored again since the scan
		}
		if err := batch.Delete(k, nil); err != nil {
			return err
		}
	}
	return b.meta.db.Apply(batch, pebble.NoSync)
}

// loadDedupFilter builds the key filter from the keys in the store
// (after the replay of the log put back what a crash lost).
func (b *Broker) loadDedupFilter() error {
	n := 0
	if err := b.meta.scan(dedupPrefix, func(_, _ []byte) error { n++; return nil }); err != nil {
		return err
	}
	b.dedup.filter = newKeyFilter()
	b.dedup.kept.Store(int64(n))
	return b.dedup.filter.rebuild(n, func(add func(string)) error {
		return b.meta.scan(dedupPrefix, func(k, _ []byte) error { add(string(k)); return nil })
	})
}

// appendDedupResults is appendDedup for the HTTP API: the results as
// append results (the flush timeout as the error, as Append reports it).
func (b *Broker) appendDedupResults(msgs []commitlog.Message, window time.Duration) ([]commitlog.AppendResult, []dedupStored, error) {
	var out []dedupStored
	var flushErr, err error
	b.appendDedup(msgs, window, func(o []dedupStored, f, e error) { out, flushErr, err = o, f, e })
	if err != nil {
		return nil, nil, err
	}
	res := make([]commitlog.AppendResult, len(out))
	for i, o := range out {
		res[i] = commitlog.AppendResult{Offset: o.CommitlogOffset, QueueOffset: o.QueueOffset}
	}
	return res, out, flushErr
}

// maxIdempotencyKeyLen bounds HTTP's Idempotency-Key header.
const maxIdempotencyKeyLen = 255

// setIdempotencyKeys gives msgs an HTTP request's Idempotency-Key header
// as their idempotency key: the key itself for a request of one message,
// key#i for message i of a batch (idx[j] is msgs[j]'s place in it).
func setIdempotencyKeys(key string, msgs []commitlog.Message, idx []int, batch bool) error {
	if key == "" {
		return nil
	}
	if len(key) > maxIdempotencyKeyLen || !protocol.ValidPropertyText(key) {
		return fmt.Errorf("%w: Idempotency-Key must be 1 to %d bytes without \\x01 or \\x02", protocol.ErrHTTPBadInput, maxIdempotencyKeyLen)
	}
	for i := range msgs {
		k := key
		if batch {
			k = key + "#" + strconv.Itoa(idx[i])
		}
		msgs[i].Properties = protocol.AppendProperty(slices.Clip(msgs[i].Properties), protocol.PropIdempotencyKey, k)
	}
	return nil
}

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
func (s *dedupState) tryClaim(keys []string) chan struct{} {
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

// checkDedup looks up the claimed keys of d's messages and decides which
// are new. The caller holds idem.snapMu for reading.
func (b *Broker) checkDedup(d *dedupSpan, window time.Duration) error {
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
			st, ok, err := b.findDedup(k, notBefore)
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

// recordDedup fills in where the new messages of the group's dedup spans
// went (res: the appended messages' results, starting at each span's
// first) and puts their keys in memory. It reports whether the keys in
// memory are due to be written.
func (b *Broker) recordDedup(spans []sendSpan, res []commitlog.AppendResult, msgs []commitlog.Message) (full bool) {
	s := &b.dedup
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

// answerDedup answers a dedup span of a group whose append gave res (the
// span's own results) and err.
func (b *Broker) answerDedup(c *remoting.Conn, sp sendSpan, msgs []commitlog.Message, res []commitlog.AppendResult, err error) {
	d := sp.dd
	if sp.size > 0 && (res == nil || (err != nil && !errors.Is(err, commitlog.ErrFlushTimeout))) {
		if err == nil {
			err = fmt.Errorf("broker: %d messages appended as %d results", sp.size, len(res))
		}
		code, remark := sendError(err)
		b.reply(c, sp.req, code, remark)
		return
	}
	d.resolveDups()
	if dups := len(d.keys) - sp.size; dups > 0 {
		b.metrics.duplicates.WithLabelValues("dedup_window").Add(float64(dups))
	}
	stored := make([]idempotence.Stored, len(d.out))
	allDup := true
	for i := range d.out {
		stored[i] = d.out[i].Stored
		allDup = allDup && d.out[i].Dup
	}
	resp := b.resultResponse(sp.req, d.out[0].QueueID, stored, allDup)
	if sp.size > 0 {
		if err != nil {
			resp.Code, resp.Remark = protocol.RespFlushDiskTimeout, err.Error()
		}
		bytes := 0
		for _, m := range msgs[sp.first : sp.first+sp.size] {
			bytes += len(m.Body)
		}
		b.metrics.messagesIn(d.topic, sp.size, bytes)
	}
	b.repl.replyAfterWrite(c, sp.req, resp, d.topic) // replication.go
}

// resolveDups gives each message whose key an earlier message of the
// request has that message's place.
func (d *dedupSpan) resolveDups() {
	for i, j := range d.dupOf {
		d.out[i] = d.out[j]
		d.out[i].Dup = true
	}
}

// groupDedup adds the request whose messages are msgs[first:], to a topic
// with a dedup window, to the group: it claims their keys, looks them up
// and keeps only the new messages in msgs. A key in flight (maybe in this
// very group) makes it answer the group so far first, then wait for the
// key: it never waits holding the snapshot lock or keys.
func (b *Broker) groupDedup(c *remoting.Conn, g *sendGroup, req *remoting.Command, msgs []commitlog.Message, spans []sendSpan,
	first int, window time.Duration) ([]commitlog.Message, []sendSpan) {
	if err := b.producerStateReady(); err != nil { // eos_replica.go
		clear(msgs[first:])
		code, remark := sendError(err)
		b.reply(c, req, code, remark)
		return msgs[:first], spans
	}
	d := &dedupSpan{topic: msgs[first].Topic, keys: dedupKeys(msgs[first:])}
	if d.mine = b.dedup.tryClaim(d.keys); d.mine == nil {
		b.appendGroup(c, g, msgs[:first], spans) // send.go
		n := copy(msgs, msgs[first:])
		clear(msgs[n:])
		msgs, first = msgs[:n], 0
		clear(spans)
		spans = spans[:0]
		d.mine = b.dedup.claim(d.keys)
	}
	if !g.snap {
		b.idem.snapMu.RLock()
		g.snap = true
	}
	if err := b.checkDedup(d, window); err != nil {
		b.dedup.release(d.keys, d.mine)
		clear(msgs[first:])
		b.log.Warn().Err(err).Str("topic", d.topic).Msg("send failed")
		code, remark := sendError(err)
		b.reply(c, req, code, remark)
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
func (g *sendGroup) done(b *Broker, spans []sendSpan, full bool) {
	for _, sp := range spans {
		if sp.dd != nil {
			b.dedup.release(sp.dd.keys, sp.dd.mine)
		}
	}
	if g.snap {
		b.idem.snapMu.RUnlock()
		g.snap = false
	}
	if full {
		if err := b.flushDedup(); err != nil {
			b.log.Warn().Err(err).Msg("record dedup keys")
		}
	}
}
