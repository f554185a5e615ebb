package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// rawChunks cuts the log from from to its end into chunks of whole records
// of at most about max bytes, as a master would ship them: a chunk never
// spans two segments and the chunk that ends a segment ends with its blank
// marker.
func rawChunks(t testing.TB, l *Log, from int64, max int) (chunks [][]byte, starts []int64) {
	t.Helper()
	seg := l.opts.SegmentSize
	var cur []byte
	curStart := from
	flush := func(next int64) {
		if len(cur) > 0 {
			chunks = append(chunks, cur)
			starts = append(starts, curStart)
		}
		cur, curStart = nil, next
	}
	pos := from
	var buf []byte
	if _, err := l.Scan(from, l.WrittenOffset(), &buf, func(off int64, rec []byte) error {
		if off/seg != pos/seg || off > pos && off%seg == 0 {
			// The segment ended at pos with its marker.
			marker := make([]byte, protocol.BlankMarkerSize)
			if err := l.ReadAt(marker, pos); err != nil {
				return err
			}
			cur = append(cur, marker...)
			flush(off)
		}
		if len(cur) > 0 && len(cur)+len(rec) > max {
			flush(off)
		}
		cur = append(cur, rec...)
		pos = off + int64(len(rec))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	flush(pos)
	return chunks, starts
}

// sameBytes requires the two logs to hold the same bytes below their
// (equal) ends, segment by segment, and the same queue offsets.
func sameBytes(t testing.TB, a, b *Log) {
	t.Helper()
	if a.WrittenOffset() != b.WrittenOffset() {
		t.Fatalf("ends differ: %d and %d", a.WrittenOffset(), b.WrittenOffset())
	}
	seg := a.opts.SegmentSize
	for base := max(a.MinOffset(), b.MinOffset()); base < a.WrittenOffset(); base += seg {
		n := min(seg, a.WrittenOffset()-base)
		x, y := make([]byte, n), make([]byte, n)
		// A finished segment is shorter than seg in the file: compare what
		// is there.
		ra, _ := a.segs.at(base).file.ReadAt(x, 0)
		rb, _ := b.segs.at(base).file.ReadAt(y, 0)
		if ra != rb || !bytes.Equal(x[:ra], y[:rb]) {
			t.Fatalf("segment %d differs (%d and %d bytes)", base, ra, rb)
		}
	}
	qa, qb := a.QueueOffsets(), b.QueueOffsets()
	for topic, qs := range qa {
		for q, n := range qs {
			if qb[topic][q] != n {
				t.Fatalf("%s/%d: next queue offset %d on one, %d on the other", topic, q, n, qb[topic][q])
			}
		}
	}
	if len(qa) != len(qb) {
		t.Fatalf("queue tables differ: %v and %v", qa, qb)
	}
}

func fillRandom(t testing.TB, l *Log, rng *rand.Rand, until int64) []ack {
	t.Helper()
	var acks []ack
	for l.WrittenOffset() < until {
		acks = append(acks, appendAll(t, l, []Message{randMsg(rng, 3, 3000)})...)
	}
	return acks
}

// TestAppendRawCopiesTheLog: a log fed the chunks of another holds the
// same bytes across several segment rolls, with the same queue offsets,
// takes local appends after it, and reopens the same.
func TestAppendRawCopiesTheLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	master := openTest(t, vfs.NewMem(), nil)
	defer master.Close()
	fillRandom(t, master, rng, 4*testSeg+100)
	fs := vfs.NewMem()
	slave := openTest(t, fs, nil)
	chunks, starts := rawChunks(t, master, 0, 9000)
	for i, c := range chunks {
		if err := slave.AppendRaw(starts[i], c); err != nil {
			t.Fatalf("chunk %d at %d: %v", i, starts[i], err)
		}
		if i+1 < len(starts) && slave.WrittenOffset() != starts[i+1] {
			t.Fatalf("after chunk %d: end %d, next chunk at %d", i, slave.WrittenOffset(), starts[i+1])
		}
	}
	sameBytes(t, master, slave)
	if len(slave.Segments()) != len(master.Segments()) {
		t.Fatalf("%d segments, master has %d", len(slave.Segments()), len(master.Segments()))
	}
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}
	slave = openTest(t, fs, nil)
	defer slave.Close()
	sameBytes(t, master, slave)
	checkContinues(t, slave, verifyLog(t, slave))
}

