package commitlog

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

type segment struct {
	base int64
	name string
	file vfs.File
}

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// SegmentInfo describes one kept segment.
type SegmentInfo struct {
	Base    int64
	Name    string
	ModTime time.Time
}

// segmentSet is the log's segment files: it creates them (rolling),
// opens them at recovery, finds the one holding an offset, syncs, cuts and
// deletes them. The list is published copy-on-write, so readers find a
// segment without a lock; it changes only under the log's append lock
// (or, at recovery, before the log is shared).
type segmentSet struct {
	fs          vfs.FS
	dir         string
	size        int64 // bytes per segment
	preallocate bool
	log         zerolog.Logger

	segs atomic.Pointer[[]*segment] // sorted by base
}

func newSegmentSet(o *Options) *segmentSet {
	s := &segmentSet{fs: o.FS, dir: o.Dir, size: o.SegmentSize, preallocate: !o.NoPreallocate, log: o.Logger}
	s.set([]*segment{})
	return s
}

// list returns the kept segments, oldest first. The slice is shared: do
// not modify it.
func (ss *segmentSet) list() []*segment { return *ss.segs.Load() }

func (ss *segmentSet) set(segs []*segment) { ss.segs.Store(&segs) }

// minBase is the base of the oldest kept segment.
func (ss *segmentSet) minBase() int64 {
	s := ss.list()
	if len(s) == 0 {
		return 0
	}
	return s[0].base
}

// at returns the segment holding off, or nil.
func (ss *segmentSet) at(off int64) *segment {
	segs := ss.list()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > off }) - 1
	if i < 0 || off >= segs[i].base+ss.size {
		return nil
	}
	return segs[i]
}

// create creates the segment starting at base, makes its directory entry
// durable and publishes it.
func (ss *segmentSet) create(base int64) (*segment, error) {
	name := ss.fs.PathJoin(ss.dir, segmentName(base))
	f, err := ss.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("%w: create segment %s: %w", ErrNoSpace, name, err)
		}
		return nil, fmt.Errorf("commitlog: create segment %s: %w", name, err)
	}
	if ss.preallocate {
		if err := f.Preallocate(0, ss.size); err != nil {
			ss.log.Warn().Err(err).Str("segment", name).Msg("commitlog: preallocate failed")
		}
	}
	if err := syncDir(ss.fs, ss.dir); err != nil {
		f.Close()
		return nil, err
	}
	s := &segment{base: base, name: name, file: f}
	ss.publish(s)
	return s, nil
}

func (ss *segmentSet) publish(s *segment) {
	ss.set(append(append([]*segment(nil), ss.list()...), s))
}

// open opens the segment files found in the directory and returns their
// bases, oldest first. They must be contiguous multiples of the size.
func (ss *segmentSet) open() ([]int64, error) {
	names, err := ss.fs.List(ss.dir)
	if err != nil {
		return nil, fmt.Errorf("commitlog: list %s: %w", ss.dir, err)
	}
	var bases []int64
	for _, n := range names {
		if len(n) != 20 {
			continue
		}
		b, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for i, b := range bases {
		if b%ss.size != 0 {
			return nil, fmt.Errorf("commitlog: segment %s does not start at a multiple of the segment size %d (was the segment size changed?)", segmentName(b), ss.size)
		}
		if i > 0 && b != bases[i-1]+ss.size {
			return nil, fmt.Errorf("commitlog: segments %s and %s are not contiguous", segmentName(bases[i-1]), segmentName(b))
		}
	}
	ss.set([]*segment{})
	for _, b := range bases {
		name := ss.fs.PathJoin(ss.dir, segmentName(b))
		f, err := ss.fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			return nil, fmt.Errorf("commitlog: open segment %s: %w", name, err)
		}
		ss.publish(&segment{base: b, name: name, file: f})
	}
	return bases, nil
}

// within reports whether off lies in a segment file, at most at its end.
// A checkpoint past the end of what is in the files would make recovery
// resume after a gap.
func (ss *segmentSet) within(off int64) bool {
	s := ss.at(off)
	if s == nil {
		return false
	}
	fi, err := s.file.Stat()
	return err == nil && off-s.base <= fi.Size()
}

