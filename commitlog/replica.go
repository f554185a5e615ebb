package commitlog

import (
	"errors"
	"fmt"
	"maps"
	"math"

	"github.com/ferrymq/ferry/protocol"
)

// replicaWriter is what a slave of a replicated broker group needs of its
// log besides the epoch history (epochs.go): writing the master's bytes at
// the offsets the master wrote them (AppendRaw), cutting a tail the master
// never had (Truncate), starting over (Reset). A slave's log takes no
// local appends; the two kinds of writes are kept apart by the append lock
// and refuse to interleave. It works on the log's state under the log's
// locks; the Log owns it and exposes its writes.
type replicaWriter struct{ l *Log }

// AppendRaw writes b, whole records as another log stored them (possibly
// ending a segment with its blank marker, after which the next record
// starts at the following segment's base), at off, which must equal
// WrittenOffset. Every record is checked before anything is written: its
// structure and both checksums, that its PHYSICALOFFSET is where it lands,
// and that it leaves room for a blank marker in its segment; a blank
// marker must end its segment exactly. Segments roll where the marker says,
// so the log stays a byte-for-byte copy of the other. Queue offsets and the
// store time follow the records. AppendRaw returns once the bytes are
// written (page cache); Sync makes them durable.
func (l *Log) AppendRaw(off int64, b []byte) error {
	return l.replica.appendRaw(off, b)
}

// Reset empties the log and starts it again at base, a multiple of the
// segment size past its end: a slave too far behind its master starts
// over from the master's oldest segment. Every segment, the epoch history
// and the queue offsets go; it is durable when Reset returns. A crash
// midway leaves a contiguous prefix of the old segments or none, from
// which the slave starts over again.
func (l *Log) Reset(base int64) error {
	return l.replica.reset(base)
}

// Truncate cuts the log back to off, which must be the start of a record
// (or a segment) between MinOffset and WrittenOffset: the segments after
// it are deleted, the one holding it cut, the epoch history loses the
// entries starting at or after it, and the next queue offsets become those
// of the first record cut from each queue, so later appends continue
// without a gap. The cut is durable when Truncate returns. Readers must not
// be reading at or past off (a slave stops its dispatcher first).
func (l *Log) Truncate(off int64) error {
	return l.replica.truncate(off)
}

// ErrNotContiguous is returned by AppendRaw when the bytes do not start at
// the log's end.
var ErrNotContiguous = errors.New("commitlog: raw append not at the end of the log")

// appendRaw is AppendRaw.
func (w replicaWriter) appendRaw(off int64, b []byte) error {
	l := w.l
	if end := l.written.Load(); off != end {
		return fmt.Errorf("%w: bytes at %d, log ends at %d", ErrNotContiguous, off, end)
	}
	rolls, table, lastTs, err := checkRaw(off, b, l.opts.SegmentSize)
	if err != nil {
		return err
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return ErrClosed
	case l.err != nil:
		err := l.err
		l.mu.Unlock()
		return err
	case l.writing || l.reserved != l.writePos:
		l.mu.Unlock()
		return errors.New("commitlog: raw append while local appends are in flight")
	case off != l.writePos:
		end := l.writePos
		l.mu.Unlock()
		return fmt.Errorf("%w: bytes at %d, log ends at %d", ErrNotContiguous, off, end)
	}
	for _, base := range rolls {
		if _, err := l.segs.create(base); err != nil {
			err = l.setStickyLocked(err)
			l.mu.Unlock()
			return err
		}
	}
	end := off + rawSpan(off, b, l.opts.SegmentSize)
	l.writing = true
	l.reserved = end
	l.mu.Unlock()

	l.tail.reset() // raw writes are not kept (readers of a replica read the files)
	err = l.segs.writeRaw(off, b)

	l.mu.Lock()
	if err != nil {
		l.reserved = l.writePos
		err = l.setStickyLocked(err)
	} else {
		l.writePos = end
		l.reserved = end
		l.written.Store(end)
		for k, n := range table {
			l.queues[k] = max(l.queues[k], n)
			l.pubQueues[k] = max(l.pubQueues[k], n)
		}
		l.lastStoreTs = max(l.lastStoreTs, lastTs)
	}
	if len(l.pending) > 0 {
		l.leadLocked() // a local append queued behind this write; it unlocks
	} else {
		l.writing = false
		l.writeIdle.Broadcast()
		l.mu.Unlock()
	}
	if err != nil {
		return err
	}
	if l.opts.Flush == FlushSync || end-l.flushed.Load() >= l.opts.FlushDirtyBytes {
		l.flush.ring()
	}
	if l.opts.Flush == FlushAsync {
		l.watchers.Ring()
	}
	return nil
}

