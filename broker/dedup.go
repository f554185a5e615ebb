package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/idempotence"
	"github.com/ferrymq/ferry/remoting"
)

// The dedup window of a topic (TopicConfig.DedupWindowMs) serves clients
// that carry no sequence: within the window, a message whose idempotency
// key (protocol.PropIdempotencyKey, from HTTP's Idempotency-Key header)
// or else client message id (UNIQ_KEY) was stored before is not stored
// again, and the original result is returned.
//
// The keys live in the metadata store, not in memory (part of the format):
//
//	dd/<topic>\x00<key> → store ms uint64 BE ‖ queue id uint32 BE ‖ queue offset uint64 BE ‖ commitlog offset uint64 BE
//
// written without sync right after the append (a crash in between is
// covered by the replay of the log after the producer snapshot, which
// puts the keys of recent messages back), and swept once a minute. Memory
// holds only the keys of sends in flight (pending), so that two copies of
// one message racing on two connections wait for each other instead of
// both being stored. Lock order: dedupState.mu alone; it is never held
// while waiting or appending.
type dedupState struct {
	mu      sync.Mutex
	pending map[string]chan struct{} // dd key → closed when its send is answered; guarded by mu
	filter  *keyFilter               // the keys in the store (dedupfilter.go)
	kept    atomic.Int64             // keys the last sweep kept: the next filter's size
}

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
// messages were stored but not synced in time. The new keys are written
// to the metadata store after answer returns, while they are still
// claimed (and snapMu still held), so a copy racing in waits for them but
// the answer does not.
func (b *Broker) appendDedup(msgs []commitlog.Message, window time.Duration, answer func(out []dedupStored, flushErr, err error)) {
	topic := dedupTopic(&msgs[0])
	keys := make([]string, len(msgs))
	for i := range msgs {
		if k := messageDedupKey(msgs[i].Properties); k != "" {
			keys[i] = dedupKey(topic, k)
		}
	}
	mine := b.dedup.claim(keys)
	defer b.dedup.release(keys, mine)
	b.idem.snapMu.RLock()
	defer b.idem.snapMu.RUnlock()

	out := make([]dedupStored, len(msgs))
	now := time.Now()
	fresh := make([]commitlog.Message, 0, len(msgs))
	freshAt := make([]int, 0, len(msgs))
	seen := make(map[string]int, len(msgs)) // a key twice in one request: stored once
	dupOf := make(map[int]int)
	for i, k := range keys {
		if k != "" {
			if j, ok := seen[k]; ok {
				dupOf[i] = j
				continue
			}
			seen[k] = i
			if !b.dedup.filter.mayContain(k) {
				fresh = append(fresh, msgs[i])
				freshAt = append(freshAt, i)
				continue
			}
			if st, ok, err := b.lookupDedup(k, now.Add(-window)); err != nil {
				answer(nil, nil, err)
				return
			} else if ok {
				out[i] = st
				continue
			}
		}
		fresh = append(fresh, msgs[i])
		freshAt = append(freshAt, i)
	}
	var flushErr error
	var batch *pebble.Batch
	if len(fresh) > 0 {
		res, aerr := b.clog.Append(fresh, nil)
		if len(res) != len(fresh) {
			answer(nil, nil, aerr)
			return
		}
		flushErr = aerr
		batch = b.meta.db.NewBatch()
		defer batch.Close()
		var v [28]byte
		for j, r := range res {
			i := freshAt[j]
			out[i] = dedupStored{Stored: idempotence.Stored{CommitlogOffset: r.Offset, QueueOffset: r.QueueOffset}, QueueID: fresh[j].QueueID}
			if keys[i] == "" {
				continue
			}
			putDedupValue(v[:], r.StoreTimestamp, out[i])
			b.dedup.filter.add(keys[i])
			if err := batch.Set([]byte(keys[i]), v[:], nil); err != nil {
				answer(nil, nil, err)
				return
			}
		}
	}
	for i, j := range dupOf {
		out[i] = out[j]
		out[i].Dup = true
	}
	if n := len(msgs) - len(fresh); n > 0 {
		b.metrics.duplicates.WithLabelValues("dedup_window").Add(float64(n))
	}
	answer(out, flushErr, nil)
	if batch != nil {
		if err := b.meta.db.Apply(batch, pebble.NoSync); err != nil {
			b.log.Warn().Err(err).Str("topic", topic).Msg("record dedup keys")
		}
	}
}

func putDedupValue(v []byte, storeMs int64, st dedupStored) {
	be := binary.BigEndian
	be.PutUint64(v, uint64(storeMs))
	be.PutUint32(v[8:], uint32(st.QueueID))
	be.PutUint64(v[12:], uint64(st.QueueOffset))
	be.PutUint64(v[20:], uint64(st.CommitlogOffset))
}

