package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ferrymq/ferry/protocol"
)

// ReadAt fills p with the log's bytes at off. The range must lie within one
// segment and below WrittenOffset.
func (l *Log) ReadAt(p []byte, off int64) error {
	end := off + int64(len(p))
	if off < 0 || end > l.written.Load() {
		return fmt.Errorf("%w: [%d, %d) beyond the written end %d", ErrOutOfRange, off, end, l.written.Load())
	}
	s := l.segs.at(off)
	if s == nil || end > s.base+l.opts.SegmentSize {
		return fmt.Errorf("%w: [%d, %d) not within one kept segment (min offset %d)", ErrOutOfRange, off, end, l.MinOffset())
	}
	if l.tail.get(p, off) {
		return nil
	}
	n, err := s.file.ReadAt(p, off-s.base)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("commitlog: read %s at %d: %w", s.name, off-s.base, err)
}

// Read returns the size bytes of the record at off, read into buf (grown if
// needed).
func (l *Log) Read(off int64, size int32, buf []byte) ([]byte, error) {
	if size < protocol.BlankMarkerSize {
		return nil, fmt.Errorf("%w: record size %d", ErrOutOfRange, size)
	}
	if cap(buf) < int(size) {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if err := l.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// ReadRecord reads and decodes the record at off (its size unknown).
func (l *Log) ReadRecord(off int64, buf []byte) (protocol.Record, []byte, error) {
	var hdr [4]byte
	if err := l.ReadAt(hdr[:], off); err != nil {
		return protocol.Record{}, buf, err
	}
	size := protocol.RecordSize(hdr[:])
	if size < fixedHeaderIPv4 || int64(size) > l.opts.SegmentSize {
		return protocol.Record{}, buf, fmt.Errorf("%w: no record at offset %d", ErrOutOfRange, off)
	}
	b, err := l.Read(off, size, buf)
	if err != nil {
		return protocol.Record{}, buf, err
	}
	rec, err := protocol.Decode(b)
	return rec, b, err
}

// Scan calls fn for every record from offset from up to limit (at most
// WrittenOffset), skipping blank markers, reading in chunks of len(*bufp)
// (grown for a larger record). rec aliases the buffer and is valid only
// during the call. Scan returns the offset after the last record visited;
// from must be the start of a record or a segment. An error from fn stops
// the scan and is returned with the offset of that record.
func (l *Log) Scan(from, limit int64, bufp *[]byte, fn func(off int64, rec []byte) error) (int64, error) {
	limit = min(limit, l.written.Load())
	if len(*bufp) < 64<<10 {
		*bufp = make([]byte, 1<<20)
	}
	pos := from
	for pos < limit {
		s := l.segs.at(pos)
		if s == nil {
			return pos, fmt.Errorf("%w: offset %d is in no kept segment (min offset %d)", ErrOutOfRange, pos, l.MinOffset())
		}
		segEnd := s.base + l.opts.SegmentSize
		buf := *bufp
		n := int(min(int64(len(buf)), min(limit, segEnd)-pos))
		// A finished segment's file ends at its blank marker, so a chunk may
		// come back short.
		got, err := n, error(nil)
		if !l.tail.get(buf[:n], pos) {
			got, err = s.file.ReadAt(buf[:n], pos-s.base)
		}
		if got < protocol.BlankMarkerSize && err != nil {
			return pos, fmt.Errorf("commitlog: read %s at %d: %w", s.name, pos-s.base, err)
		}
		chunk := buf[:got]
		p := 0
		for len(chunk)-p >= protocol.BlankMarkerSize {
			rest := chunk[p:]
			size := int(protocol.RecordSize(rest))
			if isBlank(rest) {
				pos = segEnd
				p = -1
				break
			}
			if size < fixedHeaderIPv4 {
				return pos + int64(p), fmt.Errorf("%w: record size %d at offset %d", protocol.ErrCorrupt, size, pos+int64(p))
			}
			if size > len(rest) {
				if p == 0 {
					if pos+int64(size) > limit {
						return pos, nil // the record ends past limit
					}
					*bufp = make([]byte, size)
				}
				break
			}
			if err := fn(pos+int64(p), rest[:size]); err != nil {
				return pos + int64(p), err
			}
			p += size
		}
		if p > 0 {
			pos += int64(p)
		} else if p == 0 && len(chunk) < protocol.BlankMarkerSize {
			return pos, fmt.Errorf("%w: %d stray bytes at offset %d", protocol.ErrCorrupt, len(chunk), pos)
		}
	}
	return pos, nil
}

func isBlank(b []byte) bool {
	return len(b) >= protocol.BlankMarkerSize && binary.BigEndian.Uint32(b[4:]) == protocol.BlankMagic
}
