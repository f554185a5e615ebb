package commitlog

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// faultAfter fails operations of kind with ENOSPC (or errno when set)
// once armed, after letting skip more of them through.
type faultAfter struct {
	kind  errorfs.OpKind
	errno syscall.Errno
	armed atomic.Bool
	skip  atomic.Int64
	hits  atomic.Int64
}

func (f *faultAfter) MaybeError(op errorfs.Op) error {
	if op.Kind != f.kind || !f.armed.Load() {
		return nil
	}
	if f.skip.Add(-1) >= 0 {
		return nil
	}
	f.hits.Add(1)
	if f.errno != 0 {
		return f.errno
	}
	return syscall.ENOSPC
}

func (f *faultAfter) String() string { return fmt.Sprintf("ENOSPC on %v", f.kind) }

func equalOffsets(a, b map[string]map[int32]int64) bool {
	return maps.EqualFunc(a, b, func(x, y map[int32]int64) bool { return maps.Equal(x, y) })
}

// TestWriteFault: a failing write (other than a full disk) makes the
// append fail with ErrReadOnly, advances nothing, and is sticky; reads go on; Close reports it; a
// reopen without the fault has every acknowledged message. The fault hits
// each write of a batch that crosses a roll: the chunk before the roll
// joined with the blank marker, and the chunk after it.
func TestWriteFault(t *testing.T) {
	for _, mode := range []FlushMode{FlushAsync, FlushSync} {
		for skip := range 2 {
			t.Run(fmt.Sprintf("%v/skip=%d", mode, skip), func(t *testing.T) {
				mem := vfs.NewMem()
				inj := &faultAfter{kind: errorfs.OpFileWriteAt, errno: syscall.EIO}
				l := openTest(t, errorfs.Wrap(mem, inj), func(o *Options) { o.Flush = mode })
				var msgs []Message
				for i := range 40 {
					msgs = append(msgs, msgOfSize(t, "A", int32(i%3), 1000))
				}
				acks := appendAll(t, l, msgs)
				before, written := l.QueueOffsets(), l.WrittenOffset()

				// A batch that rolls into the next segment: two writes.
				var batch []Message
				for i := range 60 {
					batch = append(batch, msgOfSize(t, "B", int32(i%3), 1000))
				}
				inj.skip.Store(int64(skip))
				inj.armed.Store(true)
				res, err := l.Append(batch, nil)
				if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.EIO) {
					t.Fatalf("append under EIO: %v, want ErrReadOnly wrapping EIO", err)
				}
				if len(res) != 0 {
					t.Fatalf("%d results from a failed append", len(res))
				}
				if got := l.QueueOffsets(); !equalOffsets(got, before) {
					t.Fatalf("queue offsets moved: %v, were %v", got, before)
				}
				if l.WrittenOffset() != written {
					t.Fatalf("written offset moved from %d to %d", written, l.WrittenOffset())
				}
				inj.armed.Store(false)
				_, err2 := l.Append([]Message{testMsg("A", 0, "later")}, nil)
				if !errors.Is(err2, ErrReadOnly) || err2.Error() != err.Error() {
					t.Fatalf("later append: %v, want the sticky %v", err2, err)
				}
				if l.Err() == nil || l.Err().Error() != err.Error() {
					t.Fatalf("Err() = %v", l.Err())
				}
				if got := l.QueueOffsets(); !equalOffsets(got, before) {
					t.Fatal("queue offsets moved after a rejected append")
				}
				checkAcked(t, l, acks)
				if n := len(verifyLog(t, l)); n != len(acks) {
					t.Fatalf("%d records readable, want %d", n, len(acks))
				}
				if err := l.Close(); !errors.Is(err, ErrReadOnly) {
					t.Fatalf("Close = %v, want the sticky error", err)
				}

				r := openTest(t, mem, nil)
				defer r.Close()
				checkAcked(t, r, acks)
				checkContinues(t, r, verifyLog(t, r))
			})
		}
	}
}

