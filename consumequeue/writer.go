package consumequeue

import (
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// queueWriter writes the dispatcher's entries into the queues: it stages
// a batch's entries per queue and commits them (appending to a queue's
// tail, rewriting in place entries a queue already holds after a
// restart), writes tails to their files, creates files, and keeps what
// awaits a sync (the dirty queues, the directories created) for the next
// flush. It belongs to the holder of Store.writeMu; it takes a queue's
// lock to change what readers see.
type queueWriter struct {
	fs       vfs.FS
	epf      int64
	onNotify func(topic string, queueID int32)

	touched   []*queue            // queues with staged entries
	dirty     []*queue            // queues with unsynced entries
	dirtyDirs map[string]struct{} // directories created since the last flush
}

// stage adds e to q's staged entries.
func (w *queueWriter) stage(q *queue, e *Entry) error {
	if len(q.stage) > 0 && (e.QueueOffset != q.stageFrom+int64(len(q.stage)/EntrySize) || len(q.stage) >= stageLimit) {
		if err := w.commitStage(q); err != nil {
			return err
		}
	}
	if len(q.stage) == 0 {
		q.stageFrom = e.QueueOffset
	}
	if !q.touched {
		q.touched = true
		w.touched = append(w.touched, q)
	}
	q.stage = appendEntry(q.stage, e)
	return nil
}

// commitTouched commits the staged entries of every queue.
func (w *queueWriter) commitTouched() error {
	var first error
	for i, q := range w.touched {
		if err := w.commitStage(q); err != nil && first == nil {
			first = err
		}
		q.touched = false
		w.touched[i] = nil
	}
	w.touched = w.touched[:0]
	return first
}

// commitStage makes q's staged entries visible: entries already in
// the queue are rewritten in place (re-dispatch after a restart), new ones
// are appended to the tail, waking q's waiters once.
func (w *queueWriter) commitStage(q *queue) error {
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
		if err := w.writeAt(q, b[:n*EntrySize], at); err != nil {
			return err
		}
		w.markDirty(q, logOff, int(n*EntrySize))
		b, at = b[n*EntrySize:], at+n
	}
	if len(b) > 0 && at < q.max {
		n := min(int64(len(b)/EntrySize), q.max-at)
		q.mu.Lock()
		copy(q.tail[(at-q.fileEnd)*EntrySize:], b[:n*EntrySize])
		q.mu.Unlock()
		w.markDirty(q, logOff, int(n*EntrySize))
		b, at = b[n*EntrySize:], at+n
	}
	if len(b) == 0 {
		return nil
	}
	if at > q.max {
		// A gap: the entries in between were never written (the log lost
		// them, or they expired before a rebuild). They read as holes.
		if err := w.writeTail(q); err != nil {
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
		if w.onNotify != nil {
			w.onNotify(q.topic, q.id)
		}
	}
	w.markDirty(q, decodeEntry(b, at).Offset, len(b))
	if len(q.tail) >= tailFlushBytes {
		return w.writeTail(q)
	}
	return nil
}

// markDirty records that n bytes of q's entries, the first for log
// offset logOff, await a sync.
func (w *queueWriter) markDirty(q *queue, logOff int64, n int) {
	q.unsynced += n
	if !q.inDirty {
		q.inDirty = true
		q.dirtyFrom = logOff
		q.dirtySince = time.Now()
		w.dirty = append(w.dirty, q)
	} else if logOff < q.dirtyFrom {
		q.dirtyFrom = logOff
	}
}

// writeTail writes q's tail to its files.
func (w *queueWriter) writeTail(q *queue) error {
	if len(q.tail) == 0 {
		return nil
	}
	if err := w.writeAt(q, q.tail, q.fileEnd); err != nil {
		return err
	}
	q.mu.Lock()
	q.fileEnd += int64(len(q.tail) / EntrySize)
	q.tail = q.tail[:0]
	q.mu.Unlock()
	return nil
}

// writeAt writes the entries b at entry number at, one write per file.
func (w *queueWriter) writeAt(q *queue, b []byte, at int64) error {
	for len(b) > 0 {
		f, err := w.fileFor(q, at)
		if err != nil {
			return err
		}
		rel := at - f.first
		n := min(len(b), int((w.epf-rel)*EntrySize))
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

// fileFor returns the file holding entry number at, creating it.
func (w *queueWriter) fileFor(q *queue, at int64) (*qfile, error) {
	first := at - at%w.epf
	i := sort.Search(len(q.files), func(i int) bool { return q.files[i].first >= first })
	if i < len(q.files) && q.files[i].first == first {
		return q.files[i], nil
	}
	name := w.fs.PathJoin(q.dir, fileName(first))
	f, err := w.fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("consumequeue: create %s: %w", name, err)
	}
	w.dirtyDirs[q.dir] = struct{}{}
	qf := &qfile{first: first, name: name, f: f}
	q.mu.Lock()
	q.files = append(q.files, nil)
	copy(q.files[i+1:], q.files[i:])
	q.files[i] = qf
	q.mu.Unlock()
	return qf, nil
}
