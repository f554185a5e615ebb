package kafkalayout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// Part of the format.
const (
	logSuffix      = ".log"
	indexSuffix    = ".index"
	indexEntrySize = 8
	// indexWriteBatch is how many index entries are collected before they
	// are written to the index file (4 KiB).
	indexWriteBatch = 512
)

type indexEntry struct {
	rel uint32 // message offset - segment base
	pos uint32 // byte position in the .log file
}

// segment is one .log file and its .index. Fields without a comment are
// set once.
type segment struct {
	base    int64 // first message offset
	logName string
	log     vfs.File
	idx     vfs.File

	size atomic.Int64 // bytes of complete records in the .log file
	end  atomic.Int64 // message offset after its last record

	idxMu sync.RWMutex
	index []indexEntry // guarded by idxMu; appended under the partition lock

	// Guarded by the partition's mu.
	idxWritten int   // entries already in the index file
	sinceIndex int64 // log bytes since the last index entry
}

// partition is one (topic, partition) log.
//
// mu is the append lock: it guards the fields below it and serialises
// appends, rolls and the start of a flush round. Readers never take it:
// they read below written (or flushed) from the segment list in segs.
type partition struct {
	s   *Store
	key partKey
	dir string

	mu     sync.Mutex
	next   int64         // next message offset
	lastTs int64         // last store timestamp, ms
	round  chan struct{} // closed when the flush round covering the writes so far ends
	queued bool          // in the sync queue
	closed bool

	segs    atomic.Pointer[[]*segment] // sorted by base, copy-on-write
	written atomic.Int64               // message offsets below are readable in async mode
	flushed atomic.Int64               // message offsets below are synced
}

func partitionDirName(k partKey) string { return k.topic + "-" + strconv.Itoa(int(k.id)) }

func segmentBaseName(base int64) string { return fmt.Sprintf("%020d", base) }

func (p *partition) active() *segment {
	segs := *p.segs.Load()
	return segs[len(segs)-1]
}

func (p *partition) publish(segs []*segment) { p.segs.Store(&segs) }

// openPartition creates the partition (create) or recovers it from disk.
func (s *Store) openPartition(key partKey, create bool) (*partition, error) {
	p := &partition{s: s, key: key, dir: s.fs.PathJoin(s.opts.Dir, partitionDirName(key)), round: make(chan struct{})}
	if create {
		if err := s.fs.MkdirAll(p.dir, 0o755); err != nil {
			return nil, fmt.Errorf("kafkalayout: create %s: %w", p.dir, err)
		}
		if err := syncDir(s.fs, s.opts.Dir); err != nil {
			return nil, err
		}
		seg, err := p.createSegment(0)
		if err != nil {
			return nil, err
		}
		p.publish([]*segment{seg})
		return p, nil
	}
	if err := p.recover(); err != nil {
		p.closeFiles()
		return nil, err
	}
	return p, nil
}

// createSegment creates the files of the segment starting at base and
// makes their directory entries durable.
func (p *partition) createSegment(base int64) (*segment, error) {
	fs := p.s.fs
	name := fs.PathJoin(p.dir, segmentBaseName(base))
	seg := &segment{base: base, logName: name + logSuffix}
	var err error
	if seg.log, err = fs.Create(name+logSuffix, vfs.WriteCategoryUnspecified); err != nil {
		return nil, fmt.Errorf("kafkalayout: create %s: %w", name+logSuffix, err)
	}
	if seg.idx, err = fs.Create(name+indexSuffix, vfs.WriteCategoryUnspecified); err != nil {
		seg.log.Close()
		return nil, fmt.Errorf("kafkalayout: create %s: %w", name+indexSuffix, err)
	}
	if err := syncDir(fs, p.dir); err != nil {
		seg.close()
		return nil, err
	}
	seg.end.Store(base)
	return seg, nil
}

func (seg *segment) close() error {
	err := seg.log.Close()
	if e := seg.idx.Close(); err == nil {
		err = e
	}
	return err
}

