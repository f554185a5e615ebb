package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/protocol"
)

// batchQueue accumulates the queue offsets a batch takes.
type batchQueue struct {
	key         queueKey
	first, next int64
}

// pendingWrite is bytes reserved at pos and not yet written: a chunk of an
// appender's records, or a blank marker.
type pendingWrite struct {
	pos int64
	b   []byte
	qs  []batchQueue // queue offsets the chunk took (nil for a marker)
}

// writeRound is one combined write: every appender whose records it
// carries waits on done, then reads err and flush.
type writeRound struct {
	done  chan struct{}
	err   error
	flush chan struct{} // the flush round current when the write was published
}

// Append stores msgs, in order, and returns where each went (appended to
// res[:0]). In sync mode it returns after the group commit covering them;
// on ErrFlushTimeout the results are valid and the messages are written
// but not yet known durable. Validation errors reject the whole batch
// before anything is written.
//
// Write combining: under the append lock an appender only reserves its
// bytes (offsets assigned, records sealed) and queues them. The first
// appender to find no write in progress becomes the leader: it takes
// everything queued, writes it with one pwrite per segment outside the
// lock, publishes the new end, releases the appenders of that round, and
// goes on while more is queued. Concurrent appenders so share one write
// syscall, and the lock is never held across one. Before it writes, a
// leader yields once to let appenders that are about to reserve join its
// round, but only when there is someone to wait for: an appender still
// encoding, or a last round that carried several appenders (the log is
// under load). A lone appender at a low rate does not yield, since a yield
// also wakes an idle thread to look for work, which finds none.
func (l *Log) Append(msgs []Message, res []AppendResult) ([]AppendResult, error) {
	res = res[:0]
	if len(msgs) == 0 {
		return res, nil
	}
	if g := l.appendGuard.Load(); g != nil {
		if err := (*g)(); err != nil {
			return res, err
		}
	}
	l.encoding.Add(1)
	reserving := true // encoding counts this appender
	defer func() {
		if reserving {
			l.encoding.Add(-1)
		}
	}()
	bufp := l.bufs.get()
	defer l.bufs.put(bufp)
	buf := *bufp
	for i := range msgs {
		size, err := msgs[i].EncodedSize(l.opts.MaxMessageSize)
		if err != nil {
			return res, fmt.Errorf("message %d: %w", i, err)
		}
		buf = appendRecord(buf, &msgs[i], size)
	}
	*bufp = buf

	var accs [4]batchQueue
	qs := accs[:0]

	l.mu.Lock()
	reserving = false
	l.encoding.Add(-1)
	if l.closed {
		l.mu.Unlock()
		return res, ErrClosed
	}
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return res, err
	}
	storeTs := l.opts.Now().UnixMilli()
	if storeTs < l.lastStoreTs {
		storeTs = l.lastStoreTs
	}
	segSize := l.opts.SegmentSize
	pos := l.reserved
	chunkStart, chunkPos := 0, pos
	p := 0
	items := l.itemsScratch[:0]
	for i := range msgs {
		size := int(protocol.RecordSize(buf[p:]))
		if room := segSize - pos%segSize; int64(size+protocol.BlankMarkerSize) > room {
			if p > chunkStart {
				items = append(items, pendingWrite{pos: chunkPos, b: buf[chunkStart:p]})
			}
			next := (pos/segSize + 1) * segSize
			marker := make([]byte, protocol.BlankMarkerSize)
			putBlank(marker, next-pos)
			items = append(items, pendingWrite{pos: pos, b: marker})
			if _, err := l.segs.create(next); err != nil {
				err = l.failLocked(err)
				l.noSpace.Store(errors.Is(err, ErrNoSpace))
				l.mu.Unlock()
				return res[:0], err
			}
			pos = next
			chunkStart, chunkPos = p, pos
		}
		k := queueKey{msgs[i].Topic, msgs[i].QueueID}
		j := 0
		for j < len(qs) && qs[j].key != k {
			j++
		}
		if j == len(qs) {
			n := l.queues[k]
			qs = append(qs, batchQueue{k, n, n})
		}
		qo := qs[j].next
		qs[j].next++
		protocol.SealRecord(buf[p:p+size], qo, pos, storeTs)
		res = append(res, AppendResult{Offset: pos, Size: int32(size), QueueOffset: qo, StoreTimestamp: storeTs})
		pos += int64(size)
		p += size
	}
	if p > chunkStart {
		items = append(items, pendingWrite{pos: chunkPos, b: buf[chunkStart:p]})
	}
	// The pending item keeps the queue offsets in the log's arena, not in
	// this frame (which would then escape to the heap on every append).
	n := len(l.qsArena)
	l.qsArena = append(l.qsArena, qs...)
	items[len(items)-1].qs = l.qsArena[n:len(l.qsArena):len(l.qsArena)]
	for _, q := range qs {
		l.queues[q.key] = q.next
	}
	l.reserved = pos
	l.lastStoreTs = storeTs
	l.pending = append(l.pending, items...)
	l.roundJoins++
	l.itemsScratch = items[:0]
	round := l.wround
	if l.writing {
		l.mu.Unlock()
		<-round.done
	} else {
		// Lead, but first let appenders that are runnable reserve their
		// records, so that one pwrite carries them too (under load this
		// cuts the writes per message several times). Alone, lead at once.
		l.writing = true
		if l.shared || l.encoding.Load() > 0 {
			l.mu.Unlock()
			runtime.Gosched()
			l.mu.Lock()
		}
		l.leadLocked()
	}
	if round.err != nil {
		return res[:0], round.err
	}
	if l.opts.Flush == FlushSync {
		l.flush.ring()
		return res, l.flush.wait(round.flush, pos)
	}
	return res, nil
}