// TestAppendRawRefuses: bytes that are not whole valid records for exactly
// the log's end are refused and change nothing.
func TestAppendRawRefuses(t *testing.T) {
	master := openTest(t, vfs.NewMem(), nil)
	defer master.Close()
	fillRandom(t, master, rand.New(rand.NewPCG(3, 4)), testSeg+5000)
	slave := openTest(t, vfs.NewMem(), nil)
	defer slave.Close()
	chunks, starts := rawChunks(t, master, 0, 4000)
	if err := slave.AppendRaw(starts[0], chunks[0]); err != nil {
		t.Fatal(err)
	}
	next, c := starts[1], chunks[1]
	mutate := func(f func(b []byte) []byte) []byte { return f(slices.Clone(c)) }
	cases := map[string]struct {
		off  int64
		b    []byte
		want error
	}{
		"gap":          {next + 1, c, ErrNotContiguous},
		"behind":       {0, chunks[0], nil},
		"flipped body": {next, mutate(func(b []byte) []byte { b[len(b)/2] ^= 1; return b }), protocol.ErrCorrupt},
		"torn":         {next, c[:len(c)-3], protocol.ErrCorrupt},
		"stray bytes":  {next, append(slices.Clone(c), 1, 2, 3), protocol.ErrCorrupt},
		"moved":        {next, chunks[2], protocol.ErrCorrupt},
	}
	for name, tc := range cases {
		before := slave.WrittenOffset()
		err := slave.AppendRaw(tc.off, tc.b)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		if slave.WrittenOffset() != before || slave.Err() != nil {
			t.Errorf("%s: the refused append changed the log (end %d, was %d; %v)", name, slave.WrittenOffset(), before, slave.Err())
		}
	}
	verifyLog(t, slave)
	markers := 0
	for i := 1; i < len(chunks); i++ {
		if ch := chunks[i]; isBlank(ch[len(ch)-protocol.BlankMarkerSize:]) {
			// A marker that does not end its segment exactly.
			b := slices.Clone(ch)
			putBlank(b[len(b)-protocol.BlankMarkerSize:], int64(protocol.RecordSize(b[len(b)-protocol.BlankMarkerSize:]))-1)
			if err := slave.AppendRaw(starts[i], b); !errors.Is(err, protocol.ErrCorrupt) || slave.WrittenOffset() != starts[i] {
				t.Fatalf("short marker: %v, end %d", err, slave.WrittenOffset())
			}
			markers++
		}
		if err := slave.AppendRaw(starts[i], chunks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if markers == 0 {
		t.Fatal("no segment end shipped")
	}
	sameBytes(t, master, slave)
}

// TestTruncate cuts a log of several segments back to a record in an
// earlier one, and to a segment's base: later segments go, queue offsets
// continue from the cut, the epoch history loses what followed, and all
// of it holds after a reopen.
func TestTruncate(t *testing.T) {
	for _, atBase := range []bool{false, true} {
		fs := vfs.NewMem()
		l := openTest(t, fs, nil)
		acks := fillRandom(t, l, rand.New(rand.NewPCG(5, 6)), 4*testSeg)
		var cut int64
		for _, a := range acks {
			if a.res.Offset > testSeg+testSeg/2 {
				cut = a.res.Offset
				break
			}
		}
		if atBase {
			cut = 2 * testSeg
		}
		for _, e := range []EpochEntry{{1, 0}, {2, testSeg}, {3, cut}, {4, cut + 1000}} {
			if err := l.StartEpoch(e.Epoch, e.StartOffset); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Truncate(cut + 1); err == nil && !atBase {
			t.Fatal("truncated in the middle of a record")
		}
		if err := l.Truncate(cut); err != nil {
			t.Fatal(err)
		}
		check := func(l *Log) {
			t.Helper()
			if l.WrittenOffset() != cut || l.FlushedOffset() != cut {
				t.Fatalf("after truncating to %d: written %d, flushed %d", cut, l.WrittenOffset(), l.FlushedOffset())
			}
			names := listDir(t, fs, "log")
			for base := cut/testSeg*testSeg + testSeg; base < 5*testSeg; base += testSeg {
				if names[segmentName(base)] {
					t.Fatalf("segment %d survived the truncation to %d", base, cut)
				}
			}
			if h, err := l.Epochs(); err != nil || !slices.Equal(h, []EpochEntry{{1, 0}, {2, testSeg}}) {
				t.Fatalf("epochs %v, %v", h, err)
			}
			var want []ack
			for _, a := range acks {
				if a.res.End() <= cut {
					want = append(want, a)
				}
			}
			checkAcked(t, l, want)
		}
		check(l)
		seen := verifyLog(t, l)
		checkContinues(t, l, seen)
		end := l.WrittenOffset()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openTest(t, fs, nil)
		if l.WrittenOffset() != end {
			t.Fatalf("reopened at %d, closed at %d", l.WrittenOffset(), end)
		}
		verifyLog(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTruncateCrash: power loss right after Truncate returns keeps the
// cut, and the log recovered from it continues its queues densely.
func TestTruncateCrash(t *testing.T) {
	for _, seed := range crashSeeds(t, 4) {
		rng := rand.New(rand.NewPCG(seed, 7))
		fs := vfs.NewCrashableMem()
		l := openTest(t, fs, func(o *Options) { o.CheckpointInterval = 1 << 40 })
		acks := fillRandom(t, l, rng, 3*testSeg)
		cut := acks[rng.IntN(len(acks))].res.Offset
		if err := l.Truncate(cut); err != nil {
			t.Fatal(err)
		}
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seed, 8))})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		r := openTest(t, clone, nil)
		if r.WrittenOffset() != cut {
			t.Fatalf("seed %d: recovered to %d, truncated to %d", seed, r.WrittenOffset(), cut)
		}
		checkContinues(t, r, verifyLog(t, r))
		r.Close()
	}
}

// TestEpochHistoryCrash: every StartEpoch that returned survives power
// loss at any moment, and a crash mid-rewrite leaves the old or the new
// history, never a damaged one.
func TestEpochHistoryCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openTest(t, fs, nil)
	defer l.Close()
	mustAppend(t, l, testMsg("A", 0, "x"))
	var done atomic.Int64 // entries whose StartEpoch returned
	var wg sync.WaitGroup
	wg.Go(func() {
		for e := int64(1); e <= 200; e++ {
			if err := l.StartEpoch(e, 0); err != nil {
				t.Error(err)
				return
			}
			done.Store(e)
		}
	})
	var clones []vfs.FS
	var floors []int64
	for i := 0; done.Load() < 200 && i < 400 && !t.Failed(); i++ {
		floors = append(floors, done.Load())
		clones = append(clones, fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(uint64(i), 9))}))
	}
	wg.Wait()
	for i, c := range clones {
		r := openTest(t, c, nil)
		h, err := r.Epochs()
		r.Close()
		if err != nil {
			t.Fatalf("clone %d: %v", i, err)
		}
		if int64(len(h)) < floors[i] {
			t.Fatalf("clone %d: %d entries, %d were acknowledged before the crash", i, len(h), floors[i])
		}
		for j, e := range h {
			if e != (EpochEntry{int64(j + 1), 0}) {
				t.Fatalf("clone %d: entry %d is %v", i, j, e)
			}
		}
	}
	t.Logf("%d crash points", len(clones))
	if err := l.StartEpoch(200, 0); err == nil {
		t.Fatal("an epoch that does not increase was accepted")
	}
	if err := l.StartEpoch(201, l.WrittenOffset()+1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("an epoch past the end: %v", err)
	}
}