// append writes the records in b (sealing each) and returns the results,
// the round to wait for in sync mode and the offset after the last record.
func (p *partition) append(b []byte, res []commitlog.AppendResult) ([]commitlog.AppendResult, chan struct{}, int64, error) {
	s := p.s
	p.mu.Lock()
	if err := s.Err(); err != nil {
		p.mu.Unlock()
		return res, nil, 0, err
	}
	ts := s.opts.Now().UnixMilli()
	if ts < p.lastTs {
		ts = p.lastTs
	}
	seg := p.active()
	pos := seg.size.Load()
	next := p.next
	chunkStart, chunkPos := 0, pos
	var newIdx [8]indexEntry
	idx := newIdx[:0]
	var err error
	for i := 0; i < len(b); {
		size := int(protocol.RecordSize(b[i:]))
		if pos > 0 && pos+int64(size) > s.opts.SegmentSize {
			if err = p.writeLocked(seg, b[chunkStart:i], chunkPos); err != nil {
				break
			}
			if err = seg.addIndex(idx); err != nil {
				break
			}
			idx = idx[:0]
			seg.size.Store(pos)
			seg.end.Store(next)
			if seg, err = p.rollLocked(seg, next); err != nil {
				break
			}
			pos, chunkStart, chunkPos = 0, i, 0
		}
		if seg.sinceIndex >= int64(s.opts.IndexInterval) {
			idx = append(idx, indexEntry{uint32(next - seg.base), uint32(pos)})
			seg.sinceIndex = 0
		}
		seg.sinceIndex += int64(size)
		sealRecord(b[i:i+size], next, pos, ts)
		res = append(res, commitlog.AppendResult{Offset: pos, Size: int32(size), QueueOffset: next, StoreTimestamp: ts})
		next++
		pos += int64(size)
		i += size
	}
	if err == nil {
		err = p.writeLocked(seg, b[chunkStart:], chunkPos)
	}
	if err != nil {
		p.mu.Unlock()
		return res, nil, 0, err
	}
	if err := seg.addIndex(idx); err != nil {
		p.mu.Unlock()
		return res, nil, 0, err
	}
	seg.size.Store(pos)
	seg.end.Store(next)
	p.next = next
	p.lastTs = ts
	p.written.Store(next)
	round := p.round
	enqueue := s.opts.Flush == commitlog.FlushSync && !p.queued
	if enqueue {
		p.queued = true
	}
	p.mu.Unlock()
	if enqueue {
		s.syncq.push(p)
	}
	return res, round, next, nil
}

func (p *partition) writeLocked(seg *segment, b []byte, pos int64) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := seg.log.WriteAt(b, pos); err != nil {
		return p.s.setSticky(fmt.Errorf("write %s at %d: %w", seg.logName, pos, err))
	}
	return nil
}

// addIndex publishes new index entries and writes them to the index file
// once a batch of them is waiting. Called with the partition lock held.
func (seg *segment) addIndex(e []indexEntry) error {
	if len(e) == 0 {
		return nil
	}
	seg.idxMu.Lock()
	seg.index = append(seg.index, e...)
	n := len(seg.index)
	seg.idxMu.Unlock()
	if n-seg.idxWritten >= indexWriteBatch {
		return seg.writeIndex()
	}
	return nil
}

// writeIndex writes the entries not yet in the index file. Called with the
// partition lock held (or by the owner of the partition during recovery and
// Close).
func (seg *segment) writeIndex() error {
	seg.idxMu.RLock()
	pending := seg.index[seg.idxWritten:]
	seg.idxMu.RUnlock()
	if len(pending) == 0 {
		return nil
	}
	b := make([]byte, len(pending)*indexEntrySize)
	for i, e := range pending {
		binary.BigEndian.PutUint32(b[i*indexEntrySize:], e.rel)
		binary.BigEndian.PutUint32(b[i*indexEntrySize+4:], e.pos)
	}
	if _, err := seg.idx.WriteAt(b, int64(seg.idxWritten)*indexEntrySize); err != nil {
		return fmt.Errorf("kafkalayout: write index of %s: %w", seg.logName, err)
	}
	seg.idxWritten += len(pending)
	return nil
}

