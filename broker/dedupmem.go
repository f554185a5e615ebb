package broker

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The keys of the dedup windows are held in memory (dedupWindows.mem), up
// to dedupMemKeys of them, and made durable by a journal in the metadata
// store: the keys recorded since its last write, packed into one value
// (part of the format),
//
//	dj/<sequence uint64 BE> → { uvarint key length ‖ key ‖ 28-byte value (as dd/) }*
//
// written without sync once dedupJournalKeys keys wait and before each
// producer snapshot (the replay of the log after the snapshot records the
// keys of later messages again). One store write per 4096 keys, and one
// entry for the store to compact instead of 4096, is what makes a dedup
// window cheap. A journal value is deleted by the sweep once every key in
// it is past its window (as the window was when the key was recorded).
//
// When more keys are in their windows than memory holds, the oldest go
// to the store one by one (dd/, dedup.go) and the key filter, and are
// looked up there; so do keys left from before this format.
//
// Memory per key: the key (dd/ + topic + NUL + UNIQ_KEY: ~40 B for a
// short topic), its map slot (string header 16 B + value 28 B, at 7/8
// load) and its place in the eviction order (16 B): about 130 B, so at
// most ~65 MiB for dedupMemKeys, plus the journal not yet written.
const (
	dedupJournalPrefix = "dj/"
	dedupMemKeys       = 1 << 19
	dedupJournalKeys   = 4096
)

// journalValue is one written journal value: its key and when its last
// key leaves its window.
type journalValue struct {
	key     []byte
	expires int64 // unix ms
}

func journalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(dedupJournalPrefix), seq)
}

// recordLocked puts key, stored as v and deduplicated until expires
// (unix ms), in memory and in the journal. It reports whether a write of
// the journal (or of keys memory cannot hold) is due. The caller holds mu.
func (s *dedupWindows) recordLocked(key string, v dedupValue, expires int64) bool {
	if s.mem == nil {
		s.mem = make(map[string]dedupValue)
	}
	s.mem[key] = v
	s.order = append(s.order, key)
	s.journal = binary.AppendUvarint(s.journal, uint64(len(key)))
	s.journal = append(s.journal, key...)
	s.journal = append(s.journal, v[:]...)
	s.journalN++
	s.journalExp = max(s.journalExp, expires)
	return s.journalN >= dedupJournalKeys || len(s.mem) > s.capacity()
}

// capacity is how many keys memory holds.
func (s *dedupWindows) capacity() int {
	if s.memKeys > 0 {
		return s.memKeys
	}
	return dedupMemKeys
}

// memLookup finds key in memory.
func (s *dedupWindows) memLookup(key string) (dedupValue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.mem[key]
	return v, ok
}

// flush writes the journal and moves the keys memory cannot hold
// to the store (without sync).
func (s *dedupWindows) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	type victim struct {
		key string
		v   dedupValue
	}
	s.mu.Lock()
	journal, n, exp := s.journal, s.journalN, s.journalExp
	s.journal, s.journalN, s.journalExp = nil, 0, 0
	var out []victim
	for len(s.mem)-len(out) > s.capacity() && s.head < len(s.order) {
		k := s.order[s.head]
		s.order[s.head] = ""
		s.head++
		if v, ok := s.mem[k]; ok {
			out = append(out, victim{k, v})
		}
	}
	if s.head > len(s.order)/2 {
		s.order = slices.Clip(s.order[s.head:])
		s.head = 0
	}
	s.mu.Unlock()
	if n == 0 && len(out) == 0 {
		return nil
	}
	batch := s.meta.db.NewBatch()
	defer batch.Close()
	var err error
	var jv journalValue
	if n > 0 {
		jv = journalValue{key: journalKey(s.seq), expires: exp}
		err = batch.Set(jv.key, journal, nil)
	}
	for _, o := range out {
		if err != nil {
			break
		}
		s.filter.add(o.key) // before it leaves memory
		if err = batch.Set([]byte(o.key), o.v[:], nil); err == nil && s.written != nil {
			s.written[o.key] = true
		}
	}
	if err == nil {
		err = s.meta.db.Apply(batch, pebble.NoSync)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// The journal is written with the next one; the keys that were to
		// leave memory stay there until their window ends.
		s.journal = append(journal, s.journal...)
		s.journalN += n
		s.journalExp = max(s.journalExp, exp)
		return fmt.Errorf("broker: write dedup keys: %w", err)
	}
	if n > 0 {
		s.seq++
		s.journals = append(s.journals, jv)
	}
	for _, o := range out {
		if s.mem[o.key] == o.v {
			delete(s.mem, o.key)
		}
	}
	return nil
}

