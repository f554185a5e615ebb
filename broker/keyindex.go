package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
)

// keyIndex indexes messages by their KEYS (space separated) and UNIQ_KEY,
// fed by the consume-queue dispatcher. It is derived state, rebuilt with
// the consume queues. Keys in the metadata database (part of the format):
//
//	k/<topic>\x00<key>\x00<store ms uint64 BE><commitlog offset uint64 BE> → size uint32 BE
//	u/<uniq key>                                                           → commitlog offset ‖ size
type keyIndex struct {
	db *pebble.DB
}

var _ consumequeue.Listener = (*keyIndex)(nil)

func keyIndexKey(topic, key string, ts, off int64) []byte {
	b := make([]byte, 0, 2+len(topic)+len(key)+18)
	b = append(b, "k/"...)
	b = append(b, topic...)
	b = append(b, 0)
	b = append(b, key...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	return binary.BigEndian.AppendUint64(b, uint64(off))
}

// Dispatch indexes a batch (no sync: it is rebuilt from the log).
func (k *keyIndex) Dispatch(batch []consumequeue.Record) error {
	var b *pebble.Batch
	var v [12]byte
	for i := range batch {
		r := &batch[i]
		keys, _ := commitlog.Property(r.Properties, commitlog.PropKeys)
		uniq, _ := commitlog.Property(r.Properties, commitlog.PropUniqKey)
		if keys == "" && uniq == "" {
			continue
		}
		if b == nil {
			b = k.db.NewBatch()
		}
		binary.BigEndian.PutUint64(v[:], uint64(r.Offset))
		binary.BigEndian.PutUint32(v[8:], uint32(r.Size))
		for _, key := range strings.Fields(keys) {
			if err := b.Set(keyIndexKey(string(r.Topic), key, r.StoreTimestamp, r.Offset), v[8:], nil); err != nil {
				b.Close()
				return err
			}
		}
		if uniq != "" {
			if err := b.Set(append([]byte("u/"), uniq...), v[:], nil); err != nil {
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

// lookupKey returns up to max commitlog (offset, size) pairs of topic's
// messages with key, stored in [begin, end] ms, newest last.
func (k *keyIndex) lookupKey(topic, key string, begin, end int64, max int) ([][2]int64, error) {
	lo := keyIndexKey(topic, key, begin, 0)
	hi := keyIndexKey(topic, key, end, -1)
	it, err := k.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][2]int64
	for ok := it.First(); ok && len(out) < max; ok = it.Next() {
		kb := it.Key()
		if len(kb) < 16 || len(it.Value()) != 4 {
			continue
		}
		out = append(out, [2]int64{int64(binary.BigEndian.Uint64(kb[len(kb)-8:])), int64(binary.BigEndian.Uint32(it.Value()))})
	}
	return out, it.Error()
}

func (k *keyIndex) lookupUniq(id string) (int64, int32, bool, error) {
	v, closer, err := k.db.Get(append([]byte("u/"), id...))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	defer closer.Close()
	if len(v) != 12 {
		return 0, 0, false, fmt.Errorf("broker: malformed uniq index entry for %s", id)
	}
	return int64(binary.BigEndian.Uint64(v)), int32(binary.BigEndian.Uint32(v[8:])), true, nil
}

// ErrMessageNotFound says no stored message matches.
var ErrMessageNotFound = errors.New("broker: message not found")

// MessageByID returns the raw stored record of a message id: an offset id
// (from a send response) or a client id (UNIQ_KEY).
func (b *Broker) MessageByID(id string) ([]byte, error) {
	if _, off, err := commitlog.ParseOffsetMsgID(id); err == nil {
		if rec, raw, err := b.clog.ReadRecord(off, nil); err == nil && rec.PhysicalOffset == off {
			return raw, nil
		}
	}
	off, size, ok, err := b.keys.lookupUniq(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no message with id %s", ErrMessageNotFound, id)
	}
	raw, err := b.clog.Read(off, size, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: message %s is no longer stored: %v", ErrMessageNotFound, id, err)
	}
	return raw, nil
}

// MessagesByKey returns raw records of topic whose KEYS contain key,
// stored between begin and end (ms, inclusive).
func (b *Broker) MessagesByKey(topic, key string, begin, end int64, max int) ([][]byte, error) {
	if end <= 0 {
		end = 1<<63 - 1
	}
	if max <= 0 || max > 1000 {
		max = 1000
	}
	locs, err := b.keys.lookupKey(topic, key, begin, end, max)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, l := range locs {
		raw, err := b.clog.Read(l[0], int32(l[1]), nil)
		if err != nil {
			continue // expired with its segment
		}
		if rec, err := commitlog.Decode(raw); err == nil && bytes.Equal(rec.Topic, []byte(topic)) {
			out = append(out, raw)
		}
	}
	return out, nil
}