// TestSegmentCreateFault: the roll cannot create the next segment.
func TestSegmentCreateFault(t *testing.T) {
	mem := vfs.NewMem()
	inj := &faultAfter{kind: errorfs.OpCreate, errno: syscall.EIO}
	l := openTest(t, errorfs.Wrap(mem, inj), slowCheckpoints)
	var acks []ack
	for l.WrittenOffset() < testSeg-3000 {
		acks = append(acks, appendAll(t, l, []Message{msgOfSize(t, "A", 0, 1000)})...)
	}
	inj.armed.Store(true)
	var err error
	for err == nil && l.WrittenOffset() < testSeg {
		var res []AppendResult
		res, err = l.Append([]Message{msgOfSize(t, "A", 0, 1000)}, nil)
		if err == nil {
			acks = append(acks, ack{msgOfSize(t, "A", 0, 1000), res[0]})
		}
	}
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.EIO) || inj.hits.Load() == 0 {
		t.Fatalf("append across a failing roll: %v (hits %d)", err, inj.hits.Load())
	}
	checkAcked(t, l, acks)
	if err := l.Close(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Close = %v", err)
	}
	r := openTest(t, mem, nil)
	defer r.Close()
	checkAcked(t, r, acks)
	checkContinues(t, r, verifyLog(t, r))
}

// TestSyncFault: in sync mode a failing fdatasync releases every waiting
// appender with the error (no hang), the error is sticky, Close reports
// it, and a reopen has everything acknowledged before it.
func TestSyncFault(t *testing.T) {
	mem := vfs.NewMem()
	inj := &faultAfter{kind: errorfs.OpFileSyncData}
	l := openTest(t, errorfs.Wrap(mem, inj), func(o *Options) { o.Flush = FlushSync })
	var acks []ack
	rng := rand.New(rand.NewPCG(1, 2))
	for range 30 {
		acks = append(acks, appendAll(t, l, []Message{randMsg(rng, 3, 800)})...)
	}
	inj.armed.Store(true)
	const waiters = 8
	errs := make(chan error, waiters)
	var wg sync.WaitGroup
	for g := range waiters {
		wg.Go(func() {
			_, err := l.Append([]Message{testMsg("W", int32(g%4), "waits for a failing sync")}, nil)
			errs <- err
		})
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for range waiters {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("appender released with %v, want ErrReadOnly wrapping ENOSPC", err)
			}
		case <-timeout.C:
			t.Fatal("appenders hang after a failed sync")
		}
	}
	wg.Wait()
	inj.armed.Store(false)
	if _, err := l.Append([]Message{testMsg("A", 0, "later")}, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("later append: %v", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Sync after a failed sync: %v", err)
	}
	checkAcked(t, l, acks)
	if err := l.Close(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Close = %v", err)
	}
	r := openTest(t, mem, nil)
	defer r.Close()
	checkAcked(t, r, acks)
	checkContinues(t, r, verifyLog(t, r))
}

// partialFS makes the WriteAt of its files, while armed, write half of
// what it is given and fail with ENOSPC when the write would grow the
// file, as a write that fills the disk does (overwriting bytes already
// there needs no space).
type partialFS struct {
	vfs.FS
	armed atomic.Bool
	hits  atomic.Int64
}

type partialFile struct {
	vfs.File
	fs *partialFS
}

func (fs *partialFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return partialFile{f, fs}, nil
}

func (fs *partialFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return partialFile{f, fs}, nil
}

func (f partialFile) WriteAt(b []byte, off int64) (int, error) {
	if !f.fs.armed.Load() || len(b) < 2 {
		return f.File.WriteAt(b, off)
	}
	if fi, err := f.Stat(); err == nil && off+int64(len(b)) <= fi.Size() {
		return f.File.WriteAt(b, off)
	}
	f.fs.hits.Add(1)
	n, err := f.File.WriteAt(b[:len(b)/2], off)
	if err != nil {
		return n, err
	}
	return n, syscall.ENOSPC
}

