package consumequeue

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/rs/zerolog"
)

// errBatchFull stops a Scan at the end of a batch.
var errBatchFull = errors.New("consumequeue: batch full")

// run is the dispatcher goroutine, owned by the Store and stopped by Close.
func (s *Store) run() {
	defer close(s.done)
	ticker := time.NewTicker(s.opts.FlushInterval)
	defer ticker.Stop()
	defer s.retry.Stop()
	for {
		tick := false
		select {
		case <-s.stop:
			s.writeMu.Lock()
			if s.werr == nil {
				// On a full disk the final flush still syncs what was
				// written; the checkpoint stops before the rest.
				s.drainLocked()
				s.flushLocked(true)
			}
			s.writeMu.Unlock()
			return
		case <-s.watch:
		case <-ticker.C:
			tick = true
		case <-s.retry.C:
			tick = true
		}
		s.step(tick)
	}
}

// funcWatcher is a Source that calls a function on the goroutine that
// advanced its visible end (commitlog.Log.WatchFunc).
type funcWatcher interface {
	WatchFunc(fn func()) func()
}

// pumpBatches bounds the batches pump dispatches on the caller's
// goroutine before it leaves the rest to the dispatcher.
const pumpBatches = 2

// pump is called by a Source with WatchFunc on the goroutine that
// advanced the log's visible end, right after it did. When the dispatcher
// is not at work it dispatches there and then (a batch or two: the
// records just published), so that between an append and the answer to a
// pull held on its queue (OnNotify) there is no goroutine wake-up; at low
// rates that is a thread woken on the other core per append. When the
// dispatch lock is taken, when the store is failing or waiting out a full
// disk, or when more is left than pump takes, the dispatcher is rung
// instead; the flushes stay the dispatcher's.
func (s *Store) pump() {
	if !s.writeMu.TryLock() {
		s.ringDispatcher()
		return
	}
	select {
	case <-s.stop:
		s.writeMu.Unlock()
		return
	default:
	}
	if s.werr != nil || s.spaceErr != nil {
		s.writeMu.Unlock()
		s.ringDispatcher()
		return
	}
	done := true
	for range pumpBatches {
		visible := s.src.VisibleOffset()
		if s.pos >= visible {
			done = true
			break
		}
		var err error
		if done, err = s.dispatchLocked(visible); err != nil || done {
			break
		}
	}
	s.writeMu.Unlock()
	if !done || s.src.VisibleOffset() > s.dispatched.Load() {
		s.ringDispatcher()
	}
}

func (s *Store) ringDispatcher() {
	select {
	case s.bell <- struct{}{}:
	default:
	}
}