// lookupDedup finds key stored since notBefore.
func (b *Broker) lookupDedup(key string, notBefore time.Time) (dedupStored, bool, error) {
	v, closer, err := b.meta.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return dedupStored{}, false, nil
	}
	if err != nil {
		return dedupStored{}, false, fmt.Errorf("broker: dedup lookup: %w", err)
	}
	defer closer.Close()
	if len(v) != 28 {
		return dedupStored{}, false, nil // not ours: store the message
	}
	be := binary.BigEndian
	if int64(be.Uint64(v)) < notBefore.UnixMilli() {
		return dedupStored{}, false, nil
	}
	return dedupStored{Stored: idempotence.Stored{QueueOffset: int64(be.Uint64(v[12:])), CommitlogOffset: int64(be.Uint64(v[20:]))},
		QueueID: int32(be.Uint32(v[8:])), Dup: true}, true, nil
}

// replayDedup puts back the key of a replayed record of a topic with a
// dedup window, if the record is still inside it.
func (b *Broker) replayDedup(batch *pebble.Batch, rec *protocol.Record, off int64, now time.Time) error {
	topic := string(rec.Topic)
	if topic == protocol.ScheduleTopic || topic == protocol.TimerTopic {
		if t, ok := protocol.Property(rec.Properties, protocol.PropRealTopic); ok {
			topic = t
		}
	}
	tc, ok := b.topics.get(topic)
	if !ok || tc.DedupWindowMs <= 0 || rec.StoreTimestamp < now.UnixMilli()-tc.DedupWindowMs {
		return nil
	}
	k := messageDedupKey(rec.Properties)
	if k == "" {
		return nil
	}
	var v [28]byte
	putDedupValue(v[:], rec.StoreTimestamp, dedupStored{Stored: idempotence.Stored{CommitlogOffset: off, QueueOffset: rec.QueueOffset}, QueueID: rec.QueueID})
	return batch.Set([]byte(dedupKey(topic, k)), v[:], nil)
}

// sweepDedup deletes the keys older than their topic's window.
// The key filter is rebuilt from the keys kept.
func (b *Broker) sweepDedup(now time.Time) error {
	batch := b.meta.db.NewBatch()
	defer batch.Close()
	kept := 0
	err := b.dedup.filter.rebuild(int(b.dedup.kept.Load()), func(add func(string)) error {
		return b.meta.scan(dedupPrefix, func(k, v []byte) error {
			rest := string(k[len(dedupPrefix):])
			topic, _, _ := strings.Cut(rest, "\x00")
			tc, ok := b.topics.get(topic)
			if ok && len(v) == 28 && int64(binary.BigEndian.Uint64(v)) >= now.UnixMilli()-tc.DedupWindowMs {
				add(string(k))
				kept++
				return nil
			}
			return batch.Delete(k, nil)
		})
	})
	if err != nil {
		return err
	}
	b.dedup.kept.Store(int64(kept))
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

// sendDeduped stores and answers a send request to a topic with a dedup
// window and returns true; it returns false when the topic has none.
func (b *Broker) sendDeduped(c *remoting.Conn, req *remoting.Command, msgs []commitlog.Message) bool {
	w := b.dedupWindow(msgs)
	if w <= 0 {
		return false
	}
	b.appendDedup(msgs, w, func(out []dedupStored, flushErr, err error) {
		if err != nil {
			b.log.Warn().Err(err).Str("topic", msgs[0].Topic).Msg("send failed")
			code, remark := sendError(err)
			b.reply(c, req, code, remark)
			return
		}
		stored := make([]idempotence.Stored, len(out))
		allDup := true
		fresh, bytes := 0, 0
		for i := range out {
			stored[i] = out[i].Stored
			allDup = allDup && out[i].Dup
			if !out[i].Dup {
				fresh++
				bytes += len(msgs[i].Body)
			}
		}
		resp := b.resultResponse(req, out[0].QueueID, stored, allDup)
		if flushErr != nil {
			resp.Code, resp.Remark = protocol.RespFlushDiskTimeout, flushErr.Error()
		}
		if fresh > 0 {
			b.metrics.messagesIn(msgs[0].Topic, fresh, bytes)
		}
		b.repl.replyAfterWrite(c, req, resp, msgs[0].Topic) // replication.go
	})
	return true
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

// setIdempotencyKeys gives msgs the request's Idempotency-Key header as
// their idempotency key: the key itself for a request of one message,
// key#i for message i of a batch (idx[j] is msgs[j]'s place in it).
func setIdempotencyKeys(ctx *fasthttp.RequestCtx, msgs []commitlog.Message, idx []int, batch bool) error {
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if key == "" {
		return nil
	}
	if len(key) > maxIdempotencyKeyLen || !protocol.ValidPropertyText(key) {
		return fmt.Errorf("%w: Idempotency-Key must be 1 to %d bytes without \\x01 or \\x02", errBadInput, maxIdempotencyKeyLen)
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
