package consumequeue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
)

// readRLocked fills b with the entries from entry number from on, from the
// files and the tail. Bytes no file holds read as zeros (holes). The caller
// holds q.mu or owns q.
func (q *queue) readRLocked(b []byte, from int64) error {
	at := from
	for len(b) > 0 {
		if at >= q.fileEnd {
			i := (at - q.fileEnd) * EntrySize
			n := 0
			if i < int64(len(q.tail)) {
				n = copy(b, q.tail[i:])
			}
			clear(b[n:])
			return nil
		}
		// The part in files: up to the end of the file holding at.
		i := sort.Search(len(q.files), func(i int) bool { return q.files[i].first > at }) - 1
		var f *qfile
		end := q.fileEnd
		if i >= 0 && at < q.files[i].first+q.epf {
			f = q.files[i]
			end = min(end, f.first+q.epf)
		} else if i+1 < len(q.files) {
			end = min(end, q.files[i+1].first)
		}
		n := min(int64(len(b)), (end-at)*EntrySize)
		part := b[:n]
		if f == nil {
			clear(part)
		} else {
			got, err := f.f.ReadAt(part, (at-f.first)*EntrySize)
			if got < len(part) {
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("consumequeue: read %s: %w", f.name, err)
				}
				clear(part[got:])
			}
		}
		b, at = b[n:], at+n/EntrySize
	}
	return nil
}

// entryRLocked reads entry number i.
func (q *queue) entryRLocked(i int64) (Entry, error) {
	var b [EntrySize]byte
	if err := q.readRLocked(b[:], i); err != nil {
		return Entry{}, err
	}
	return decodeEntry(b[:], i), nil
}

func (s *Store) queue(topic string, id int32) *queue {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t := s.topics[topic]; t != nil {
		return t.queues[id]
	}
	return nil
}

// MaxOffset is the number of entries ever written to (topic, queue): the
// next queue offset, exclusive. 0 for an unknown queue.
func (s *Store) MaxOffset(topic string, queueID int32) int64 {
	q := s.queue(topic, queueID)
	if q == nil {
		return 0
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.max
}

// MinOffset is the first entry of (topic, queue) whose record is still in
// the log (MaxOffset if there is none).
func (s *Store) MinOffset(topic string, queueID int32) (int64, error) {
	q := s.queue(topic, queueID)
	if q == nil {
		return 0, nil
	}
	srcMin := s.src.MinOffset()
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.gone {
		return 0, ErrClosed
	}
	if c := q.minCache.Load(); c != nil && c.srcMin == srcMin && c.low == q.low && c.val < q.max {
		return c.val, nil
	}
	// Entries point ever higher in the log, holes (zeros) only before the
	// first real entry: the first live entry is a binary search away.
	lo, hi := q.low, q.max
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := q.entryRLocked(mid)
		if err != nil {
			return 0, err
		}
		if e.Size > 0 && e.Offset >= srcMin {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	q.minCache.Store(&minCache{srcMin: srcMin, low: q.low, val: lo})
	return lo, nil
}

var readBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 64*EntrySize)
	return &b
}}

// Get appends to dst[:0] up to max consecutive entries of (topic, queueID)
// from offset on. Asking at MaxOffset returns no entries; below the first
// kept entry or past MaxOffset, ErrOutOfRange. An entry with Size 0 is a
// hole: no record was ever indexed there (only possible below MinOffset).
func (s *Store) Get(topic string, queueID int32, offset int64, max int, dst []Entry) ([]Entry, error) {
	dst = dst[:0]
	q := s.queue(topic, queueID)
	if q == nil {
		if offset == 0 {
			return dst, nil
		}
		return dst, fmt.Errorf("%w: offset %d of %s/%d, an empty queue", ErrOutOfRange, offset, topic, queueID)
	}
	bp := readBufPool.Get().(*[]byte)
	defer readBufPool.Put(bp)
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.gone {
		return dst, ErrClosed
	}
	if offset < q.low || offset > q.max {
		return dst, fmt.Errorf("%w: offset %d of %s/%d, kept entries are [%d, %d)", ErrOutOfRange, offset, topic, queueID, q.low, q.max)
	}
	n := min(int64(max), q.max-offset)
	if n <= 0 {
		return dst, nil
	}
	b := slices.Grow((*bp)[:0], int(n)*EntrySize)[:n*EntrySize]
	*bp = b
	if err := q.readRLocked(b, offset); err != nil {
		return dst, err
	}
	for i := int64(0); i < n; i++ {
		dst = append(dst, decodeEntry(b[i*EntrySize:], offset+i))
	}
	return dst, nil
}