// rollLocked syncs seg (log and index) and starts a new segment at next.
func (p *partition) rollLocked(seg *segment, next int64) (*segment, error) {
	if err := seg.writeIndex(); err != nil {
		return nil, p.s.setSticky(err)
	}
	if err := seg.log.SyncData(); err != nil {
		return nil, p.s.setSticky(fmt.Errorf("sync %s: %w", seg.logName, err))
	}
	if err := seg.idx.SyncData(); err != nil {
		return nil, p.s.setSticky(fmt.Errorf("sync index of %s: %w", seg.logName, err))
	}
	ns, err := p.createSegment(next)
	if err != nil {
		return nil, p.s.setSticky(err)
	}
	segs := append(append([]*segment(nil), *p.segs.Load()...), ns)
	p.publish(segs)
	return ns, nil
}

// lookup returns the byte position of the last indexed record at or before
// offset.
func (seg *segment) lookup(offset int64) int64 {
	rel := uint32(offset - seg.base)
	seg.idxMu.RLock()
	defer seg.idxMu.RUnlock()
	i := sort.Search(len(seg.index), func(i int) bool { return seg.index[i].rel > rel })
	if i == 0 {
		return 0
	}
	return int64(seg.index[i-1].pos)
}

func (p *partition) closeFiles() error {
	segsp := p.segs.Load()
	if segsp == nil {
		return nil
	}
	var err error
	for _, seg := range *segsp {
		if e := seg.writeIndex(); err == nil && e != nil {
			err = e
		}
		if e := seg.idx.Sync(); err == nil && e != nil {
			err = e
		}
		if e := seg.close(); err == nil && e != nil {
			err = e
		}
	}
	return err
}

