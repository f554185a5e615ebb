package consumequeue

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
)

// TestCrashListenerContract crashes a log, its store and a listener whose
// unsynced work a crash loses, at random points while appenders run, with
// random sync intervals and sizes. After the restart the listener, fed
// again from the checkpoint, must hold every record of the recovered log.
func TestCrashListenerContract(t *testing.T) { forSeeds(t, 12, 4, listenerCrashOnce) }

func listenerCrashOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 77))
	fs := vfs.NewCrashableMem()
	logOpts := func(o *commitlog.Options) { o.Flush = commitlog.FlushSync }
	storeOpts := func(o *Options) {
		o.FlushInterval = time.Duration(1+rng.IntN(5)) * time.Millisecond
		o.SyncBytes = []int{1, 64, 8 << 10}[rng.IntN(3)]
		o.MaxSyncDelay = time.Duration(1+rng.IntN(20)) * time.Millisecond
		o.ListenerSyncInterval = []time.Duration{time.Millisecond, 20 * time.Millisecond, time.Hour}[rng.IntN(3)]
		o.ListenerSyncBytes = []int64{512, 8 << 10, 1 << 30}[rng.IntN(3)]
	}
	l := openLog(t, fs, logOpts)
	syncRoot(t, fs)
	v := newVolatileIndex(nil)
	s := openStore(t, fs, l, func(o *Options) { storeOpts(o); o.Listeners = []Listener{v} })

	var (
		appended atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		grng := rand.New(rand.NewPCG(seed, uint64(g)))
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := l.Append([]commitlog.Message{testMsg(topicName(grng.IntN(4)), int32(grng.IntN(2)), "p", "")}, nil); err != nil {
					return // closed after the crash
				}
				appended.Add(1)
			}
		}()
	}
	// The crash point: a number of records, and a time for flushes, feeds
	// and syncs to happen.
	target := int64(20 + rng.IntN(300))
	crashAt := time.Now().Add(time.Duration(5+rng.IntN(60)) * time.Millisecond)
	pollUntil(t, "the appenders to reach the crash point", func() bool { return appended.Load() >= target && time.Now().After(crashAt) })
	// The listener and the files crash at one instant: Sync waits on v.mu.
	v.mu.Lock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	survived := make(map[int64]bool, len(v.durable))
	for off := range v.durable {
		survived[off] = true
	}
	v.mu.Unlock()
	stop.Store(true)
	s.Close()
	l.Close()
	wg.Wait()

	t.Logf("survived %d, checkpoint %+v, log %d", len(survived), savedCheckpoint(crashed), l.WrittenOffset())
	v2 := newVolatileIndex(survived)
	l = openLog(t, crashed, logOpts)
	defer l.Close()
	s = openStore(t, crashed, l, func(o *Options) { storeOpts(o); o.Listeners = []Listener{v2} })
	defer s.Close()
	// Open fed the listener up to the log's end before it returned.
	var buf []byte
	missing := 0
	if _, err := l.Scan(l.MinOffset(), l.WrittenOffset(), &buf, func(off int64, _ []byte) error {
		v2.mu.Lock()
		if !v2.applied[off] {
			missing++
		}
		v2.mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if missing > 0 {
		t.Fatalf("%d records of the recovered log are not in the listener after the restart (checkpoint %+v)", missing, savedCheckpoint(crashed))
	}
}
