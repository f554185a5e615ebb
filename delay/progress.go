package delay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// Progress is how far the deliverers got: per level the next schedule-queue
// offset (Levels[n-1] for level n), and the timer deliverer's cursor.
type Progress struct {
	Levels    []int64
	TimerDue  int64 // ms
	TimerNext int64 // commitlog offset
}

// PutProgress writes p into b under the keys New loads it from.
func PutProgress(b *pebble.Batch, p Progress) error {
	for i, pos := range p.Levels {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(pos))
		if err := b.Set([]byte(levelPrefix+strconv.Itoa(i+1)), v[:], nil); err != nil {
			return err
		}
	}
	var c [16]byte
	binary.BigEndian.PutUint64(c[:], uint64(p.TimerDue))
	binary.BigEndian.PutUint64(c[8:], uint64(p.TimerNext))
	return b.Set(keyTimerCursor, c[:], nil)
}

// LoadProgress reads the saved progress of levels delay levels (zero for
// a level or cursor never saved); found says whether anything was saved.
func LoadProgress(db *pebble.DB, levels int) (p Progress, found bool, err error) {
	p.Levels = make([]int64, levels)
	for i := range p.Levels {
		v, ok, err := getInt64(db, []byte(levelPrefix+strconv.Itoa(i+1)))
		if err != nil {
			return Progress{}, false, err
		}
		if ok {
			p.Levels[i] = v
			found = true
		}
	}
	cur, err := loadCursor(db)
	if err != nil {
		return Progress{}, false, err
	}
	if cur != (timerKey{}) {
		found = true
	}
	p.TimerDue, p.TimerNext = cur.due, cur.off
	return p, found, nil
}

var (
	keyTimerCursor  = []byte("d/timer")
	keyTimerIndexed = []byte("d/timer-indexed")
	levelPrefix     = "d/level/"
)

// load reads the saved progress into the service.
func (s *Service) load() error {
	pos := make([]int64, len(s.cfg.Levels))
	for i := range pos {
		v, ok, err := getInt64(s.cfg.DB, []byte(levelPrefix+strconv.Itoa(i+1)))
		if err != nil {
			return err
		}
		if ok {
			pos[i] = v
		}
	}
	cur, err := loadCursor(s.cfg.DB)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.levelPos, s.cursor, s.dirty = pos, cur, false
	s.mu.Unlock()
	return nil
}

// loadCursor reads the timer deliverer's saved cursor (zero when none).
func loadCursor(db *pebble.DB) (timerKey, error) {
	v, closer, err := db.Get(keyTimerCursor)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return timerKey{}, nil
	case err != nil:
		return timerKey{}, fmt.Errorf("delay: read timer cursor: %w", err)
	}
	defer closer.Close()
	if len(v) != 16 {
		return timerKey{}, nil
	}
	return timerKey{due: int64(binary.BigEndian.Uint64(v)), off: int64(binary.BigEndian.Uint64(v[8:]))}, nil
}

func getInt64(db *pebble.DB, k []byte) (int64, bool, error) {
	v, closer, err := db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("delay: read %s: %w", k, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("delay: %s: malformed value", k)
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

func (s *Service) save() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	if s.cfg.Progress != nil {
		p := Progress{Levels: append([]int64(nil), s.levelPos...), TimerDue: s.cursor.due, TimerNext: s.cursor.off}
		s.dirty = false
		s.mu.Unlock()
		if err := s.cfg.Progress(p); err != nil {
			s.mu.Lock()
			s.dirty = true
			s.mu.Unlock()
			return err
		}
		return nil
	}
	b := s.cfg.DB.NewBatch()
	defer b.Close()
	for i, p := range s.levelPos {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(p))
		if err := b.Set([]byte(levelPrefix+strconv.Itoa(i+1)), v[:], nil); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	var c [16]byte
	binary.BigEndian.PutUint64(c[:], uint64(s.cursor.due))
	binary.BigEndian.PutUint64(c[8:], uint64(s.cursor.off))
	if err := b.Set(keyTimerCursor, c[:], nil); err != nil {
		s.mu.Unlock()
		return err
	}
	s.dirty = false
	s.mu.Unlock()
	if err := s.cfg.DB.Apply(b, pebble.Sync); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// OldestNeeded returns the lowest commitlog offset a pending scheduled
// message still lives at (math.MaxInt64 when none): retention must not
// delete segments at or above it.
func (s *Service) OldestNeeded() (int64, error) {
	oldest := int64(math.MaxInt64)
	s.mu.Lock()
	pos := append([]int64(nil), s.levelPos...)
	cur := s.cursor
	s.mu.Unlock()
	for i, p := range pos {
		es, err := s.cfg.Queues.Get(s.cfg.ScheduleTopic, int32(i), p, 1, nil)
		if err != nil {
			return 0, err
		}
		if len(es) > 0 {
			oldest = min(oldest, es[0].Offset)
		}
	}
	off, err := s.timer.minOffset(cur)
	if err != nil {
		return 0, err
	}
	return min(oldest, off), nil
}
