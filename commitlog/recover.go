package commitlog

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// recover opens the segments, finds the end of the valid log and cuts what
// follows it. It runs before the flusher starts, so it owns the Log.
func (l *Log) recover() error {
	started := time.Now()
	bases, err := l.segs.open()
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		if _, err := l.segs.create(0); err != nil {
			return err
		}
		return l.finishRecovery(0, map[queueKey]int64{}, 0, started, 0)
	}

	start := bases[0]
	table := map[queueKey]int64{}
	var lastTs int64
	ck, err := readCheckpoint(l.fs, l.opts.Dir)
	switch {
	case err == nil && ck.offset >= bases[0] && ck.offset <= bases[len(bases)-1]+l.opts.SegmentSize && l.segs.within(ck.offset):
		start, table, lastTs = ck.offset, ck.queues, ck.lastStoreTs
	case err == nil:
		l.log.Warn().Int64("checkpoint", ck.offset).Msg("commitlog: checkpoint outside the log; scanning all of it")
	case errors.Is(err, errBadCheckpoint):
		l.log.Warn().Err(err).Msg("commitlog: scanning the whole log")
	default:
		if len(bases) > 1 || bases[0] != 0 {
			l.log.Warn().Err(err).Msg("commitlog: no checkpoint; scanning the whole log")
		}
	}
	end, err := l.segs.scanValid(start, table, &lastTs)
	if err != nil {
		return err
	}
	return l.finishRecovery(end, table, lastTs, started, end-start)
}

// scanValid walks records from start, updating table and lastTs, and
// returns the end of the last valid record.
func (ss *segmentSet) scanValid(start int64, table map[queueKey]int64, lastTs *int64) (int64, error) {
	size := ss.size
	buf := make([]byte, 4<<20)
	pos := start
	for {
		s := ss.at(pos)
		if s == nil {
			return pos, nil // at a boundary past the last segment
		}
		fi, err := s.file.Stat()
		if err != nil {
			return 0, fmt.Errorf("commitlog: stat %s: %w", s.name, err)
		}
		fileEnd := s.base + min(fi.Size(), size)
		next, crossed, err := ss.scanSegment(s, pos, fileEnd, &buf, table, lastTs)
		if err != nil {
			return 0, err
		}
		if !crossed {
			return next, nil
		}
		pos = s.base + size
	}
}

// scanSegment scans s from pos to fileEnd. crossed reports a blank marker
// (the log continues in the next segment).
func (ss *segmentSet) scanSegment(s *segment, pos, fileEnd int64, bufp *[]byte, table map[queueKey]int64, lastTs *int64) (int64, bool, error) {
	segEnd := s.base + ss.size
	for pos < fileEnd {
		buf := *bufp
		n := int(min(int64(len(buf)), fileEnd-pos))
		if _, err := s.file.ReadAt(buf[:n], pos-s.base); err != nil && !errors.Is(err, io.EOF) {
			return 0, false, fmt.Errorf("commitlog: read %s: %w", s.name, err)
		}
		chunk := buf[:n]
		p := 0
		for {
			rest := chunk[p:]
			if len(rest) < protocol.BlankMarkerSize {
				break
			}
			sz := int64(protocol.RecordSize(rest))
			if sz == 0 {
				return pos + int64(p), false, nil // zeros: the end of what was written
			}
			rec, err := protocol.Decode(rest)
			if errors.Is(err, protocol.ErrBlank) {
				if sz != segEnd-(pos+int64(p)) {
					return pos + int64(p), false, nil // a blank marker of the wrong size is corruption
				}
				return segEnd, true, nil
			}
			if err != nil {
				if sz > int64(len(rest)) && pos+int64(p)+sz <= fileEnd && sz < ss.size {
					break // the record continues past this chunk: read on
				}
				ss.log.Warn().Err(err).Int64("offset", pos+int64(p)).Msg("commitlog: cutting the log at an invalid record")
				return pos + int64(p), false, nil
			}
			if rec.PhysicalOffset != pos+int64(p) {
				ss.log.Warn().Int64("offset", pos+int64(p)).Int64("recorded", rec.PhysicalOffset).Msg("commitlog: cutting the log at a misplaced record")
				return pos + int64(p), false, nil
			}
			k := queueKey{string(rec.Topic), rec.QueueID}
			if table[k] <= rec.QueueOffset {
				table[k] = rec.QueueOffset + 1
			}
			if rec.StoreTimestamp > *lastTs {
				*lastTs = rec.StoreTimestamp
			}
			p += int(rec.Size)
		}
		if p == 0 {
			if len(chunk) < protocol.BlankMarkerSize {
				return pos, false, nil // a torn tail too short for a header
			}
			// Not even one record fits the buffer: grow it to the record.
			need := int(protocol.RecordSize(chunk))
			if need <= len(buf) || need > int(ss.size) {
				return pos, false, nil
			}
			*bufp = make([]byte, need)
			continue
		}
		pos += int64(p)
	}
	return pos, false, nil
}

// finishRecovery cuts everything after end, publishes the positions and
// writes a fresh checkpoint.
func (l *Log) finishRecovery(end int64, table map[queueKey]int64, lastTs int64, started time.Time, scanned int64) error {
	if err := l.segs.cutAfter(end); err != nil {
		return err
	}
	l.writePos = end
	l.reserved = end
	l.written.Store(end)
	l.flushed.Store(end)
	l.queues = table
	l.pubQueues = maps.Clone(table)
	l.lastStoreTs = lastTs
	l.minOffset = l.segs.minBase()
	if err := writeCheckpoint(l.fs, l.opts.Dir, checkpoint{offset: end, lastStoreTs: lastTs, queues: table}); err != nil {
		return fmt.Errorf("commitlog: write checkpoint: %w", err)
	}
	l.flush.checkpointedOffset = end
	l.flush.lastCheckpoint = l.opts.Now()
	l.log.Info().Int64("end", end).Int64("scanned_bytes", scanned).Int("queues", len(table)).
		Int64("took_ms", time.Since(started).Milliseconds()).Msg("commitlog: recovered")
	return nil
}

type truncater interface{ Truncate(size int64) error }

// cutTail removes everything from off to the end of the segment file and
// syncs it. Files that cannot be truncated get the tail overwritten with
// zeros, which recovery reads as the end of the log.
func cutTail(s *segment, off int64) error {
	fi, err := s.file.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > off {
		if t, ok := s.file.(truncater); ok {
			if err := t.Truncate(off); err != nil {
				return err
			}
		} else {
			zeros := make([]byte, 64<<10)
			for p := off; p < fi.Size(); p += int64(len(zeros)) {
				n := min(int64(len(zeros)), fi.Size()-p)
				if _, err := s.file.WriteAt(zeros[:n], p); err != nil {
					return err
				}
			}
		}
	}
	return s.file.Sync()
}
