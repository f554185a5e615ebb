package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/idempotence"
	"github.com/ferrymq/ferry/protocol"
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
//
// dedupWindows holds the keys, their journal and filter, and sweeps them.
type dedupWindows struct {
	topics  *topicTable
	meta    *metaStore
	clog    *commitlog.Log
	metrics *metrics
	log     zerolog.Logger
	host    func() netip.AddrPort // the advertised address, of message ids
	// snapMu is the producer snapshot's lock (idempotent.go), held for
	// reading from a dedup send's lookup to the recording of its keys.
	snapMu *sync.RWMutex
	// repl answers stored sends and says when a new master's replicated
	// state is applied (eos_replica.go); set once replication is built.
	repl *replication

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

// window is the dedup window of msgs' topic, 0 when off.
func (s *dedupWindows) window(msgs []commitlog.Message) time.Duration {
	tc, ok := s.topics.get(dedupTopic(&msgs[0]))
	if !ok {
		return 0
	}
	return time.Duration(tc.DedupWindowMs) * time.Millisecond
}

// claim registers keys as in flight, first waiting for any send of
// one of them that is in flight already.
func (s *dedupWindows) claim(keys []string) chan struct{} {
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

func (s *dedupWindows) release(keys []string, mine chan struct{}) {
	s.mu.Lock()
	for _, k := range keys {
		if s.pending[k] == mine {
			delete(s.pending, k)
		}
	}
	s.mu.Unlock()
	close(mine)
}

// store appends the messages of msgs not stored within window and
// calls answer with where every message is (the earlier copy for a
// duplicate), or with the error. flushErr is ErrFlushTimeout when the new
// messages were stored but not synced in time. The new keys are in
// memory before answer is called, while they are still claimed, so a
// copy racing in finds them; they reach the metadata store with the
// next batch of keys, written after answer returns.
func (s *dedupWindows) store(msgs []commitlog.Message, window time.Duration, answer func(out []dedupStored, flushErr, err error)) {
	if err := s.repl.producerStateReady(); err != nil { // eos_replica.go
		answer(nil, nil, err)
		return
	}
	d := &dedupSpan{topic: msgs[0].Topic, keys: dedupKeys(msgs)}
	d.mine = s.claim(d.keys)
	defer s.release(d.keys, d.mine)
	full := false
	func() {
		s.snapMu.RLock()
		defer s.snapMu.RUnlock()
		if err := s.check(d, window); err != nil {
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
			if res, err = s.clog.Append(fresh, nil); len(res) != len(fresh) {
				answer(nil, nil, err)
				return
			}
			flushErr = err
		}
		full = s.record([]sendSpan{{size: len(fresh), dd: d}}, res, fresh)
		d.resolveDups()
		if n := len(msgs) - len(fresh); n > 0 {
			s.metrics.duplicates.WithLabelValues("dedup_window").Add(float64(n))
		}
		answer(d.out, flushErr, nil)
	}()
	if full {
		if err := s.flush(); err != nil {
			s.log.Warn().Err(err).Str("topic", d.topic).Msg("record dedup keys")
		}
	}
}

// find finds key stored since notBefore (unix ms): in memory, or,
// unless the filter rules it out, in the metadata store.
func (s *dedupWindows) find(key string, notBefore int64) (dedupStored, bool, error) {
	if v, ok := s.memLookup(key); ok {
		st, ok := decodeDedupValue(v[:], notBefore)
		return st, ok, nil
	}
	if !s.filter.mayContain(key) {
		return dedupStored{}, false, nil
	}
	return s.lookup(key, notBefore)
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

// lookup finds key in the metadata store, stored since notBefore
// (unix ms).
func (s *dedupWindows) lookup(key string, notBefore int64) (dedupStored, bool, error) {
	v, closer, err := s.meta.db.Get([]byte(key))
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

// replay records the key of a replayed record of a topic with a
// dedup window, if the record is still inside it and memory does not
// hold it already; it reports whether the keys in memory are due to be
// written.
func (s *dedupWindows) replay(rec *protocol.Record, off int64, now time.Time) bool {
	topic := string(rec.Topic)
	if topic == protocol.ScheduleTopic || topic == protocol.TimerTopic {
		if t, ok := protocol.Property(rec.Properties, protocol.PropRealTopic); ok {
			topic = t
		}
	}
	tc, ok := s.topics.get(topic)
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
	s.mu.Lock()
	have, inMem := s.mem[key]
	s.mu.Unlock()
	if inMem && have == v {
		return false // recorded by the send that stored it, or replayed before
	}
	if !inMem && s.filter != nil && s.filter.mayContain(key) {
		if old, closer, err := s.meta.db.Get([]byte(key)); err == nil {
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

// sweep drops the keys older than their topic's window from memory,
// the journal and the store. The key filter is rebuilt from the dd keys
// kept.
func (s *dedupWindows) sweep(now time.Time) error {
	if err := s.sweepMem(now); err != nil { // dedupmem.go
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
		return s.meta.scan(dedupPrefix, func(k, v []byte) error {
			rest := string(k[len(dedupPrefix):])
			topic, _, _ := strings.Cut(rest, "\x00")
			tc, ok := s.topics.get(topic)
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
	batch := s.meta.db.NewBatch()
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
	return s.meta.db.Apply(batch, pebble.NoSync)
}

// loadFilter builds the key filter from the keys in the store
// (after the replay of the log put back what a crash lost).
func (s *dedupWindows) loadFilter() error {
	n := 0
	if err := s.meta.scan(dedupPrefix, func(_, _ []byte) error { n++; return nil }); err != nil {
		return err
	}
	s.filter = newKeyFilter()
	s.kept.Store(int64(n))
	return s.filter.rebuild(n, func(add func(string)) error {
		return s.meta.scan(dedupPrefix, func(k, _ []byte) error { add(string(k)); return nil })
	})
}

// storeResults is store for the HTTP API: the results as
// append results (the flush timeout as the error, as Append reports it).
func (s *dedupWindows) storeResults(msgs []commitlog.Message, window time.Duration) ([]commitlog.AppendResult, []dedupStored, error) {
	var out []dedupStored
	var flushErr, err error
	s.store(msgs, window, func(o []dedupStored, f, e error) { out, flushErr, err = o, f, e })
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
