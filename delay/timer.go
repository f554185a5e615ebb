package delay

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

type timerKey struct {
	due int64 // ms
	off int64 // commitlog offset
}

var timerPrefix = []byte("w/")

func (k timerKey) bytes() []byte {
	b := make([]byte, 0, 18)
	b = append(b, timerPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(k.due))
	return binary.BigEndian.AppendUint64(b, uint64(k.off))
}

func parseTimerKey(b []byte) (timerKey, bool) {
	if len(b) != 18 || !bytes.HasPrefix(b, timerPrefix) {
		return timerKey{}, false
	}
	return timerKey{due: int64(binary.BigEndian.Uint64(b[2:])), off: int64(binary.BigEndian.Uint64(b[10:]))}, true
}

// TimerIndex is the index of messages with an arbitrary delivery time,
// fed by the consume-queue dispatcher (it is a consumequeue.Listener).
//
// It is idempotent for records fed again after a crash, as the listener
// contract asks: each batch that adds entries also records, in the same
// pebble batch, the log offset below which every timer record is indexed
// (keyTimerIndexed). Pebble recovers a prefix of its write-ahead log, so
// the entries and that offset survive together; a record below it is
// skipped (it is in the index, or was delivered and trimmed), a record at
// or above it is indexed, above the saved cursor if its due time is below
// it, so a record the crash took out of the index is still delivered.
type TimerIndex struct {
	db    *pebble.DB
	topic string

	// mu orders inserts against the deliverer's scans: an entry whose due
	// time is at or below floor (already scanned past) is moved just above
	// it, so a lagging dispatcher never hides a message behind the cursor.
	mu      sync.Mutex
	floor   int64
	indexed int64 // every timer record below this log offset is indexed
	ring    chan struct{}
}

// NewTimerIndex returns the index for records of topic, kept in db, over
// a log whose recovered end is logEnd. Its floor starts at the saved
// cursor's due time. Records the index saw past logEnd were lost with the
// log's unsynced tail (async flush), so the offsets from logEnd on will
// hold new records, and are indexed again.
func NewTimerIndex(db *pebble.DB, topic string, logEnd int64) (*TimerIndex, error) {
	t := &TimerIndex{db: db, topic: topic, ring: make(chan struct{}, 1)}
	cur, err := loadCursor(db)
	if err != nil {
		return nil, err
	}
	t.floor = cur.due
	indexed, _, err := getInt64(db, keyTimerIndexed)
	if err != nil {
		return nil, err
	}
	t.indexed = min(indexed, logEnd)
	return t, nil
}

var _ consumequeue.Listener = (*TimerIndex)(nil)

// Dispatch indexes the timer messages of a batch without a sync (Sync
// makes them durable; until then the consume queues' checkpoint stays
// behind them).
func (t *TimerIndex) Dispatch(batch []consumequeue.Record) error {
	var b *pebble.Batch
	t.mu.Lock()
	defer t.mu.Unlock()
	end := t.indexed
	for i := range batch {
		r := &batch[i]
		if string(r.Topic) != t.topic || r.Offset < t.indexed {
			continue
		}
		v, ok := protocol.Property(r.Properties, protocol.PropTimerDeliverMS)
		if !ok {
			continue
		}
		due, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue // the broker validated it; an unparsable one is not deliverable
		}
		if due <= t.floor {
			due = t.floor + 1
		}
		if b == nil {
			b = t.db.NewBatch()
		}
		var sz [4]byte
		binary.BigEndian.PutUint32(sz[:], uint32(r.Size))
		if err := b.Set(timerKey{due: due, off: r.Offset}.bytes(), sz[:], nil); err != nil {
			b.Close()
			return err
		}
		end = r.Offset + 1 // the next record starts later
	}
	if b == nil {
		return nil
	}
	defer b.Close()
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(end))
	if err := b.Set(keyTimerIndexed, v[:], nil); err != nil {
		return err
	}
	if err := t.db.Apply(b, pebble.NoSync); err != nil {
		return err
	}
	t.indexed = end
	select {
	case t.ring <- struct{}{}:
	default:
	}
	return nil
}

// Sync makes every entry indexed so far durable (one write-ahead log
// sync of the database).
func (t *TimerIndex) Sync() error {
	return t.db.LogData(nil, pebble.Sync)
}

func (t *TimerIndex) bell() <-chan struct{} { return t.ring }

// scan returns up to max keys from cur with due ≤ now, and the first key
// after them (zero when none). It raises the floor to the last key taken.
func (t *TimerIndex) scan(cur timerKey, now int64, limit int) ([]timerKey, timerKey, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: cur.bytes(), UpperBound: []byte("w0")})
	if err != nil {
		return nil, timerKey{}, err
	}
	defer it.Close()
	var keys []timerKey
	var next timerKey
	for ok := it.First(); ok; ok = it.Next() {
		k, valid := parseTimerKey(it.Key())
		if !valid {
			continue
		}
		if k.due > now || len(keys) >= limit {
			next = k
			break
		}
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		t.floor = max(t.floor, keys[len(keys)-1].due)
	}
	return keys, next, it.Error()
}

// deleteThrough removes delivered entries up to and including k.
func (t *TimerIndex) deleteThrough(k timerKey) error {
	end := timerKey{due: k.due, off: k.off + 1}.bytes()
	return t.db.DeleteRange(timerPrefix, end, pebble.NoSync)
}

// Count returns the number of pending timer entries (a full scan: for
// tests and admin views).
func (t *TimerIndex) Count() (int, error) {
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: timerPrefix, UpperBound: []byte("w0")})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Error()
}

// minOffset is the lowest commitlog offset of a timer entry at or after
// the cursor from (math.MaxInt64 when none). It scans those entries.
func (t *TimerIndex) minOffset(from timerKey) (int64, error) {
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: from.bytes(), UpperBound: []byte("w0")})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	m := int64(math.MaxInt64)
	for ok := it.First(); ok; ok = it.Next() {
		if k, valid := parseTimerKey(it.Key()); valid {
			m = min(m, k.off)
		}
	}
	return m, it.Error()
}