// step dispatches until the queues reach the log's visible end, releasing
// writeMu between batches.
func (s *Store) step(tick bool) {
	for {
		s.writeMu.Lock()
		if s.werr != nil || (s.spaceErr != nil && time.Now().Before(s.retryAt)) {
			s.writeMu.Unlock()
			return
		}
		retrying := s.spaceErr != nil
		more := false
		if visible := s.src.VisibleOffset(); s.pos < visible {
			done, err := s.dispatchLocked(visible)
			if err != nil {
				s.writeMu.Unlock()
				return
			}
			more = !done
		}
		if tick || retrying || time.Since(s.lastFlush) >= s.opts.FlushInterval {
			if err := s.flushLocked(false); err != nil {
				s.writeMu.Unlock()
				return
			}
			tick = false
		}
		if retrying {
			s.resumeLocked()
		}
		s.writeMu.Unlock()
		if !more {
			return
		}
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

// drainLocked dispatches up to the visible end of the log and feeds the
// listeners up to the queues (until one fails).
func (s *Store) drainLocked() error {
	for {
		done, err := s.dispatchLocked(s.src.VisibleOffset())
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	s.feed.drain(s.pos)
	return nil
}

// dispatchLocked dispatches one batch of records from s.pos, below limit,
// into the queues, then rings the feeder. It reports whether it reached
// limit.
func (s *Store) dispatchLocked(limit int64) (bool, error) {
	if s.werr != nil {
		return false, s.werr
	}
	if m := s.src.MinOffset(); s.pos < m {
		s.log.Warn().Int64("offset", s.pos).Int64("min_offset", m).Msg("consumequeue: log records were deleted before they were dispatched")
		s.pos = m
		s.dispatched.Store(m)
		s.fed.Ring()
	}
	if s.pos >= limit {
		return true, nil
	}
	from := s.pos
	next, err := s.scanLocked(from, limit)
	if err != nil {
		return false, s.failLocked(err)
	}
	if next == from {
		// Scan found no whole record below limit.
		return true, nil
	}
	s.pos = next
	s.dispatched.Store(next)
	s.progress.wake()
	s.fed.Ring()
	s.feed.ring(s.pos)
	return next >= limit, nil
}

// scanBatch reads one batch of records (at most batchRecords, or
// batchBytes of log) of src from from, below limit, into bufp, and calls
// fn with each record that decodes and its queue entry; with a logger
// (only the dispatcher passes one, so each is logged once) it logs the
// ones that do not. It returns the offset after the batch.
func scanBatch(src Source, logBad *zerolog.Logger, from, limit int64, bufp *[]byte, fn func(r protocol.Record, e Entry) error) (int64, error) {
	count := 0
	next, err := src.Scan(from, limit, bufp, func(off int64, b []byte) error {
		if count >= batchRecords || off-from >= batchBytes {
			return errBatchFull
		}
		count++
		r, err := protocol.Decode(b)
		if err != nil || r.QueueOffset < 0 {
			if logBad != nil {
				logBad.Error().Err(err).Int64("offset", off).Int64("queue_offset", r.QueueOffset).
					Msg("consumequeue: skipping a record that does not decode")
			}
			return nil
		}
		tags, _ := protocol.Property(r.Properties, protocol.PropTags)
		return fn(r, Entry{QueueOffset: r.QueueOffset, Offset: off, Size: r.Size, TagsCode: TagsCode(tags)})
	})
	if errors.Is(err, errBatchFull) {
		err = nil
	}
	return next, err
}

// scanLocked reads one batch of records from from, below limit, and stages
// and commits their queue entries. It returns the offset after the batch.
func (s *Store) scanLocked(from, limit int64) (int64, error) {
	next, err := scanBatch(s.src, &s.log, from, limit, &s.buf, func(r protocol.Record, e Entry) error {
		q, err := s.queueForLocked(r.Topic, r.QueueID, r.QueueOffset)
		if err != nil {
			return err
		}
		return s.writer.stage(q, &e)
	})
	if cerr := s.writer.commitTouched(); err == nil {
		err = cerr
	}
	return next, err
}

// queueForLocked returns the queue (topic, id), creating it (first entry
// first) if needed.
func (s *Store) queueForLocked(topicName []byte, id int32, first int64) (*queue, error) {
	if q := s.last; q != nil && q.id == id && q.topic == string(topicName) {
		return q, nil
	}
	t := s.topics[string(topicName)]
	var q *queue
	if t != nil {
		q = t.queues[id]
	}
	if q == nil {
		name := string(topicName)
		newTopic := t == nil
		if newTopic {
			t = &topic{name: name, dir: s.fs.PathJoin(s.opts.Dir, topicDirName(name)), queues: make(map[int32]*queue)}
		}
		dir := s.fs.PathJoin(t.dir, strconv.FormatInt(int64(id), 10))
		if err := s.fs.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("consumequeue: create %s: %w", dir, err)
		}
		s.writer.dirtyDirs[s.opts.Dir] = struct{}{}
		s.writer.dirtyDirs[t.dir] = struct{}{}
		q = &queue{topic: name, id: id, dir: dir, epf: s.epf, low: first, max: first, fileEnd: first, dirtyFrom: -1}
		s.mu.Lock()
		if newTopic {
			s.topics[name] = t
		}
		t.queues[id] = q
		k := queueKey{name, id}
		if ch, ok := s.waiting[k]; ok {
			q.notify = ch
			delete(s.waiting, k)
		}
		s.mu.Unlock()
	}
	s.last = q
	return q, nil
}
