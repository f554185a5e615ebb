package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// keyIndex indexes messages by their KEYS (space separated) and UNIQ_KEY,
// fed by the consume-queue dispatcher. It is derived state, rebuilt with
// the consume queues. Keys in the metadata database (part of the format)
// begin with the hour the message was stored in, so that retention drops
// whole hours of index with the log segments they point into:
//
//	kt/<hour uint32 BE><topic>\x00<key>\x00<store ms uint64 BE><commitlog offset uint64 BE> → size uint32 BE
//	ut/<hour uint32 BE><uniq key>                                                         → commitlog offset ‖ size
//
// hour is the store timestamp in ms divided by bucketMs (an hour). A
// lookup by key visits the hours of its time range that hold entries; a
// lookup by unique key probes them newest first.
type keyIndex struct {
	db       *pebble.DB
	bucketMs atomic.Int64 // an hour; tests shorten it
}

const (
	keyPrefix  = "kt/"
	uniqPrefix = "ut/"
	// legacy prefixes of the index before it was bucketed by hour; their
	// entries are dropped when the broker opens.
	legacyKeyPrefix  = "k/"
	legacyUniqPrefix = "u/"
)

var _ consumequeue.Listener = (*keyIndex)(nil)

func newKeyIndex(db *pebble.DB) (*keyIndex, error) {
	for _, p := range []string{legacyKeyPrefix, legacyUniqPrefix} {
		if !hasPrefix(db, p) {
			continue // no range tombstone on every start
		}
		if err := db.DeleteRange([]byte(p), prefixEnd(p), pebble.NoSync); err != nil {
			return nil, fmt.Errorf("broker: drop the old key index: %w", err)
		}
	}
	k := &keyIndex{db: db}
	k.bucketMs.Store(time.Hour.Milliseconds())
	return k, nil
}

// hasPrefix reports whether db holds a key starting with p.
func hasPrefix(db *pebble.DB, p string) bool {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(p), UpperBound: prefixEnd(p)})
	if err != nil {
		return true // let DeleteRange try, and report
	}
	defer it.Close()
	return it.First()
}

func (k *keyIndex) bucket(ms int64) uint32 {
	if ms < 0 {
		return 0
	}
	return uint32(min(ms/k.bucketMs.Load(), math.MaxUint32))
}

func bucketKey(prefix string, b uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(prefix), b)
}

// bucketOf returns the hour of an index key with prefix, or false.
func bucketOf(prefix string, key []byte) (uint32, bool) {
	if len(key) < len(prefix)+4 || string(key[:len(prefix)]) != prefix {
		return 0, false
	}
	return binary.BigEndian.Uint32(key[len(prefix):]), true
}

func keyIndexKey(b uint32, topic, key string, ts, off int64) []byte {
	out := make([]byte, 0, len(keyPrefix)+4+len(topic)+len(key)+18)
	out = append(out, keyPrefix...)
	out = binary.BigEndian.AppendUint32(out, b)
	out = append(out, topic...)
	out = append(out, 0)
	out = append(out, key...)
	out = append(out, 0)
	out = binary.BigEndian.AppendUint64(out, uint64(ts))
	return binary.BigEndian.AppendUint64(out, uint64(off))
}

func uniqIndexKey(b uint32, id string) []byte {
	return append(bucketKey(uniqPrefix, b), id...)
}