// topicOfDedupKey is the topic of a dd/ key.
func topicOfDedupKey(k string) string {
	topic, _, _ := strings.Cut(k[len(dedupPrefix):], "\x00")
	return topic
}

// sweepMem drops the keys past their window from memory and
// deletes the journal values whose keys all are.
func (s *dedupWindows) sweepMem(now time.Time) error {
	nowMs := now.UnixMilli()
	windows := map[string]int64{}
	s.mu.Lock()
	for k, v := range s.mem {
		topic := topicOfDedupKey(k)
		w, ok := windows[topic]
		if !ok {
			if tc, found := s.topics.get(topic); found {
				w = tc.DedupWindowMs
			}
			windows[topic] = w
		}
		if int64(binary.BigEndian.Uint64(v[:])) < nowMs-w {
			delete(s.mem, k)
		}
	}
	order := make([]string, 0, len(s.mem))
	for _, k := range s.order[s.head:] {
		if _, ok := s.mem[k]; ok {
			order = append(order, k)
		}
	}
	s.order, s.head = order, 0
	s.mu.Unlock()

	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	batch := s.meta.db.NewBatch()
	defer batch.Close()
	keep := s.journals[:0:0]
	for _, j := range s.journals {
		if j.expires >= nowMs {
			keep = append(keep, j)
		} else if err := batch.Delete(j.key, nil); err != nil {
			return err
		}
	}
	if err := s.meta.db.Apply(batch, pebble.NoSync); err != nil {
		return err
	}
	s.journals = keep
	return nil
}

// loadJournal puts the keys of the journal still in their windows
// back in memory (at open, before the replay of the log records those
// of the messages after the producer snapshot).
func (s *dedupWindows) loadJournal(now time.Time) error {
	nowMs := now.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta.scan(dedupJournalPrefix, func(k, v []byte) error {
		if len(k) != len(dedupJournalPrefix)+8 {
			return fmt.Errorf("broker: dedup journal key %q", k)
		}
		jv := journalValue{key: slices.Clone(k)}
		for len(v) > 0 {
			n, w := binary.Uvarint(v)
			if w <= 0 || uint64(len(v)-w) < n+28 {
				return fmt.Errorf("broker: dedup journal value %x is cut short", k)
			}
			key := string(v[w : w+int(n)])
			var val dedupValue
			copy(val[:], v[w+int(n):])
			v = v[w+int(n)+28:]
			tc, ok := s.topics.get(topicOfDedupKey(key))
			if !ok || !strings.HasPrefix(key, dedupPrefix) {
				continue
			}
			storeMs := int64(binary.BigEndian.Uint64(val[:]))
			jv.expires = max(jv.expires, storeMs+tc.DedupWindowMs)
			if storeMs < nowMs-tc.DedupWindowMs {
				continue
			}
			if old, ok := s.mem[key]; ok && binary.BigEndian.Uint64(old[:]) > uint64(storeMs) {
				continue
			}
			if s.mem == nil {
				s.mem = make(map[string]dedupValue)
			}
			s.mem[key] = val
			s.order = append(s.order, key)
		}
		s.journals = append(s.journals, jv)
		s.seq = binary.BigEndian.Uint64(k[len(dedupJournalPrefix):]) + 1
		return nil
	})
}

// dropFrom forgets the keys in memory, and in the journal not yet
// written, of messages stored at or past commitlog offset cut (a replica
// whose log is cut back there). Keys already written to the store stay:
// a copy of the message stored again later brings a newer value.
func (s *dedupWindows) dropFrom(cut int64) {
	off := func(v []byte) int64 { return int64(binary.BigEndian.Uint64(v[20:])) }
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.mem {
		if off(v[:]) >= cut {
			delete(s.mem, k)
		}
	}
	var kept []byte
	n := 0
	for j := s.journal; len(j) > 0; {
		l, w := binary.Uvarint(j)
		if w <= 0 || uint64(len(j)-w) < l+28 {
			break
		}
		entry := j[:w+int(l)+28]
		j = j[len(entry):]
		if off(entry[w+int(l):]) < cut {
			kept = append(kept, entry...)
			n++
		}
	}
	s.journal, s.journalN = kept, n
}