// FuzzAppendRaw: whatever bytes arrive, AppendRaw either refuses them and
// leaves the log as it was, or takes them and the log holds exactly them,
// readable record by record up to its new end.
func FuzzAppendRaw(f *testing.F) {
	// Small records keep the seeds short.
	master := openTest(f, vfs.NewMem(), nil)
	for i := 0; master.WrittenOffset() < testSeg+1000; i++ {
		mustAppend(f, master, testMsg(fmt.Sprintf("T%d", i%2), int32(i%3), "b"))
	}
	chunks, _ := rawChunks(f, master, 0, 400)
	master.Close()
	f.Add(chunks[0])
	f.Add(chunks[0][:100])
	for _, c := range chunks {
		if isBlank(c[len(c)-protocol.BlankMarkerSize:]) {
			f.Add(c) // records and the segment's blank marker
			break
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l := openTest(t, vfs.NewMem(), nil)
		defer l.Close()
		err := l.AppendRaw(0, b)
		if l.Err() != nil {
			t.Fatalf("sticky error: %v", l.Err())
		}
		if err != nil {
			if l.WrittenOffset() != 0 {
				t.Fatalf("refused (%v) but the log grew to %d", err, l.WrittenOffset())
			}
			return
		}
		var got []byte
		var buf []byte
		pos := int64(0)
		end, err := l.Scan(0, l.WrittenOffset(), &buf, func(off int64, rec []byte) error {
			if off != pos {
				marker := make([]byte, protocol.BlankMarkerSize)
				if err := l.ReadAt(marker, pos); err != nil {
					return err
				}
				got = append(got, marker...)
			}
			got = append(got, rec...)
			pos = off + int64(len(rec))
			return nil
		})
		if err != nil || end != l.WrittenOffset() {
			t.Fatalf("scan of the accepted bytes: end %d of %d, %v", end, l.WrittenOffset(), err)
		}
		if end > pos {
			marker := make([]byte, protocol.BlankMarkerSize)
			if err := l.ReadAt(marker, pos); err != nil {
				t.Fatal(err)
			}
			got = append(got, marker...)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("the log holds other bytes than were accepted")
		}
	})
}