// Dispatch indexes a batch without a sync: Sync makes it durable, and
// until then the consume queues' checkpoint stays behind it. Feeding a
// record again sets the same keys to the same values, so replays after a
// crash are harmless.
func (k *keyIndex) Dispatch(batch []consumequeue.Record) error {
	var b *pebble.Batch
	var v [12]byte
	for i := range batch {
		r := &batch[i]
		keys, _ := protocol.Property(r.Properties, protocol.PropKeys)
		uniq, _ := protocol.Property(r.Properties, protocol.PropUniqKey)
		if keys == "" && uniq == "" {
			continue
		}
		if b == nil {
			b = k.db.NewBatch()
		}
		hour := k.bucket(r.StoreTimestamp)
		binary.BigEndian.PutUint64(v[:], uint64(r.Offset))
		binary.BigEndian.PutUint32(v[8:], uint32(r.Size))
		for _, key := range strings.Fields(keys) {
			if err := b.Set(keyIndexKey(hour, string(r.Topic), key, r.StoreTimestamp, r.Offset), v[8:], nil); err != nil {
				b.Close()
				return err
			}
		}
		if uniq != "" {
			if err := b.Set(uniqIndexKey(hour, uniq), v[:], nil); err != nil {
				b.Close()
				return err
			}
		}
	}
	if b == nil {
		return nil
	}
	defer b.Close()
	return k.db.Apply(b, pebble.NoSync)
}

// Sync makes every batch dispatched so far durable (one write-ahead log
// sync of the metadata database).
func (k *keyIndex) Sync() error {
	return k.db.LogData(nil, pebble.Sync)
}

// prune drops the index of every hour before the one of beforeMs: the
// hours whose messages retention has deleted.
func (k *keyIndex) prune(beforeMs int64) error {
	hour := k.bucket(beforeMs)
	for _, p := range []string{keyPrefix, uniqPrefix} {
		if err := k.db.DeleteRange([]byte(p), bucketKey(p, hour), pebble.NoSync); err != nil {
			return err
		}
	}
	return nil
}

// lookupKey returns up to max commitlog (offset, size) pairs of topic's
// messages with key, stored in [begin, end] ms, oldest first.
func (k *keyIndex) lookupKey(topic, key string, begin, end int64, max int) ([][2]int64, error) {
	it, err := k.db.NewIter(&pebble.IterOptions{LowerBound: []byte(keyPrefix), UpperBound: prefixEnd(keyPrefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][2]int64
	last := k.bucket(end)
	for hour := k.bucket(begin); len(out) < max; hour++ {
		// Jump to the next hour that holds entries.
		if !it.SeekGE(bucketKey(keyPrefix, hour)) {
			break
		}
		h, ok := bucketOf(keyPrefix, it.Key())
		if !ok || h > last {
			break
		}
		hour = h
		hi := keyIndexKey(hour, topic, key, end, -1)
		for ok := it.SeekGE(keyIndexKey(hour, topic, key, begin, 0)); ok && len(out) < max; ok = it.Next() {
			kb := it.Key()
			if bytes.Compare(kb, hi) > 0 {
				break
			}
			if len(kb) < 16 || len(it.Value()) != 4 {
				continue
			}
			out = append(out, [2]int64{int64(binary.BigEndian.Uint64(kb[len(kb)-8:])), int64(binary.BigEndian.Uint32(it.Value()))})
		}
		if hour == math.MaxUint32 {
			break
		}
	}
	return out, it.Error()
}

// lookupUniq finds a unique key in the hours that hold entries, newest
// first.
func (k *keyIndex) lookupUniq(id string) (int64, int32, bool, error) {
	it, err := k.db.NewIter(&pebble.IterOptions{LowerBound: []byte(uniqPrefix), UpperBound: prefixEnd(uniqPrefix)})
	if err != nil {
		return 0, 0, false, err
	}
	defer it.Close()
	for ok := it.Last(); ok; {
		hour, valid := bucketOf(uniqPrefix, it.Key())
		if !valid {
			break
		}
		want := uniqIndexKey(hour, id)
		if it.SeekGE(want) && bytes.Equal(it.Key(), want) {
			v := it.Value()
			if len(v) != 12 {
				return 0, 0, false, fmt.Errorf("broker: malformed uniq index entry for %s", id)
			}
			return int64(binary.BigEndian.Uint64(v)), int32(binary.BigEndian.Uint32(v[8:])), true, nil
		}
		// The newest entry of an earlier hour.
		ok = it.SeekLT(bucketKey(uniqPrefix, hour))
	}
	return 0, 0, false, it.Error()
}

// ErrMessageNotFound says no stored message matches.
var ErrMessageNotFound = errors.New("broker: message not found")