// rawSpan is how far b, written at off, moves the log's end: a blank
// marker takes the rest of its segment.
func rawSpan(off int64, b []byte, segSize int64) int64 {
	pos, p := off, 0
	for p < len(b) {
		if isBlank(b[p:]) {
			pos = (pos/segSize + 1) * segSize
			p += protocol.BlankMarkerSize
			continue
		}
		n := int(protocol.RecordSize(b[p:]))
		pos += int64(n)
		p += n
	}
	return pos - off
}

// checkRaw validates b as bytes to write at off, in segments of seg bytes, and returns the segment
// bases its markers roll to, the next queue offset of every queue it
// holds and its largest store time.
func checkRaw(off int64, b []byte, seg int64) (rolls []int64, table map[queueKey]int64, lastTs int64, err error) {
	table = map[queueKey]int64{}
	pos, p := off, 0
	for p < len(b) {
		rest := b[p:]
		if len(rest) < protocol.BlankMarkerSize {
			return nil, nil, 0, fmt.Errorf("%w: %d stray bytes at offset %d", protocol.ErrCorrupt, len(rest), pos)
		}
		segEnd := (pos/seg + 1) * seg
		if isBlank(rest) {
			if size := int64(protocol.RecordSize(rest)); size != segEnd-pos {
				return nil, nil, 0, fmt.Errorf("%w: blank marker of %d bytes at %d, the segment ends at %d", protocol.ErrCorrupt, size, pos, segEnd)
			}
			rolls = append(rolls, segEnd)
			pos = segEnd
			p += protocol.BlankMarkerSize
			continue
		}
		rec, err := protocol.Decode(rest)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("record at %d: %w", pos, err)
		}
		if rec.PhysicalOffset != pos {
			return nil, nil, 0, fmt.Errorf("%w: record for offset %d arrived at %d", protocol.ErrCorrupt, rec.PhysicalOffset, pos)
		}
		if pos+int64(rec.Size)+protocol.BlankMarkerSize > segEnd {
			return nil, nil, 0, fmt.Errorf("%w: record at %d (%d bytes) leaves no room for the blank marker of its segment", protocol.ErrCorrupt, pos, rec.Size)
		}
		k := queueKey{string(rec.Topic), rec.QueueID}
		table[k] = max(table[k], rec.QueueOffset+1)
		lastTs = max(lastTs, rec.StoreTimestamp)
		pos += int64(rec.Size)
		p += int(rec.Size)
	}
	return rolls, table, lastTs, nil
}

// writeRaw writes b at off with one pwrite per segment it touches.
func (ss *segmentSet) writeRaw(off int64, b []byte) error {
	seg := ss.size
	for len(b) > 0 {
		// Up to and including a blank marker; the rest is the next segment's.
		n, next := len(b), off+int64(len(b))
		for p := 0; p < len(b); p += int(protocol.RecordSize(b[p:])) {
			if isBlank(b[p:]) {
				n, next = p+protocol.BlankMarkerSize, (off/seg+1)*seg
				break
			}
		}
		s := ss.at(off)
		if s == nil {
			return fmt.Errorf("no segment for offset %d", off)
		}
		if _, err := s.file.WriteAt(b[:n], off-s.base); err != nil {
			return fmt.Errorf("write %s at %d: %w", s.name, off-s.base, err)
		}
		off, b = next, b[n:]
	}
	return nil
}

// reset is Reset.
func (w replicaWriter) reset(base int64) error {
	l := w.l
	if err := w.lockForRewrite("reset"); err != nil {
		return err
	}
	defer w.unlockRewrite()
	if base%l.opts.SegmentSize != 0 || base < l.writePos {
		return fmt.Errorf("%w: reset to %d: not a segment base at or past the end %d", ErrOutOfRange, base, l.writePos)
	}
	if err := l.epochs.truncate(math.MinInt64); err != nil {
		return err
	}
	if err := l.segs.reset(base); err != nil {
		return l.setStickyLocked(err)
	}
	l.writePos, l.reserved, l.minOffset = base, base, base
	l.tail.reset()
	l.written.Store(base)
	l.flushed.Store(base)
	l.queues = map[queueKey]int64{}
	l.pubQueues = map[queueKey]int64{}
	if err := writeCheckpoint(l.fs, l.opts.Dir, checkpoint{offset: base, lastStoreTs: l.lastStoreTs, queues: l.queues}); err != nil {
		l.log.Warn().Err(err).Msg("commitlog: checkpoint after reset failed")
	} else {
		l.flush.checkpointedOffset = base
	}
	l.log.Warn().Int64("offset", base).Msg("commitlog: emptied to start over")
	return nil
}