// recover opens the partition's segments, trusts every segment but the
// last (each was synced when it was rolled), and scans the last one for the
// end of its valid records, cutting what follows and rebuilding its index.
func (p *partition) recover() error {
	fs := p.s.fs
	names, err := fs.List(p.dir)
	if err != nil {
		return fmt.Errorf("kafkalayout: list %s: %w", p.dir, err)
	}
	var bases []int64
	for _, n := range names {
		if !strings.HasSuffix(n, logSuffix) || len(n) != 20+len(logSuffix) {
			continue
		}
		b, err := strconv.ParseInt(strings.TrimSuffix(n, logSuffix), 10, 64)
		if err == nil && b >= 0 {
			bases = append(bases, b)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	if len(bases) == 0 {
		seg, err := p.createSegment(0)
		if err != nil {
			return err
		}
		p.publish([]*segment{seg})
		return nil
	}
	var segs []*segment
	for i, b := range bases {
		name := fs.PathJoin(p.dir, segmentBaseName(b))
		seg := &segment{base: b, logName: name + logSuffix}
		if seg.log, err = fs.OpenReadWrite(name+logSuffix, vfs.WriteCategoryUnspecified); err != nil {
			p.publish(segs)
			return fmt.Errorf("kafkalayout: open %s: %w", name+logSuffix, err)
		}
		if seg.idx, err = fs.OpenReadWrite(name+indexSuffix, vfs.WriteCategoryUnspecified); err != nil {
			seg.log.Close()
			p.publish(segs)
			return fmt.Errorf("kafkalayout: open %s: %w", name+indexSuffix, err)
		}
		segs = append(segs, seg)
		if i < len(bases)-1 {
			if err := seg.loadClosed(bases[i+1]); err != nil {
				p.publish(segs)
				return err
			}
		}
	}
	p.publish(segs)
	last := segs[len(segs)-1]
	if err := p.scanActive(last); err != nil {
		return err
	}
	p.next = last.end.Load()
	p.written.Store(p.next)
	p.flushed.Store(p.next)
	return nil
}

// loadClosed reads the index of a rolled segment that ends at end.
func (seg *segment) loadClosed(end int64) error {
	fi, err := seg.log.Stat()
	if err != nil {
		return fmt.Errorf("kafkalayout: stat %s: %w", seg.logName, err)
	}
	seg.size.Store(fi.Size())
	seg.end.Store(end)
	b, err := io.ReadAll(io.NewSectionReader(seg.idx, 0, 1<<40))
	if err != nil {
		return fmt.Errorf("kafkalayout: read index of %s: %w", seg.logName, err)
	}
	if len(b)%indexEntrySize != 0 {
		return fmt.Errorf("%w: index of %s has %d bytes, not a multiple of %d", ErrCorrupt, seg.logName, len(b), indexEntrySize)
	}
	for i := 0; i < len(b); i += indexEntrySize {
		e := indexEntry{binary.BigEndian.Uint32(b[i:]), binary.BigEndian.Uint32(b[i+4:])}
		if e == (indexEntry{}) {
			break // zeros left by a cut: the end of the entries
		}
		if int64(e.pos) >= fi.Size() || int64(e.rel) >= end-seg.base || (len(seg.index) > 0 && e.rel <= seg.index[len(seg.index)-1].rel) {
			return fmt.Errorf("%w: index entry %d of %s points outside it", ErrCorrupt, i/indexEntrySize, seg.logName)
		}
		seg.index = append(seg.index, e)
	}
	seg.idxWritten = len(seg.index)
	return nil
}

type truncater interface{ Truncate(size int64) error }

// scanActive finds the valid end of the active segment, cuts the file
// there and rebuilds the index.
func (p *partition) scanActive(seg *segment) error {
	fi, err := seg.log.Stat()
	if err != nil {
		return fmt.Errorf("kafkalayout: stat %s: %w", seg.logName, err)
	}
	fileSize := fi.Size()
	interval := int64(p.s.opts.IndexInterval)
	buf := make([]byte, 1<<20)
	var pos, since int64
	next := seg.base
	for done := false; pos < fileSize && !done; {
		n := int(min(int64(len(buf)), fileSize-pos))
		got, err := seg.log.ReadAt(buf[:n], pos)
		if got < n && err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("kafkalayout: read %s: %w", seg.logName, err)
		}
		chunk := buf[:got]
		q := 0
		for len(chunk)-q >= 8 {
			size := int(protocol.RecordSize(chunk[q:]))
			if size < minRecordSize || int64(size) > p.s.opts.SegmentSize {
				done = true
				break
			}
			if size > len(chunk)-q {
				if q == 0 && pos+int64(size) <= fileSize {
					buf = make([]byte, size) // one record larger than the buffer
				} else if q == 0 {
					done = true // a torn record at the end of the file
				}
				break
			}
			rec, err := protocol.Decode(chunk[q : q+size])
			if err != nil || rec.QueueOffset != next || rec.PhysicalOffset != pos+int64(q) {
				done = true
				break
			}
			if since >= interval {
				seg.index = append(seg.index, indexEntry{uint32(next - seg.base), uint32(pos + int64(q))})
				since = 0
			}
			since += int64(size)
			if rec.StoreTimestamp > p.lastTs {
				p.lastTs = rec.StoreTimestamp
			}
			next++
			q += size
		}
		if q == 0 && len(chunk)-q < 8 {
			done = true
		}
		pos += int64(q)
	}
	if pos < fileSize {
		if err := cutFile(seg.log, pos, fileSize); err != nil {
			return fmt.Errorf("kafkalayout: cut %s at %d: %w", seg.logName, pos, err)
		}
	}
	seg.size.Store(pos)
	seg.end.Store(next)
	seg.sinceIndex = since
	// Rewrite the index from scratch: zero what was there, then the entries.
	if fi, err := seg.idx.Stat(); err == nil && fi.Size() > 0 {
		if err := cutFile(seg.idx, 0, fi.Size()); err != nil {
			return fmt.Errorf("kafkalayout: reset index of %s: %w", seg.logName, err)
		}
	}
	seg.idxWritten = 0
	if err := seg.writeIndex(); err != nil {
		return err
	}
	return seg.idx.Sync()
}

// cutFile removes [off, size) from f, or zeroes it where f cannot be
// truncated (a zero TOTALSIZE reads as the end of the records), and syncs.
func cutFile(f vfs.File, off, size int64) error {
	if t, ok := f.(truncater); ok {
		if err := t.Truncate(off); err != nil {
			return err
		}
	} else {
		zeros := make([]byte, 64<<10)
		for q := off; q < size; q += int64(len(zeros)) {
			if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-q)], q); err != nil {
				return err
			}
		}
	}
	return f.Sync()
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("kafkalayout: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("kafkalayout: sync dir %s: %w", dir, err)
	}
	return nil
}
