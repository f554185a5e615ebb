package consumequeue

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/protocol"
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
	s.wakeProgress()
	s.fed.Ring()
	s.feed.ring(s.pos)
	return next >= limit, nil
}

// scanBatch reads one batch of records (at most batchRecords, or
// batchBytes of log) from from, below limit, into bufp, and calls fn with
// each record that decodes and its queue entry; with logBad it logs the
// ones that do not (only the dispatcher does, so each is logged once). It
// returns the offset after the batch.
func (s *Store) scanBatch(from, limit int64, bufp *[]byte, logBad bool, fn func(r protocol.Record, e Entry) error) (int64, error) {
	count := 0
	next, err := s.src.Scan(from, limit, bufp, func(off int64, b []byte) error {
		if count >= batchRecords || off-from >= batchBytes {
			return errBatchFull
		}
		count++
		r, err := protocol.Decode(b)
		if err != nil || r.QueueOffset < 0 {
			if logBad {
				s.log.Error().Err(err).Int64("offset", off).Int64("queue_offset", r.QueueOffset).
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
	next, err := s.scanBatch(from, limit, &s.buf, true, func(r protocol.Record, e Entry) error {
		q, err := s.queueForLocked(r.Topic, r.QueueID, r.QueueOffset)
		if err != nil {
			return err
		}
		return s.stageLocked(q, &e)
	})
	if cerr := s.commitTouchedLocked(); err == nil {
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
		s.dirtyDirs[s.opts.Dir] = struct{}{}
		s.dirtyDirs[t.dir] = struct{}{}
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

// stageLocked adds e to q's staged entries.
func (s *Store) stageLocked(q *queue, e *Entry) error {
	if len(q.stage) > 0 && (e.QueueOffset != q.stageFrom+int64(len(q.stage)/EntrySize) || len(q.stage) >= stageLimit) {
		if err := s.commitStageLocked(q); err != nil {
			return err
		}
	}
	if len(q.stage) == 0 {
		q.stageFrom = e.QueueOffset
	}
	if !q.touched {
		q.touched = true
		s.touched = append(s.touched, q)
	}
	q.stage = appendEntry(q.stage, e)
	return nil
}

func (s *Store) commitTouchedLocked() error {
	var first error
	for i, q := range s.touched {
		if err := s.commitStageLocked(q); err != nil && first == nil {
			first = err
		}
		q.touched = false
		s.touched[i] = nil
	}
	s.touched = s.touched[:0]
	return first
}

// commitStageLocked makes q's staged entries visible: entries already in
// the queue are rewritten in place (re-dispatch after a restart), new ones
// are appended to the tail, waking q's waiters once.
func (s *Store) commitStageLocked(q *queue) error {
	b, at := q.stage, q.stageFrom
	if len(b) == 0 {
		return nil
	}
	q.stage = q.stage[:0]
	logOff := decodeEntry(b, at).Offset
	if at < q.low {
		// Re-dispatch after a crash that lost the queue's first files.
		q.mu.Lock()
		q.low = at
		q.mu.Unlock()
	}
	if at < q.fileEnd {
		n := min(int64(len(b)/EntrySize), q.fileEnd-at)
		if err := s.writeAtLocked(q, b[:n*EntrySize], at); err != nil {
			return err
		}
		s.markDirtyLocked(q, logOff, int(n*EntrySize))
		b, at = b[n*EntrySize:], at+n
	}
	if len(b) > 0 && at < q.max {
		n := min(int64(len(b)/EntrySize), q.max-at)
		q.mu.Lock()
		copy(q.tail[(at-q.fileEnd)*EntrySize:], b[:n*EntrySize])
		q.mu.Unlock()
		s.markDirtyLocked(q, logOff, int(n*EntrySize))
		b, at = b[n*EntrySize:], at+n
	}
	if len(b) == 0 {
		return nil
	}
	if at > q.max {
		// A gap: the entries in between were never written (the log lost
		// them, or they expired before a rebuild). They read as holes.
		if err := s.writeTailLocked(q); err != nil {
			return err
		}
		q.mu.Lock()
		if q.max == q.low {
			q.low = at
		}
		q.max, q.fileEnd = at, at
		q.mu.Unlock()
	}
	q.mu.Lock()
	q.tail = append(q.tail, b...)
	q.max += int64(len(b) / EntrySize)
	ch := q.notify
	q.notify = nil
	q.mu.Unlock()
	if ch != nil {
		close(ch)
		if s.opts.OnNotify != nil {
			s.opts.OnNotify(q.topic, q.id)
		}
	}
	s.markDirtyLocked(q, decodeEntry(b, at).Offset, len(b))
	if len(q.tail) >= tailFlushBytes {
		return s.writeTailLocked(q)
	}
	return nil
}

func (s *Store) markDirtyLocked(q *queue, logOff int64, n int) {
	q.unsynced += n
	if !q.inDirty {
		q.inDirty = true
		q.dirtyFrom = logOff
		q.dirtySince = time.Now()
		s.dirty = append(s.dirty, q)
	} else if logOff < q.dirtyFrom {
		q.dirtyFrom = logOff
	}
}

// writeTailLocked writes q's tail to its files.
func (s *Store) writeTailLocked(q *queue) error {
	if len(q.tail) == 0 {
		return nil
	}
	if err := s.writeAtLocked(q, q.tail, q.fileEnd); err != nil {
		return err
	}
	q.mu.Lock()
	q.fileEnd += int64(len(q.tail) / EntrySize)
	q.tail = q.tail[:0]
	q.mu.Unlock()
	return nil
}

// writeAtLocked writes the entries b at entry number at, one write per file.
func (s *Store) writeAtLocked(q *queue, b []byte, at int64) error {
	for len(b) > 0 {
		f, err := s.fileForLocked(q, at)
		if err != nil {
			return err
		}
		rel := at - f.first
		n := min(len(b), int((s.epf-rel)*EntrySize))
		if _, err := f.f.WriteAt(b[:n], rel*EntrySize); err != nil {
			err = fmt.Errorf("consumequeue: write %s: %w", f.name, err)
			if noSpace(err) {
				if cerr := cutTorn(f); cerr != nil {
					// Not a full-disk error any more: sticky.
					return fmt.Errorf("%v; %w", err, cerr)
				}
			}
			return err
		}
		if !f.dirty {
			f.dirty = true
			q.dirtyFiles = append(q.dirtyFiles, f)
		}
		b, at = b[n:], at+int64(n/EntrySize)
	}
	return nil
}

// cutTorn cuts f back to its last whole entry after a write that found
// the disk full: a write can get part of its bytes onto the disk, and the
// retry writes the whole entries again from where the queue's file ends.
func cutTorn(f *qfile) error {
	st, err := f.f.Stat()
	if err != nil {
		return fmt.Errorf("consumequeue: stat %s: %w", f.name, err)
	}
	if st.Size()%EntrySize == 0 {
		return nil
	}
	return truncateFile(f, st.Size(), st.Size()-st.Size()%EntrySize)
}

// fileForLocked returns the file holding entry number at, creating it.
func (s *Store) fileForLocked(q *queue, at int64) (*qfile, error) {
	first := at - at%s.epf
	i := sort.Search(len(q.files), func(i int) bool { return q.files[i].first >= first })
	if i < len(q.files) && q.files[i].first == first {
		return q.files[i], nil
	}
	name := s.fs.PathJoin(q.dir, fileName(first))
	f, err := s.fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("consumequeue: create %s: %w", name, err)
	}
	s.dirtyDirs[q.dir] = struct{}{}
	qf := &qfile{first: first, name: name, f: f}
	q.mu.Lock()
	q.files = append(q.files, nil)
	copy(q.files[i+1:], q.files[i:])
	q.files[i] = qf
	q.mu.Unlock()
	return qf, nil
}