// cutAfter ends the set at end, the end of the valid log found by
// recovery: segments wholly after it are set aside (renamed to .cut), the
// one holding it is cut there, or a new one is created when end is a
// segment boundary.
func (ss *segmentSet) cutAfter(end int64) error {
	keep := []*segment{}
	for _, s := range ss.list() {
		if s.base > end {
			ss.log.Warn().Str("segment", s.name).Msg("commitlog: segment follows a cut; renamed to .cut")
			s.file.Close()
			if err := ss.fs.Rename(s.name, s.name+".cut"); err != nil {
				return fmt.Errorf("commitlog: set aside %s: %w", s.name, err)
			}
			continue
		}
		keep = append(keep, s)
	}
	ss.set(keep)
	if last := keep[len(keep)-1]; end == last.base+ss.size {
		if _, err := ss.create(end); err != nil {
			return err
		}
	} else if err := cutTail(last, end-last.base); err != nil {
		return fmt.Errorf("commitlog: cut %s at %d: %w", last.name, end-last.base, err)
	}
	return syncDir(ss.fs, ss.dir)
}

// truncate cuts the set back to off: the segments after it are deleted
// and the one holding it cut, durably.
func (ss *segmentSet) truncate(off int64) error {
	segs := ss.list()
	keep := segs
	for len(keep) > 1 && keep[len(keep)-1].base > off {
		keep = keep[:len(keep)-1]
	}
	if err := ss.removeNewest(segs[len(keep):]); err != nil {
		return err
	}
	keep = append([]*segment(nil), keep...)
	ss.set(keep)
	last := keep[len(keep)-1]
	if err := cutTail(last, off-last.base); err != nil {
		return fmt.Errorf("cut %s at %d: %w", last.name, off-last.base, err)
	}
	return syncDir(ss.fs, ss.dir)
}

// reset deletes every segment and starts the set again at base.
func (ss *segmentSet) reset(base int64) error {
	if err := ss.removeNewest(ss.list()); err != nil {
		return err
	}
	ss.set([]*segment{})
	if err := syncDir(ss.fs, ss.dir); err != nil {
		return err
	}
	_, err := ss.create(base)
	return err
}

// removeNewest deletes segs (the newest of the set), newest first, so a
// crash midway leaves contiguous segments.
func (ss *segmentSet) removeNewest(segs []*segment) error {
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		s.file.Close()
		if err := ss.fs.Remove(s.name); err != nil {
			return fmt.Errorf("delete segment %s: %w", s.name, err)
		}
	}
	return nil
}

// dropAfter removes the segments created past end for writes that found
// no space, so that the next roll goes where the failed one went.
func (ss *segmentSet) dropAfter(end int64) {
	segs := ss.list()
	n := len(segs)
	for n > 1 && segs[n-1].base > end {
		n--
	}
	if n == len(segs) {
		return
	}
	ss.set(append([]*segment(nil), segs[:n]...))
	for _, s := range segs[n:] {
		s.file.Close()
		if err := ss.fs.Remove(s.name); err != nil {
			// Harmless: the next roll creates it again, truncating it.
			ss.log.Warn().Err(err).Str("segment", s.name).Msg("commitlog: cannot remove a segment created for a write that found no space")
		}
	}
}

// deleteBefore deletes every whole segment that ends at or before off,
// never the newest, oldest first, and returns how many went.
func (ss *segmentSet) deleteBefore(off int64) (int, error) {
	segs := ss.list()
	n := 0
	for n < len(segs)-1 && segs[n].base+ss.size <= off {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	gone := segs[:n]
	ss.set(append([]*segment(nil), segs[n:]...))
	for _, s := range gone {
		s.file.Close()
		if err := ss.fs.Remove(s.name); err != nil {
			return n, fmt.Errorf("commitlog: delete segment %s: %w", s.name, err)
		}
		ss.log.Info().Str("segment", s.name).Msg("commitlog: segment deleted")
	}
	return n, syncDir(ss.fs, ss.dir)
}

// syncRange fdatasyncs every segment holding bytes in [from, to).
func (ss *segmentSet) syncRange(from, to int64) error {
	for _, s := range ss.list() {
		if s.base+ss.size <= from || s.base >= to {
			continue
		}
		if err := s.file.SyncData(); err != nil {
			return fmt.Errorf("sync %s: %w", s.name, err)
		}
	}
	return nil
}

// infos describes the kept segments, oldest first.
func (ss *segmentSet) infos() []SegmentInfo {
	segs := ss.list()
	out := make([]SegmentInfo, 0, len(segs))
	for _, s := range segs {
		si := SegmentInfo{Base: s.base, Name: s.name}
		if fi, err := s.file.Stat(); err == nil {
			si.ModTime = fi.ModTime()
		}
		out = append(out, si)
	}
	return out
}

func (ss *segmentSet) closeAll() {
	for _, s := range ss.list() {
		s.file.Close()
	}
}
