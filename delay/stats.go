package delay

import (
	"github.com/cockroachdb/pebble/v2"
)

// LevelStat is one delay level's backlog: the messages stored in its
// schedule queue and not yet delivered, and the store time of the oldest
// of them (0 when none; its due time is that plus the level's delay).
type LevelStat struct {
	Level        int
	Pending      int64
	HeadStoredMs int64
}

// LevelStats reports every level's backlog. It reads one consume-queue
// entry and one record per level with messages waiting.
func (s *Service) LevelStats() []LevelStat {
	s.mu.Lock()
	pos := append([]int64(nil), s.levelPos...)
	s.mu.Unlock()
	out := make([]LevelStat, len(pos))
	for i, p := range pos {
		q := int32(i)
		st := LevelStat{Level: i + 1, Pending: max(0, s.cfg.Queues.MaxOffset(s.cfg.ScheduleTopic, q)-p)}
		if st.Pending > 0 {
			if es, err := s.cfg.Queues.Get(s.cfg.ScheduleTopic, q, p, 1, nil); err == nil && len(es) == 1 {
				if rec, _, err := s.cfg.Log.ReadRecord(es[0].Offset, nil); err == nil {
					st.HeadStoredMs = rec.StoreTimestamp
				}
			}
		}
		out[i] = st
	}
	return out
}

// TimerStat is the arbitrary-delivery-time backlog: how many messages wait
// (counted up to a limit; Capped when there are more) and the earliest
// due time (0 when none).
type TimerStat struct {
	Pending   int
	Capped    bool
	NextDueMs int64
}

// TimerStats counts the pending timer entries, visiting at most limit of
// them, and reports the first due.
func (t *TimerIndex) TimerStats(limit int) (TimerStat, error) {
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: timerPrefix, UpperBound: []byte("w0")})
	if err != nil {
		return TimerStat{}, err
	}
	defer it.Close()
	var st TimerStat
	for ok := it.First(); ok; ok = it.Next() {
		k, valid := parseTimerKey(it.Key())
		if !valid {
			continue
		}
		if st.Pending == 0 {
			st.NextDueMs = k.due
		}
		if st.Pending >= limit {
			st.Capped = true
			break
		}
		st.Pending++
	}
	return st, it.Error()
}
