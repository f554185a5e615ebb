package consumequeue

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
)

// readCheckpoint returns the checkpoint clamped to the log's range; the
// whole log without one.
func (s *Store) readCheckpoint() checkpoint {
	lo, hi := s.src.MinOffset(), s.src.WrittenOffset()
	var ck checkpoint
	b, err := commitlog.ReadFile(s.fs, s.fs.PathJoin(s.opts.Dir, checkpointName))
	if err == nil {
		ck, err = decodeCheckpoint(b)
	}
	if err != nil {
		if len(s.topics) > 0 {
			s.log.Warn().Err(err).Msg("consumequeue: no usable checkpoint; dispatching the whole log")
		}
		return checkpoint{queues: lo, listeners: lo}
	}
	clamp := func(v int64) int64 { return min(max(v, lo), hi) }
	if ck.queues > hi {
		s.log.Warn().Int64("checkpoint", ck.queues).Int64("log_end", hi).Msg("consumequeue: checkpoint past the log's end")
	}
	return checkpoint{queues: clamp(ck.queues), listeners: clamp(ck.listeners)}
}

// load opens every queue file under Dir and cuts each queue after its
// last valid entry.
func (s *Store) load() error {
	names, err := s.fs.List(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("consumequeue: list %s: %w", s.opts.Dir, err)
	}
	sort.Strings(names)
	written := s.src.WrittenOffset()
	for _, name := range names {
		tname, ok := parseTopicDirName(name)
		if !ok {
			continue
		}
		tdir := s.fs.PathJoin(s.opts.Dir, name)
		if st, err := s.fs.Stat(tdir); err != nil || !st.IsDir() {
			continue
		}
		qnames, err := s.fs.List(tdir)
		if err != nil {
			return fmt.Errorf("consumequeue: list %s: %w", tdir, err)
		}
		for _, qn := range qnames {
			id, err := strconv.ParseInt(qn, 10, 32)
			if err != nil || strconv.FormatInt(id, 10) != qn {
				continue
			}
			q, err := s.loadQueue(tname, s.fs.PathJoin(tdir, qn), int32(id), written)
			if err != nil {
				return err
			}
			if q == nil {
				continue
			}
			t := s.topics[tname]
			if t == nil {
				t = &topic{name: tname, dir: tdir, queues: make(map[int32]*queue)}
				s.topics[tname] = t
			}
			t.queues[q.id] = q
		}
	}
	return nil
}

func (s *Store) loadQueue(tname, dir string, id int32, written int64) (*queue, error) {
	names, err := s.fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("consumequeue: list %s: %w", dir, err)
	}
	q := &queue{topic: tname, id: id, dir: dir, epf: s.epf, dirtyFrom: -1}
	fileBytes := s.epf * EntrySize
	for _, n := range names {
		off, ok := parseFileName(n)
		if !ok {
			continue
		}
		if off%fileBytes != 0 {
			return nil, fmt.Errorf("%w: %s: file %s does not start at a multiple of %d bytes (was EntriesPerFile changed?)", ErrCorrupt, dir, n, fileBytes)
		}
		path := s.fs.PathJoin(dir, n)
		f, err := s.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			q.closeFiles()
			return nil, fmt.Errorf("consumequeue: open %s: %w", path, err)
		}
		q.files = append(q.files, &qfile{first: off / EntrySize, name: path, f: f})
	}
	if len(q.files) == 0 {
		return nil, nil
	}
	sort.Slice(q.files, func(i, j int) bool { return q.files[i].first < q.files[j].first })
	last := q.files[len(q.files)-1]
	st, err := last.f.Stat()
	if err != nil {
		q.closeFiles()
		return nil, fmt.Errorf("consumequeue: stat %s: %w", last.name, err)
	}
	q.low = q.files[0].first
	q.max = last.first + min(st.Size()/EntrySize, s.epf)
	q.fileEnd = q.max
	end, err := q.validEnd(written)
	if err != nil {
		q.closeFiles()
		return nil, err
	}
	if end == q.low {
		// Not one valid entry: the queue's records are past the log's end,
		// or its files were never synced. Drop it; dispatch recreates what
		// the log holds.
		s.log.Warn().Str("topic", tname).Int32("queue_id", id).Int64("offset", q.low).Int64("dropped", q.max-q.low).
			Msg("consumequeue: dropping a queue with no valid entry")
		q.closeFiles()
		for _, f := range q.files {
			if err := s.fs.Remove(f.name); err != nil {
				return nil, fmt.Errorf("consumequeue: remove %s: %w", f.name, err)
			}
		}
		return nil, syncDir(s.fs, dir)
	}
	if end < q.max {
		s.log.Warn().Str("topic", tname).Int32("queue_id", id).Int64("offset", end).Int64("dropped", q.max-end).
			Msg("consumequeue: dropping entries past the log's end")
		if err := s.cutQueue(q, end); err != nil {
			q.closeFiles()
			return nil, err
		}
	}
	return q, nil
}

// validEnd scans back from max for the last entry that points at a whole
// record below written, and returns the number just after it.
func (q *queue) validEnd(written int64) (int64, error) {
	const chunk = 256
	buf := make([]byte, chunk*EntrySize)
	end := q.max
	for end > q.low {
		from := max(q.low, end-chunk)
		b := buf[:(end-from)*EntrySize]
		if err := q.readRLocked(b, from); err != nil {
			return 0, err
		}
		for i := end - 1; i >= from; i-- {
			e := decodeEntry(b[(i-from)*EntrySize:], i)
			if e.Size > 0 && e.Offset >= 0 && e.Offset+int64(e.Size) <= written {
				return i + 1, nil
			}
		}
		end = from
	}
	return end, nil
}

type truncater interface{ Truncate(size int64) error }

// cutQueue removes every entry from end on, durably. It runs before the
// queue is shared.
func (s *Store) cutQueue(q *queue, end int64) error {
	keep := q.files[:0]
	removed := false
	for i, f := range q.files {
		if i > 0 && f.first >= end {
			f.f.Close()
			if err := s.fs.Remove(f.name); err != nil {
				return fmt.Errorf("consumequeue: remove %s: %w", f.name, err)
			}
			removed = true
			continue
		}
		keep = append(keep, f)
	}
	q.files = keep
	f := keep[len(keep)-1]
	cut := max(end-f.first, 0) * EntrySize
	st, err := f.f.Stat()
	if err != nil {
		return fmt.Errorf("consumequeue: stat %s: %w", f.name, err)
	}
	if st.Size() > cut {
		if err := truncateFile(f, st.Size(), cut); err != nil {
			return err
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("consumequeue: cut %s at %d: %w", f.name, cut, err)
		}
	}
	if removed {
		if err := syncDir(s.fs, q.dir); err != nil {
			return err
		}
	}
	q.max, q.fileEnd = end, end
	return nil
}

// truncateFile cuts f, size bytes long, to cut bytes; a file that cannot
// be truncated gets zeros from cut on (zero entries read as the end of the
// queue), which needs no new space.
func truncateFile(f *qfile, size, cut int64) error {
	var err error
	if t, ok := f.f.(truncater); ok {
		err = t.Truncate(cut)
	} else {
		_, err = f.f.WriteAt(make([]byte, size-cut), cut)
	}
	if err != nil {
		return fmt.Errorf("consumequeue: cut %s at %d: %w", f.name, cut, err)
	}
	return nil
}
