package consumequeue

import (
	"fmt"
	"time"
)

// Feeding the listeners is coalesced: the feeder is rung at once when
// feedEagerBytes of log wait for a listener, otherwise feedDelay after the
// first record that waits. At low rates this saves a goroutine wake-up per
// message; the key and timer indexes lag the queues by a few milliseconds.
const (
	feedEagerBytes = 256 << 10
	feedDelay      = 5 * time.Millisecond
)

// ringFeeder tells the feeder that the queues advanced.
func (s *Store) ringFeeder() {
	if len(s.listeners) == 0 {
		return
	}
	behind := int64(0)
	for _, l := range s.listeners {
		behind = max(behind, s.pos-l.pos.Load())
	}
	if behind >= feedEagerBytes {
		s.ringFeederNow()
		return
	}
	if s.feedArmed.CompareAndSwap(false, true) {
		s.feedTimer.Reset(feedDelay)
	}
}

func (s *Store) ringFeederNow() {
	select {
	case s.feedBell <- struct{}{}:
	default:
	}
}

// The feeder goroutine (owned by the Store, stopped by Close) feeds the
// listeners the records the queues hold, a batch at a time, each from its
// own position. It reads the log itself, so a slow listener (a pebble
// commit waiting on its write-ahead log) holds up only the listeners, never
// the queues and the pulls waiting on them. A listener whose last call
// failed is retried at the next tick.
func (s *Store) feeder() {
	defer close(s.feedDone)
	if len(s.listeners) == 0 {
		return
	}
	ticker := time.NewTicker(min(s.opts.FlushInterval, s.opts.ListenerSyncInterval))
	defer ticker.Stop()
	defer s.feedTimer.Stop()
	for {
		tick := false
		select {
		case <-s.stop:
			return
		case <-s.feedBell:
		case <-ticker.C:
			tick = true
		}
		s.feedMu.Lock()
		for _, l := range s.listeners {
			if l.failed && !tick {
				continue
			}
			for l.pos.Load() < s.dispatched.Load() && s.feedOnce(l, s.dispatched.Load()) {
				if s.stopping() {
					break
				}
			}
			s.syncListener(l, false)
		}
		s.feedMu.Unlock()
	}
}

func (s *Store) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// feedOnce feeds listener l one batch of records between its position and
// limit (at most the queues' position). It reports success. Called with
// feedMu held.
func (s *Store) feedOnce(l *listenerState, limit int64) bool {
	pos := l.pos.Load()
	if m := s.src.MinOffset(); pos < m {
		s.log.Warn().Int64("offset", pos).Int64("min_offset", m).Msg("consumequeue: log records were deleted before a listener saw them")
		pos = min(m, limit)
		l.pos.Store(pos)
		s.fed.Ring()
	}
	if pos >= limit {
		return true
	}
	next, err := s.scanRecords(pos, limit)
	if err == nil && next == pos {
		err = fmt.Errorf("consumequeue: no record at offset %d", pos)
	}
	if err == nil {
		err = l.l.Dispatch(s.recs)
	}
	if err != nil {
		s.log.Error().Err(err).Int64("offset", pos).Msg("consumequeue: listener failed; retrying later")
		l.failed = true
		return false
	}
	if l.pos.Load() <= l.durable.Load() {
		l.dirtySince = time.Now()
	}
	l.pos.Store(next)
	s.fed.Ring()
	l.failed = false
	return true
}

// syncListener syncs listener l when enough of the log, or log waiting
// long enough, was dispatched to it since its last sync (always with
// force), and then moves its durable point to its position. It reports
// success. Called with feedMu held.
func (s *Store) syncListener(l *listenerState, force bool) bool {
	pos := l.pos.Load()
	if pos <= l.durable.Load() {
		return true
	}
	if !force && pos-l.durable.Load() < s.opts.ListenerSyncBytes && time.Since(l.dirtySince) < s.opts.ListenerSyncInterval {
		return true
	}
	if err := l.l.Sync(); err != nil {
		s.log.Error().Err(err).Int64("offset", pos).Msg("consumequeue: listener sync failed; retrying later")
		l.failed = true
		return false
	}
	l.durable.Store(pos)
	return true
}
