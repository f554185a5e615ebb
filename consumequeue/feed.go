package consumequeue

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// Feeding the listeners is coalesced: the feeder is rung at once when
// feedEagerBytes of log wait for a listener, otherwise feedDelay after the
// first record that waits. At low rates this saves a goroutine wake-up per
// message; the key and timer indexes lag the queues by a few milliseconds.
const (
	feedEagerBytes = 256 << 10
	feedDelay      = 5 * time.Millisecond
)

// feeder is the goroutine (owned by the Store, stopped by Close) that
// feeds the listeners the records the queues hold, a batch at a time, each
// from its own position. It reads the log itself, so a slow listener (a
// pebble commit waiting on its write-ahead log) holds up only the
// listeners, never the queues and the pulls waiting on them. A listener
// whose last call failed is retried at the next tick.
type feeder struct {
	s *Store

	// mu serialises feeding the listeners (the feeder goroutine, and the
	// drains at Open and Close) and guards the scratch space. It is never
	// taken while holding Store.mu or a queue lock; the drains take it
	// under Store.writeMu.
	mu        sync.Mutex
	listeners []*listenerState // the slice is fixed at Open
	buf       []byte
	recs      []Record
	arena     []byte

	bell  chan struct{} // 1 slot: the queues advanced
	timer *time.Timer   // rings bell feedDelay after it is armed
	armed atomic.Bool
	done  chan struct{}
}

func newFeeder(s *Store, listeners []Listener, from int64) *feeder {
	f := &feeder{s: s, buf: make([]byte, scanBufSize), bell: make(chan struct{}, 1), done: make(chan struct{})}
	for _, l := range listeners {
		ls := &listenerState{l: l}
		ls.pos.Store(from)
		ls.durable.Store(from)
		f.listeners = append(f.listeners, ls)
	}
	f.timer = time.AfterFunc(time.Hour, func() {
		f.armed.Store(false)
		f.ringNow()
	})
	f.timer.Stop()
	return f
}

// ring tells the feeder that the queues advanced to pos.
func (f *feeder) ring(pos int64) {
	if len(f.listeners) == 0 {
		return
	}
	behind := int64(0)
	for _, l := range f.listeners {
		behind = max(behind, pos-l.pos.Load())
	}
	if behind >= feedEagerBytes {
		f.ringNow()
		return
	}
	if f.armed.CompareAndSwap(false, true) {
		f.timer.Reset(feedDelay)
	}
}

func (f *feeder) ringNow() {
	select {
	case f.bell <- struct{}{}:
	default:
	}
}

func (f *feeder) run() {
	s := f.s
	defer close(f.done)
	if len(f.listeners) == 0 {
		return
	}
	ticker := time.NewTicker(min(s.opts.FlushInterval, s.opts.ListenerSyncInterval))
	defer ticker.Stop()
	defer f.timer.Stop()
	for {
		tick := false
		select {
		case <-s.stop:
			return
		case <-f.bell:
		case <-ticker.C:
			tick = true
		}
		f.mu.Lock()
		for _, l := range f.listeners {
			if l.failed && !tick {
				continue
			}
			for l.pos.Load() < s.dispatched.Load() && f.feedOnce(l, s.dispatched.Load()) {
				if f.stopping() {
					break
				}
			}
			f.syncListener(l, false)
		}
		f.mu.Unlock()
	}
}

// drain feeds every listener up to pos (until one fails) and syncs it.
func (f *feeder) drain(pos int64) {
	f.mu.Lock()
	for _, l := range f.listeners {
		for l.pos.Load() < pos && f.feedOnce(l, pos) {
		}
		f.syncListener(l, true)
	}
	f.mu.Unlock()
}

func (f *feeder) stopping() bool {
	select {
	case <-f.s.stop:
		return true
	default:
		return false
	}
}

// feedOnce feeds listener l one batch of records between its position and
// limit (at most the queues' position). It reports success. Called with
// mu held.
func (f *feeder) feedOnce(l *listenerState, limit int64) bool {
	s := f.s
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
	next, err := f.scanRecords(pos, limit)
	if err == nil && next == pos {
		err = fmt.Errorf("consumequeue: no record at offset %d", pos)
	}
	if err == nil {
		err = l.l.Dispatch(f.recs)
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

// scanRecords reads one batch of records from from, below limit, into
// recs for the listeners. It returns the offset after the batch. Called
// with mu held.
func (f *feeder) scanRecords(from, limit int64) (int64, error) {
	f.recs = f.recs[:0]
	f.arena = f.arena[:0]
	return scanBatch(f.s.src, nil, from, limit, &f.buf, func(r protocol.Record, e Entry) error {
		t := len(f.arena)
		f.arena = append(f.arena, r.Topic...)
		p := len(f.arena)
		f.arena = append(f.arena, r.Properties...)
		f.recs = append(f.recs, Record{
			Entry: e, Topic: f.arena[t:p:p], QueueID: r.QueueID, StoreTimestamp: r.StoreTimestamp,
			Properties: f.arena[p:len(f.arena):len(f.arena)],
		})
		return nil
	})
}

// syncListener syncs listener l when enough of the log, or log waiting
// long enough, was dispatched to it since its last sync (always with
// force), and then moves its durable point to its position. It reports
// success. Called with mu held.
func (f *feeder) syncListener(l *listenerState, force bool) bool {
	s := f.s
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