// TestReset: a log emptied to start over at a later segment base takes
// the master's records from there, survives power loss right after the
// reset and reopens the same.
func TestReset(t *testing.T) {
	fs := vfs.NewCrashableMem()
	master := openTest(t, vfs.NewMem(), nil)
	defer master.Close()
	fillRandom(t, master, rand.New(rand.NewPCG(12, 12)), 5*testSeg)
	if _, err := master.DeleteSegmentsBefore(3 * testSeg); err != nil {
		t.Fatal(err)
	}
	l := openTest(t, fs, nil)
	fillRandom(t, l, rand.New(rand.NewPCG(13, 13)), testSeg+100)
	if err := l.StartEpoch(1, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(3*testSeg + 1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("reset off a segment base: %v", err)
	}
	if err := l.Reset(3 * testSeg); err != nil {
		t.Fatal(err)
	}
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	if l.WrittenOffset() != 3*testSeg || l.MinOffset() != 3*testSeg || len(l.QueueOffsets()) != 0 {
		t.Fatalf("after reset: written %d, min %d, queues %v", l.WrittenOffset(), l.MinOffset(), l.QueueOffsets())
	}
	if h, err := l.Epochs(); err != nil || len(h) != 0 {
		t.Fatalf("epochs after reset: %v, %v", h, err)
	}
	names := listDir(t, fs, "log")
	for base := int64(0); base < 3*testSeg; base += testSeg {
		if names[segmentName(base)] {
			t.Fatalf("segment %d survived the reset", base)
		}
	}
	chunks, starts := rawChunks(t, master, master.MinOffset(), 7000)
	for i, c := range chunks {
		if err := l.AppendRaw(starts[i], c); err != nil {
			t.Fatalf("chunk %d at %d: %v", i, starts[i], err)
		}
	}
	sameBytes(t, master, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, fs, nil)
	sameBytes(t, master, l)
	l.Close()
	r := openTest(t, clone, nil)
	defer r.Close()
	if r.WrittenOffset() != 3*testSeg || r.MinOffset() != 3*testSeg {
		t.Fatalf("power loss after the reset: recovered [%d, %d)", r.MinOffset(), r.WrittenOffset())
	}
}

// TestReadRecords: reading a log of several segments with ReadRecords
// gives the same chunks a master ships (whole records, a segment's blank
// marker closing it), whatever the buffer size.
func TestReadRecords(t *testing.T) {
	l := openTest(t, vfs.NewMem(), nil)
	defer l.Close()
	fillRandom(t, l, rand.New(rand.NewPCG(14, 14)), 3*testSeg+500)
	want, _ := rawChunks(t, l, 0, 1<<30) // whole segments
	for _, size := range []int{4000, 9000, testSeg} {
		var got [][]byte
		var cur []byte
		buf := make([]byte, size)
		for pos := int64(0); pos < l.WrittenOffset(); {
			n, next, err := l.ReadRecords(buf, pos, l.WrittenOffset())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("buffer of %d: no record fits at %d", size, pos)
			}
			cur = append(cur, buf[:n]...)
			if next%testSeg == 0 || next == l.WrittenOffset() {
				got = append(got, cur)
				cur = nil
			}
			pos = next
		}
		if len(got) != len(want) {
			t.Fatalf("buffer of %d: %d segments, want %d", size, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("buffer of %d: segment %d differs", size, i)
			}
		}
	}
	if _, _, err := l.ReadRecords(make([]byte, 100), l.WrittenOffset(), l.WrittenOffset()); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read at the end: %v", err)
	}
}

// TestAppendGuard: a guard that refuses makes Append fail with its error
// and append nothing, while AppendRaw still writes; removing it lets
// Append write again.
func TestAppendGuard(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	master := openTest(t, vfs.NewMem(), nil)
	defer master.Close()
	fillRandom(t, master, rng, 3000)
	l := openTest(t, vfs.NewMem(), nil)
	defer l.Close()
	refuse := errors.New("not master")
	l.SetAppendGuard(func() error { return refuse })
	if _, err := l.Append([]Message{randMsg(rng, 2, 100)}, nil); !errors.Is(err, refuse) || l.WrittenOffset() != 0 {
		t.Fatalf("guarded append: %v, end %d", err, l.WrittenOffset())
	}
	chunks, starts := rawChunks(t, master, 0, 1<<20)
	for i, c := range chunks {
		if err := l.AppendRaw(starts[i], c); err != nil {
			t.Fatal(err)
		}
	}
	if l.WrittenOffset() != master.WrittenOffset() {
		t.Fatalf("raw end %d, master %d", l.WrittenOffset(), master.WrittenOffset())
	}
	l.SetAppendGuard(nil)
	if _, err := l.Append([]Message{randMsg(rng, 2, 100)}, nil); err != nil || l.WrittenOffset() <= master.WrittenOffset() {
		t.Fatalf("append without guard: %v", err)
	}
}
