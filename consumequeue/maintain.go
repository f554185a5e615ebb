package consumequeue

import (
	"fmt"
)

// DeleteTopic removes every queue of topic and its files, and writes a
// checkpoint past its records so a restart does not bring them back.
// Records of the topic appended later are indexed as a new topic.
func (s *Store) DeleteTopic(topic string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	t := s.topics[topic]
	delete(s.topics, topic)
	s.mu.Unlock()
	if t == nil {
		return nil
	}
	s.syncer.barrier()
	for _, q := range t.queues {
		q.mu.Lock()
		q.closeFiles()
		q.files, q.tail, q.gone = nil, nil, true
		if q.notify != nil {
			close(q.notify)
			q.notify = nil
		}
		q.mu.Unlock()
		q.stage, q.dirtyFiles = nil, nil
		if s.last == q {
			s.last = nil
		}
	}
	for dir := range s.writer.dirtyDirs {
		if dir == t.dir || s.fs.PathDir(dir) == t.dir {
			delete(s.writer.dirtyDirs, dir)
		}
	}
	if err := s.fs.RemoveAll(t.dir); err != nil {
		return fmt.Errorf("consumequeue: remove %s: %w", t.dir, err)
	}
	s.writer.dirtyDirs[s.opts.Dir] = struct{}{}
	s.log.Info().Str("topic", topic).Int("queues", len(t.queues)).Msg("consumequeue: topic deleted")
	return s.flushLocked(true)
}

// TrimBefore deletes, in every queue, the leading files whose entries all
// point below logOffset (normally the log's MinOffset after old segments
// were deleted). The file holding a queue's last entry is always kept, so
// MaxOffset survives. It returns the number of files deleted.
func (s *Store) TrimBefore(logOffset int64) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	closed := s.closed
	var qs []*queue
	for _, t := range s.topics {
		for _, q := range t.queues {
			qs = append(qs, q)
		}
	}
	s.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	s.syncer.barrier()
	removed := 0
	for _, q := range qs {
		for len(q.files) > 1 {
			f := q.files[0]
			lastEntry := f.first + s.epf - 1
			if lastEntry >= q.fileEnd {
				break
			}
			q.mu.RLock()
			e, err := q.entryRLocked(lastEntry)
			q.mu.RUnlock()
			if err != nil {
				return removed, err
			}
			if e.Offset >= logOffset {
				break
			}
			q.mu.Lock()
			q.files = q.files[1:]
			q.low = max(q.low, q.files[0].first)
			f.f.Close()
			q.mu.Unlock()
			if f.dirty {
				q.dirtyFiles = deleteFile(q.dirtyFiles, f)
			}
			if err := s.fs.Remove(f.name); err != nil {
				return removed, fmt.Errorf("consumequeue: remove %s: %w", f.name, err)
			}
			s.writer.dirtyDirs[q.dir] = struct{}{}
			removed++
		}
	}
	if removed > 0 {
		s.log.Info().Int64("offset", logOffset).Int("files", removed).Msg("consumequeue: trimmed queue files")
	}
	return removed, nil
}

func deleteFile(fs []*qfile, f *qfile) []*qfile {
	out := fs[:0]
	for _, g := range fs {
		if g != f {
			out = append(out, g)
		}
	}
	clear(fs[len(out):])
	return out
}
