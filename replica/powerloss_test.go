package replica

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/ferrymq/ferry/commitlog"
)

// TestReceiverPowerLossNeverLosesAnAck: a slave that must ack only what
// it has flushed runs on a file system that can lose power. Every ACK
// the master receives, taken at the moment it arrives, holds in a crash
// image of the slave's disk that keeps nothing unsynced; its written and
// flushed offsets are the same. When the slave's fsyncs start failing it
// acks nothing more. After a power loss (unsynced bytes kept at random,
// so the tail may be torn) the slave reopens its log, holds every byte it
// ever acked, resumes from there (no ACK below what it acked before) and
// ends equal to the master.
func TestReceiverPowerLossNeverLosesAnAck(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		powerLoss(t, seed)
	}
}

// crashImage is the slave's disk as a power loss would leave it when
// the master received an ACK of flushed.
type crashImage struct {
	flushed int64
	fs      *vfs.MemFS
}

func powerLoss(t *testing.T, seed uint64) {
	ml, m, mfs := newMaster(t, 1)
	crash := vfs.NewCrashableMem()
	var failSync atomic.Bool
	sfs := errorfs.Wrap(crash, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if failSync.Load() {
				return errorfs.ErrInjected
			}
		}
		return nil
	}))

	var (
		mu         sync.Mutex
		images     []crashImage
		maxFlushed int64
		restarted  bool
		minAfter   int64 = -1 // lowest flushed offset acked after the restart
		bad        []string
	)
	addr := listen(t, SenderConfig{MaxFrame: 16 << 10, Idle: 20 * time.Millisecond, OnAck: func(a Ack) {
		mu.Lock()
		defer mu.Unlock()
		if a.Flushed != a.Written {
			bad = append(bad, fmt.Sprintf("written %d, flushed %d", a.Written, a.Flushed))
		}
		if restarted {
			if minAfter < 0 || a.Flushed < minAfter {
				minAfter = a.Flushed
			}
			return
		}
		if a.Flushed > maxFlushed {
			maxFlushed = a.Flushed
			if len(images) < 40 {
				images = append(images, crashImage{a.Flushed, crash.CrashClone(vfs.CrashCloneCfg{})})
			}
		}
	}}, ml, m)
	sl, err := commitlog.Open(commitlog.Options{FS: sfs, Dir: "cl", SegmentSize: testSegment, MaxMessageSize: 4096,
		NoPreallocate: true, FlushInterval: time.Hour, FlushDirtyBytes: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	rcv := receive(t, sl, addr, &m.epoch, func(c *ReceiverConfig) { c.RequireFlushed = true })

	stopAppending := keepAppending(t, ml, rand.New(rand.NewPCG(seed, 11)))
	acked := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return maxFlushed
	}
	eventually(t, "flushed acks past two segments", func() bool { return acked() >= 2*testSegment })

	// The slave's fsyncs fail: it stops acking (its log turns read-only).
	failSync.Store(true)
	before := acked()
	eventually(t, "the stream to end on the failed sync", func() bool {
		err := rcv.Status().Err
		return err != nil && strings.Contains(err.Error(), "sync")
	})
	eventually(t, "the master to write a segment more", func() bool { return ml.WrittenOffset() >= before+testSegment })

	// Power loss, with some unsynced bytes kept.
	rng := rand.New(rand.NewPCG(seed, 12))
	lost := crash.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng})
	masterAt := ml.WrittenOffset()
	rcv.Close()
	sl.Close()
	mu.Lock()
	final := maxFlushed
	restarted = true
	checks := images
	mu.Unlock()

	// Every ACK held in the disk image of its moment.
	master := segmentFiles(t, mfs, ml)
	holds := func(fs vfs.FS, flushed int64, what string) *commitlog.Log {
		t.Helper()
		l := openLogOn(t, fs)
		if l.WrittenOffset() < flushed {
			t.Fatalf("seed %d: %s: acked flushed %d, recovered %d", seed, what, flushed, l.WrittenOffset())
		}
		got := segmentFiles(t, fs, l)
		for base := int64(0); base < flushed; base += testSegment {
			n := min(flushed-base, int64(len(master[base])))
			if int64(len(got[base])) < n || !bytes.Equal(master[base][:n], got[base][:n]) {
				t.Fatalf("seed %d: %s: segment %d differs below the acked offset %d", seed, what, base, flushed)
			}
		}
		return l
	}
	for _, im := range checks {
		holds(im.fs, im.flushed, "crash image at an ACK").Close()
	}

	// The slave comes back on what the power loss left and catches up.
	back := holds(lost, final, "after the power loss")
	recovered := back.WrittenOffset()
	receive(t, back, addr, &m.epoch, func(c *ReceiverConfig) { c.RequireFlushed = true })
	stopAppending()
	eventually(t, "the restarted slave to catch up", func() bool { return back.WrittenOffset() == ml.WrittenOffset() })
	eventually(t, "an ACK of the end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return minAfter >= 0
	})
	sameFiles(t, mfs, ml, lost, back)
	mu.Lock()
	defer mu.Unlock()
	if minAfter < final {
		t.Fatalf("seed %d: after the restart the slave acked flushed %d, below the %d it acked before", seed, minAfter, final)
	}
	if len(bad) > 0 {
		t.Fatalf("seed %d: ACKs with written past flushed: %v", seed, bad)
	}
	t.Logf("seed %d: %d ACK images held; fsyncs failed from %d, acked %d in all; master at %d at the power loss; recovered %d, caught up to %d",
		seed, len(checks), before, final, masterAt, recovered, back.WrittenOffset())
}