// leadLocked writes everything queued, round after round, until nothing
// is left. Called with mu held by the appender that found no write in
// progress; returns with mu released.
func (l *Log) leadLocked() {
	l.writing = true
	for len(l.pending) > 0 {
		items := l.pending
		l.pending = l.pendingSpare[:0]
		arena := l.qsArena
		l.qsArena = l.qsSpare[:0]
		round := l.wround
		l.wround = &writeRound{done: make(chan struct{})}
		l.shared = l.roundJoins > 1
		l.roundJoins = 0
		end := l.reserved
		failed := l.err
		if failed == nil {
			// Rounds queued behind a write that found no space sit at
			// offsets that are given back: they fail with it.
			failed = l.spaceErr
		}
		l.mu.Unlock()

		err := failed
		if err == nil {
			err = l.writeItems(items)
		}

		l.mu.Lock()
		if err != nil {
			l.tail.reset() // it may hold chunks of this round, given back
			err = l.failLocked(err)
			if errors.Is(err, ErrNoSpace) && l.spaceErr == nil {
				l.spaceErr = err
				l.noSpace.Store(true)
			}
			// No queue offset of a failed write stays taken.
			for _, it := range items {
				for _, q := range it.qs {
					if q.first == 0 {
						delete(l.queues, q.key)
					} else if l.queues[q.key] > q.first {
						l.queues[q.key] = q.first
					}
				}
			}
		} else {
			l.writePos = end
			l.written.Store(end)
			l.noSpace.Store(false)
			for _, it := range items {
				for _, q := range it.qs {
					l.pubQueues[q.key] = max(l.pubQueues[q.key], q.next)
				}
			}
		}
		round.err = err
		round.flush = l.round
		clear(items)
		l.pendingSpare = items[:0]
		clear(arena)
		l.qsSpare = arena[:0]
		close(round.done)
		if err == nil && l.opts.Flush == FlushAsync {
			l.mu.Unlock()
			if end-l.flushed.Load() >= l.opts.FlushDirtyBytes {
				l.flush.ring()
			}
			l.watchers.Ring()
			l.mu.Lock()
		}
	}
	if l.spaceErr != nil {
		// Return the log to its last published end after writes that
		// found no space, once none is queued: the reservations are
		// released (their queue offsets were given back by each failed
		// round) and the segments created for them are removed, so that
		// the next append goes where the failed one went.
		l.spaceErr = nil
		l.reserved = l.writePos
		l.segs.dropAfter(l.writePos)
	}
	l.writing = false
	l.writeIdle.Broadcast()
	l.mu.Unlock()
}

// writeItems writes queued chunks in order, joining adjacent ones of a
// segment into one pwrite. Only the leader calls it.
func (l *Log) writeItems(items []pendingWrite) error {
	for i := 0; i < len(items); {
		s := l.segs.at(items[i].pos)
		if s == nil {
			return fmt.Errorf("no segment for offset %d", items[i].pos)
		}
		segEnd := s.base + l.opts.SegmentSize
		j, next := i+1, items[i].pos+int64(len(items[i].b))
		for j < len(items) && items[j].pos == next && next < segEnd {
			next += int64(len(items[j].b))
			j++
		}
		b := items[i].b
		if j > i+1 {
			b = l.scratch[:0]
			for _, it := range items[i:j] {
				b = append(b, it.b...)
			}
			l.scratch = b
		}
		n, err := s.file.WriteAt(b, items[i].pos-s.base)
		if err != nil {
			err = fmt.Errorf("write %s at %d: %w", s.name, items[i].pos-s.base, err)
			if !errors.Is(err, syscall.ENOSPC) {
				return err
			}
			if uerr := l.segs.unwrite(items[:i], s, items[i].pos-s.base, n); uerr != nil {
				return fmt.Errorf("%w; undoing the partial write: %v", err, uerr)
			}
			return fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		l.tail.put(items[i].pos, b)
		i = j
	}
	if cap(l.scratch) > 8<<20 {
		l.scratch = nil
	}
	return nil
}

// unwrite zeroes what a failed round wrote: the whole of done and the
// first n bytes written at off in s. Recovery reads zeros as the end of
// the log, so none of it can come back after a crash as a message that was
// never acknowledged. Overwriting written bytes needs no new space.
func (ss *segmentSet) unwrite(done []pendingWrite, s *segment, off int64, n int) error {
	zero := func(f vfs.File, off int64, n int) error {
		z := make([]byte, min(n, 1<<20))
		for n > 0 {
			k := min(n, len(z))
			if _, err := f.WriteAt(z[:k], off); err != nil {
				return err
			}
			off += int64(k)
			n -= k
		}
		return nil
	}
	for _, it := range done {
		ds := ss.at(it.pos)
		if ds == nil {
			return fmt.Errorf("no segment for offset %d", it.pos)
		}
		if err := zero(ds.file, it.pos-ds.base, len(it.b)); err != nil {
			return err
		}
	}
	return zero(s.file, off, n)
}

func putBlank(b []byte, size int64) {
	binary.BigEndian.PutUint32(b, uint32(size))
	binary.BigEndian.PutUint32(b[4:], protocol.BlankMagic)
}
