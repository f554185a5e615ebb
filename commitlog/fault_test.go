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

// faultAfter fails operations of kind with ENOSPC once armed, after
// letting skip more of them through.
type faultAfter struct {
	kind  errorfs.OpKind
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
	return syscall.ENOSPC
}

func (f *faultAfter) String() string { return fmt.Sprintf("ENOSPC on %v", f.kind) }

func equalOffsets(a, b map[string]map[int32]int64) bool {
	return maps.EqualFunc(a, b, func(x, y map[int32]int64) bool { return maps.Equal(x, y) })
}

// TestWriteFault: a failing write makes the append fail with ErrReadOnly,
// advances nothing, and is sticky; reads go on; Close reports it; a
// reopen without the fault has every acknowledged message. The fault hits
// each write of a batch that crosses a roll: the chunk before the roll
// joined with the blank marker, and the chunk after it.
func TestWriteFault(t *testing.T) {
	for _, mode := range []FlushMode{FlushAsync, FlushSync} {
		for skip := range 2 {
			t.Run(fmt.Sprintf("%v/skip=%d", mode, skip), func(t *testing.T) {
				mem := vfs.NewMem()
				inj := &faultAfter{kind: errorfs.OpFileWriteAt}
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
				if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("append under ENOSPC: %v, want ErrReadOnly wrapping ENOSPC", err)
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
	inj := &faultAfter{kind: errorfs.OpCreate}
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
	if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.ENOSPC) || inj.hits.Load() == 0 {
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