// TestNoSpace: a write that finds the disk full fails with ErrNoSpace and
// is not sticky. The half it wrote is undone, so that neither a later
// append nor a recovery after a crash sees it; offsets are given back, a
// segment created for it goes away, and once there is room the next append
// takes the place of the failed one.
func TestNoSpace(t *testing.T) {
	for _, mode := range []FlushMode{FlushAsync, FlushSync} {
		for _, roll := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/roll=%v", mode, roll), func(t *testing.T) {
				mem := vfs.NewMem()
				fs := &partialFS{FS: mem}
				l := openTest(t, fs, func(o *Options) { o.Flush = mode; o.CheckpointInterval = 1 << 40 })
				var msgs []Message
				for i := range 40 {
					msgs = append(msgs, msgOfSize(t, "A", int32(i%3), 1000))
				}
				acks := appendAll(t, l, msgs)
				before, written, segs := l.QueueOffsets(), l.WrittenOffset(), len(l.Segments())
				n := 3
				if roll {
					n = 60 // rolls into the next segment
				}
				var batch []Message
				for i := range n {
					batch = append(batch, msgOfSize(t, "B", int32(i%3), 1000))
				}
				fs.armed.Store(true)
				res, err := l.Append(batch, nil)
				if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrReadOnly) {
					t.Fatalf("append on a full disk: %v, want ErrNoSpace wrapping ENOSPC", err)
				}
				if len(res) != 0 || !l.NoSpace() || l.Err() != nil {
					t.Fatalf("after a write that found no space: %d results, NoSpace %v, Err %v", len(res), l.NoSpace(), l.Err())
				}
				if got := l.QueueOffsets(); !equalOffsets(got, before) || l.WrittenOffset() != written || len(l.Segments()) != segs {
					t.Fatalf("the failed write left offsets %v (were %v), written %d (was %d), %d segments (were %d)",
						got, before, l.WrittenOffset(), written, len(l.Segments()), segs)
				}
				checkAcked(t, l, acks)

				// Room again: a short append lands where the failed one
				// went, over its undone half.
				fs.armed.Store(false)
				later := []Message{msgOfSize(t, "A", 0, 200)}
				res, err = l.Append(later, nil)
				if err != nil {
					t.Fatalf("append once there is room: %v", err)
				}
				if res[0].Offset != written || l.NoSpace() {
					t.Fatalf("append once there is room went to %d, want %d (NoSpace %v)", res[0].Offset, written, l.NoSpace())
				}
				acks = append(acks, ack{later[0], res[0]})
				acks = append(acks, appendAll(t, l, batch)...)
				r := checkExactlyAcked(t, l, mem, acks)
				defer r.Close()
				checkContinues(t, r, verifyLog(t, r))
			})
		}
	}
}

// TestNoSpaceConcurrent: appenders racing a disk that fills and empties
// again. Every acknowledged message is stored once at its place, queue
// offsets stay dense, and nothing of a failed write survives a reopen.
func TestNoSpaceConcurrent(t *testing.T) {
	mem := vfs.NewMem()
	fs := &partialFS{FS: mem}
	l := openTest(t, fs, slowCheckpoints)
	var (
		mu   sync.Mutex
		acks []ack
		wg   sync.WaitGroup
	)
	var failures atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 150 {
				if g == 0 && i%25 == 0 {
					fs.armed.Store(i%50 == 0)
				}
				m := randMsg(rng, 3, 2000)
				res, err := l.Append([]Message{m}, nil)
				if err != nil {
					if !errors.Is(err, ErrNoSpace) {
						t.Errorf("append: %v", err)
						return
					}
					failures.Add(1)
					continue
				}
				mu.Lock()
				acks = append(acks, ack{m, res[0]})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fs.armed.Store(false)
	if failures.Load() == 0 || fs.hits.Load() == 0 {
		t.Fatalf("no append found the disk full (hits %d)", fs.hits.Load())
	}
	checkExactlyAcked(t, l, mem, acks).Close()
}

// checkExactlyAcked requires l to hold exactly the acknowledged records,
// then crashes it (no final sync or checkpoint) and requires the same of
// the reopened log, which it returns.
func checkExactlyAcked(t *testing.T, l *Log, fs vfs.FS, acks []ack) *Log {
	t.Helper()
	checkAcked(t, l, acks)
	if got := len(verifyLog(t, l)); got != len(acks) {
		t.Fatalf("%d records readable, want %d", got, len(acks))
	}
	l.abandon()
	r := openTest(t, fs, nil)
	checkAcked(t, r, acks)
	if got := len(verifyLog(t, r)); got != len(acks) {
		r.Close()
		t.Fatalf("after recovery %d records, want the %d acknowledged", got, len(acks))
	}
	return r
}

// TestNoSpaceThenCrash: a crash right after a write that found no space
// recovers exactly what was acknowledged, not the complete records the
// failed write got onto the disk before it ran out.
func TestNoSpaceThenCrash(t *testing.T) {
	mem := vfs.NewMem()
	fs := &partialFS{FS: mem}
	l := openTest(t, fs, slowCheckpoints)
	acks := appendAll(t, l, []Message{msgOfSize(t, "A", 0, 1000), msgOfSize(t, "A", 1, 1000)})
	fs.armed.Store(true)
	batch := []Message{msgOfSize(t, "B", 0, 1000), msgOfSize(t, "B", 0, 1000), msgOfSize(t, "B", 0, 1000)}
	if _, err := l.Append(batch, nil); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("append on a full disk: %v", err)
	}
	checkExactlyAcked(t, l, mem, acks).Close()
}
