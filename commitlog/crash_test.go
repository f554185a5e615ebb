package commitlog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// crashSeeds returns the seeds to run: FERRY_CRASH_SEED reproduces one,
// FERRY_CRASH_ITERS sets how many fresh random ones (default n).
func crashSeeds(t *testing.T, n int) []uint64 {
	if s := os.Getenv("FERRY_CRASH_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FERRY_CRASH_SEED: %v", err)
		}
		return []uint64{seed}
	}
	if s := os.Getenv("FERRY_CRASH_ITERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("FERRY_CRASH_ITERS: %v", err)
		}
	}
	if testing.Short() {
		n = max(1, n/4)
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rand.Uint64()
	}
	return seeds
}

func TestCrashSyncMode(t *testing.T) {
	for _, p := range []int{0, 50, 100} {
		for _, seed := range crashSeeds(t, 6) {
			t.Run(fmt.Sprintf("unsynced=%d/seed=%d", p, seed), func(t *testing.T) {
				runCrash(t, FlushSync, p, seed)
			})
		}
	}
}

func TestCrashAsyncMode(t *testing.T) {
	for _, p := range []int{0, 50, 100} {
		for _, seed := range crashSeeds(t, 4) {
			t.Run(fmt.Sprintf("unsynced=%d/seed=%d", p, seed), func(t *testing.T) {
				runCrash(t, FlushAsync, p, seed)
			})
		}
	}
}

// runCrash runs 8 concurrent appenders, takes a crash clone of the file
// system at a random point and recovers a log from the clone. In sync mode
// every append acknowledged before the crash must be there, byte for byte;
// in async mode everything below the last completed Sync. Either way the
// recovered log must be a clean prefix with dense queue offsets that new
// appends continue.
func runCrash(t *testing.T, mode FlushMode, unsyncedPct int, seed uint64) {
	t.Logf("reproduce with FERRY_CRASH_SEED=%d (unsynced=%d, mode %v)", seed, unsyncedPct, mode)
	rng := rand.New(rand.NewPCG(seed, 0xC4A54))
	fs := vfs.NewCrashableMem()
	ckpt := []time.Duration{time.Millisecond, 10 * time.Millisecond, 1 << 40}[rng.IntN(3)]
	flushEvery := time.Duration(1+rng.IntN(5)) * time.Millisecond
	dirty := int64(4<<10) << rng.IntN(5)
	l := openTest(t, fs, func(o *Options) {
		o.Flush = mode
		o.CheckpointInterval = ckpt
		o.FlushInterval = flushEvery
		o.FlushDirtyBytes = dirty
	})
	// Crash somewhere in the first four segments, half the time just
	// around a roll.
	crashAt := 1000 + rng.Int64N(4*testSeg)
	if rng.IntN(2) == 0 {
		crashAt = (1+rng.Int64N(4))*testSeg - 3000 + rng.Int64N(6000)
	}

	var crashed, stop atomic.Bool
	var syncedTo atomic.Int64 // async: end covered by a Sync that returned before the crash
	var nacked atomic.Int64   // acks recorded before the crash
	const appenders = 8
	acks := make([][]ack, appenders)
	var wg sync.WaitGroup
	for g := range appenders {
		grng := rand.New(rand.NewPCG(seed, uint64(g)))
		wg.Go(func() {
			for !stop.Load() {
				batch := make([]Message, 1+grng.IntN(3))
				for i := range batch {
					batch[i] = randMsg(grng, 3, 2000)
				}
				res, err := l.Append(batch, nil)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				if crashed.Load() {
					continue // may or may not have been acknowledged before the crash
				}
				for i := range res {
					acks[g] = append(acks[g], ack{batch[i], res[i]})
				}
				nacked.Add(int64(len(res)))
			}
		})
	}
	if mode == FlushAsync {
		wg.Go(func() {
			for !stop.Load() {
				w := l.WrittenOffset()
				if err := l.Sync(); err != nil {
					t.Errorf("sync: %v", err)
					return
				}
				if !crashed.Load() && w > syncedTo.Load() {
					syncedTo.Store(w) // only this goroutine stores
				}
			}
		})
	}
	ch, unwatch := l.Watch()
	deadline := time.NewTimer(20 * time.Second)
	// Crash once the log has reached crashAt and, so there is something to
	// check, some appends were acknowledged (sync) or synced (async).
	ready := func() bool {
		if l.WrittenOffset() < crashAt || nacked.Load() == 0 {
			return false
		}
		return mode == FlushSync || syncedTo.Load() >= crashAt/2
	}
	for !ready() && !t.Failed() {
		select {
		case <-ch:
		case <-deadline.C:
			t.Errorf("log did not reach %d bytes (at %d)", crashAt, l.WrittenOffset())
		}
	}
	deadline.Stop()
	unwatch()
	crashed.Store(true)
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPct, RNG: rand.New(rand.NewPCG(seed, 0xC10E))})
	stop.Store(true)
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}

	var all []ack
	for _, a := range acks {
		all = append(all, a...)
	}
	mustHave := all
	if mode == FlushAsync {
		mustHave = nil
		for _, a := range all {
			if a.res.End() <= syncedTo.Load() {
				mustHave = append(mustHave, a)
			}
		}
	}
	r := openTest(t, clone, nil)
	if mode == FlushAsync && r.WrittenOffset() < syncedTo.Load() {
		t.Fatalf("recovered end %d is below the synced offset %d", r.WrittenOffset(), syncedTo.Load())
	}
	checkAcked(t, r, mustHave)
	seen := verifyLog(t, r)
	t.Logf("crash at %d: %d acknowledged, %d must survive, recovered %d records ending at %d", crashAt, len(all), len(mustHave), len(seen), r.WrittenOffset())
	checkContinues(t, r, seen)
	end := r.WrittenOffset()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = openTest(t, clone, nil)
	defer r.Close()
	if r.WrittenOffset() != end {
		t.Fatalf("reopen after recovery: end %d, want %d", r.WrittenOffset(), end)
	}
	checkAcked(t, r, mustHave)
	verifyLog(t, r)
}

// TestCrashRightAfterCreate: a log created in new nested directories, one
// sync-mode append, then power loss. The directories themselves must
// survive, or the acknowledged record is gone.
func TestCrashRightAfterCreate(t *testing.T) {
	fs := vfs.NewCrashableMem()
	o := Options{FS: fs, Dir: "data/broker/commitlog", SegmentSize: testSeg, MaxMessageSize: 16 << 10, Flush: FlushSync}
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	m := testMsg("A", 0, "acknowledged")
	res := mustAppend(t, l, m)
	clone := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	o.FS = clone
	r, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkAcked(t, r, []ack{{m, res[0]}})
}