// OffsetByTime returns the first queue offset of (topic, queue) whose
// record was stored at or after tsMillis, MaxOffset if none was, 0 for an
// empty queue. It binary-searches the entries, reading each candidate's
// store timestamp from the log.
func (s *Store) OffsetByTime(topic string, queueID int32, tsMillis int64) (int64, error) {
	lo, err := s.MinOffset(topic, queueID)
	if err != nil {
		return 0, err
	}
	q := s.queue(topic, queueID)
	if q == nil {
		return 0, nil
	}
	q.mu.RLock()
	hi := q.max
	q.mu.RUnlock()
	var hdr [recordHeaderForTimestamp]byte
	for lo < hi {
		mid := lo + (hi-lo)/2
		q.mu.RLock()
		e, err := q.entryRLocked(mid)
		gone := q.gone
		q.mu.RUnlock()
		if gone {
			return 0, ErrClosed
		}
		if err != nil {
			return 0, err
		}
		if e.Size < recordHeaderForTimestamp {
			lo = mid + 1 // a hole
			continue
		}
		if err := s.src.ReadAt(hdr[:], e.Offset); err != nil {
			return 0, fmt.Errorf("consumequeue: read the record of %s/%d offset %d: %w", topic, queueID, mid, err)
		}
		if storeTimestampOf(hdr[:]) >= tsMillis {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// Topics returns the topics that have queues, sorted.
func (s *Store) Topics() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.topics))
	for name := range s.topics {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Queues returns the queue ids of topic, sorted.
func (s *Store) Queues(topic string) []int32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.topics[topic]
	if t == nil {
		return nil
	}
	out := make([]int32, 0, len(t.queues))
	for id := range t.queues {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Notify returns a channel that is closed the next time entries are
// appended to (topic, queue) (or the topic is deleted, or the store
// closed). To wait without missing an append, take the channel first, then
// check MaxOffset, then wait.
func (s *Store) Notify(topic string, queueID int32) <-chan struct{} {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return closedChan
	}
	var q *queue
	if t := s.topics[topic]; t != nil {
		q = t.queues[queueID]
	}
	if q != nil {
		q.mu.Lock()
		defer q.mu.Unlock()
		s.mu.RUnlock()
		if q.gone {
			return closedChan
		}
		if q.notify == nil {
			q.notify = make(chan struct{})
		}
		return q.notify
	}
	s.mu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return closedChan
	}
	if t := s.topics[topic]; t != nil && t.queues[queueID] != nil {
		q := t.queues[queueID]
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.gone {
			return closedChan
		}
		if q.notify == nil {
			q.notify = make(chan struct{})
		}
		return q.notify
	}
	k := queueKey{topic, queueID}
	ch := s.waiting[k]
	if ch == nil {
		ch = make(chan struct{})
		s.waiting[k] = ch
	}
	return ch
}

// DispatchedOffset is the commitlog offset below which every record is in
// the queues.
func (s *Store) DispatchedOffset() int64 { return s.dispatched.Load() }

// FedOffset is the commitlog offset below which every listener has
// accepted every record (DispatchedOffset without listeners). Listeners
// lag the queues by up to a few milliseconds, more while one fails.
func (s *Store) FedOffset() int64 {
	off := s.dispatched.Load()
	for _, l := range s.feed.listeners {
		off = min(off, l.pos.Load())
	}
	return off
}

// WaitDispatched waits until every record below off is in the queues.
func (s *Store) WaitDispatched(ctx context.Context, off int64) error {
	for {
		if s.dispatched.Load() >= off {
			return nil
		}
		if err := s.Err(); err != nil {
			return err
		}
		ch := s.progress.next()
		if s.dispatched.Load() >= off {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			if s.dispatched.Load() >= off {
				return nil
			}
			return ErrClosed
		}
	}
}
