package kafkalayout

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// Visible returns how far (topic, partition) can be read: the flushed
// offset in sync mode (a crash cannot take it back), the written offset in
// async mode. It is 0 for a partition that does not exist.
func (s *Store) Visible(topic string, partition int32) int64 {
	p, err := s.partition(partKey{topic, partition}, false)
	if err != nil {
		return 0
	}
	return p.visible()
}

func (p *partition) visible() int64 {
	if p.s.opts.Flush == commitlog.FlushSync {
		return p.flushed.Load()
	}
	return p.written.Load()
}

// Read appends to dst up to max whole records of (topic, partition) from
// offset on, reading at most about maxBytes of log (at least one record is
// returned if one is visible), and returns dst and the number of records.
// Like a Kafka fetch it finds the start through the sparse index and scans
// forward from the indexed position. Reading past the visible end returns
// no records and no error.
func (s *Store) Read(topic string, partition int32, offset int64, max, maxBytes int, dst []byte) ([]byte, int, error) {
	p, err := s.partition(partKey{topic, partition}, false)
	if err != nil {
		return dst, 0, err
	}
	visible := p.visible()
	if offset >= visible || max <= 0 {
		return dst, 0, nil
	}
	segs := *p.segs.Load()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	if offset < 0 || i < 0 {
		return dst, 0, fmt.Errorf("%w: offset %d of %s-%d (first kept %d)", ErrOutOfRange, offset, topic, partition, segs[0].base)
	}
	n := 0
	for ; i < len(segs) && n < max && offset < visible; i++ {
		seg := segs[i]
		if offset >= seg.end.Load() {
			continue
		}
		var got int
		before := len(dst)
		dst, got, offset, err = s.readSegment(seg, offset, visible, max-n, maxBytes, dst)
		n += got
		if err != nil {
			return dst, n, err
		}
		if maxBytes -= len(dst) - before; maxBytes <= 0 {
			break
		}
	}
	return dst, n, nil
}

// readSegment reads records of seg from offset (below visible) into dst.
func (s *Store) readSegment(seg *segment, offset, visible int64, maxRecs, maxBytes int, dst []byte) ([]byte, int, int64, error) {
	pos := seg.lookup(offset)
	limit := seg.size.Load()
	n, need := 0, 0
	for n < maxRecs && pos < limit && offset < visible {
		// Read the stretch from the indexed position and what the caller
		// wants straight into dst, then drop what comes before offset.
		want := int64(max(maxBytes, need, 4096))
		if n == 0 {
			want += int64(s.opts.IndexInterval)
		}
		chunk := min(limit-pos, want)
		start := len(dst)
		dst = grow(dst, int(chunk))
		got, err := seg.log.ReadAt(dst[start:start+int(chunk)], pos)
		if got < int(chunk) {
			dst = dst[:start]
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return dst, n, offset, fmt.Errorf("kafkalayout: read %s at %d: %w", seg.logName, pos, err)
		}
		b := dst[start : start+got]
		keepFrom, keepTo, q := -1, 0, 0
		for len(b)-q >= minRecordSize && n < maxRecs {
			size := int(protocol.RecordSize(b[q:]))
			if size < minRecordSize {
				dst = dst[:start]
				return dst, n, offset, fmt.Errorf("%w: record size %d at %d in %s", ErrCorrupt, size, pos+int64(q), seg.logName)
			}
			if size > len(b)-q {
				if q == 0 {
					need = size
				}
				break
			}
			qo := protocol.QueueOffsetOf(b[q:])
			if qo >= visible {
				break
			}
			if qo >= offset {
				if keepFrom < 0 {
					keepFrom = q
				}
				keepTo = q + size
				offset = qo + 1
				n++
				maxBytes -= size
			}
			q += size
		}
		if keepFrom < 0 {
			dst = dst[:start]
		} else {
			copy(dst[start:], b[keepFrom:keepTo])
			dst = dst[:start+keepTo-keepFrom]
		}
		if (q == 0 && need <= len(b)) || maxBytes <= 0 || offset >= visible {
			break
		}
		pos += int64(q)
	}
	return dst, n, offset, nil
}

// grow extends b by n bytes (contents of the new bytes unspecified).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