// truncate is Truncate.
func (w replicaWriter) truncate(off int64) error {
	l := w.l
	if err := w.lockForRewrite("truncate"); err != nil {
		return err
	}
	defer w.unlockRewrite()
	if off < l.minOffset || off > l.writePos {
		return fmt.Errorf("%w: truncate to %d outside [%d, %d]", ErrOutOfRange, off, l.minOffset, l.writePos)
	}
	// Each queue's next offset is the queue offset of its first record cut
	// (queue offsets are dense and increase along the log).
	table := maps.Clone(l.queues)
	first := map[queueKey]bool{}
	var buf []byte
	notRecord := fmt.Errorf("%w: %d is not the start of a record", ErrOutOfRange, off)
	end, err := l.Scan(off, l.writePos, &buf, func(pos int64, b []byte) error {
		rec, err := protocol.Decode(b)
		if err != nil || rec.PhysicalOffset != pos {
			return notRecord
		}
		k := queueKey{string(rec.Topic), rec.QueueID}
		if !first[k] {
			first[k] = true
			if rec.QueueOffset == 0 {
				delete(table, k)
			} else {
				table[k] = rec.QueueOffset
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case end != l.writePos:
		return notRecord
	}
	// The history first: a crash after it leaves a tail that the next
	// handshake cuts again, never an entry that points past the log.
	if err := l.epochs.truncate(off); err != nil {
		return err
	}
	if off == l.writePos {
		return nil
	}
	if l.flushed.Load() < off {
		if err := l.segs.syncRange(l.flushed.Load(), off); err != nil {
			return l.setStickyLocked(err)
		}
	}
	if err := l.segs.truncate(off); err != nil {
		return l.setStickyLocked(err)
	}
	l.writePos, l.reserved = off, off
	l.tail.reset()
	l.written.Store(off)
	l.flushed.Store(off)
	l.queues = table
	l.pubQueues = maps.Clone(table)
	if err := writeCheckpoint(l.fs, l.opts.Dir, checkpoint{offset: off, lastStoreTs: l.lastStoreTs, queues: table}); err != nil {
		// Recovery scans from further back instead; the cut stands.
		l.log.Warn().Err(err).Msg("commitlog: checkpoint after truncation failed")
	} else {
		l.flush.checkpointedOffset = off
	}
	l.log.Info().Int64("offset", off).Msg("commitlog: truncated")
	return nil
}

// lockForRewrite takes the flush and the append lock for rewriting the
// log (Truncate, Reset): no flush round can publish a flushed offset past
// the rewrite, and no append is in flight. On an error both are released.
func (w replicaWriter) lockForRewrite(what string) error {
	l := w.l
	l.flush.mu.Lock()
	l.mu.Lock()
	var err error
	switch {
	case l.closed:
		err = ErrClosed
	case l.err != nil:
		err = l.err
	case l.writing || l.reserved != l.writePos:
		err = fmt.Errorf("commitlog: %s while appends are in flight", what)
	}
	if err != nil {
		w.unlockRewrite()
	}
	return err
}

func (w replicaWriter) unlockRewrite() {
	l := w.l
	l.mu.Unlock()
	l.flush.mu.Unlock()
}

// ReadRecords fills p with the whole records that start at off, within
// off's segment and below limit (at most WrittenOffset), for shipping them
// as they are: it returns how many bytes of p hold records and the offset
// that follows them. When the segment ends there with its blank marker,
// the marker is included and next is the following segment's base. A
// record larger than p gives n = 0 (read its size and call again with a
// larger p). off must be the start of a record.
func (l *Log) ReadRecords(p []byte, off, limit int64) (n int, next int64, err error) {
	limit = min(limit, l.written.Load())
	s := l.segs.at(off)
	if s == nil || off >= limit {
		return 0, off, fmt.Errorf("%w: no records at %d (min offset %d, limit %d)", ErrOutOfRange, off, l.MinOffset(), limit)
	}
	segEnd := s.base + l.opts.SegmentSize
	m := int(min(int64(len(p)), min(limit, segEnd)-off))
	// A finished segment's file ends at its blank marker: a short read is
	// expected there.
	got, rerr := s.file.ReadAt(p[:m], off-s.base)
	if got < protocol.BlankMarkerSize && rerr != nil {
		return 0, off, fmt.Errorf("commitlog: read %s at %d: %w", s.name, off-s.base, rerr)
	}
	for n+protocol.BlankMarkerSize <= got {
		if isBlank(p[n:]) {
			return n + protocol.BlankMarkerSize, segEnd, nil
		}
		size := int(protocol.RecordSize(p[n:]))
		if size < fixedHeaderIPv4 {
			return 0, off, fmt.Errorf("%w: record size %d at offset %d", protocol.ErrCorrupt, size, off+int64(n))
		}
		if n+size > got {
			break
		}
		n += size
	}
	return n, off + int64(n), nil
}
