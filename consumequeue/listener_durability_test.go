package consumequeue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/internal/poll"
)

// volatileIndex is a listener whose Dispatch only changes memory that a
// crash loses; Sync copies it to the part that survives.
type volatileIndex struct {
	mu       sync.Mutex
	applied  map[int64]bool // by commitlog offset
	durable  map[int64]bool
	fed      int // records dispatched, repeats included
	syncs    int
	failSync bool
}

func newVolatileIndex(durable map[int64]bool) *volatileIndex {
	v := &volatileIndex{applied: map[int64]bool{}, durable: map[int64]bool{}}
	for off := range durable {
		v.applied[off], v.durable[off] = true, true
	}
	return v
}

func (v *volatileIndex) Dispatch(batch []Record) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range batch {
		v.applied[r.Offset] = true
		v.fed++
	}
	return nil
}

func (v *volatileIndex) Sync() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failSync {
		return errors.New("sync failed")
	}
	for off := range v.applied {
		v.durable[off] = true
	}
	v.syncs++
	return nil
}

// crash returns what survives of the index.
func (v *volatileIndex) crash() map[int64]bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[int64]bool{}
	for off := range v.durable {
		out[off] = true
	}
	return out
}

func (v *volatileIndex) state() (applied, durable, fed, syncs int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.applied), len(v.durable), v.fed, v.syncs
}

// pollUntil polls cond until it holds or 10 s pass.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(context.Background(), 10*time.Second, time.Millisecond, cond); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// savedCheckpoint reads the checkpoint file of the store in dir "cq".
func savedCheckpoint(fs vfs.FS) checkpoint {
	b, err := commitlog.ReadFile(fs, fs.PathJoin("cq", checkpointName))
	if err != nil {
		return checkpoint{}
	}
	ck, _ := decodeCheckpoint(b)
	return ck
}

// durabilityFixture opens a sync-flush log and a store whose queues sync
// at every flush, with listener sync options set by mut, and appends n
// records.
func durabilityFixture(t *testing.T, fs *vfs.MemFS, lis Listener, n int, mut func(*Options)) (*commitlog.Log, *Store, []commitlog.AppendResult) {
	t.Helper()
	logOpts := func(o *commitlog.Options) { o.Flush = commitlog.FlushSync }
	l := openLog(t, fs, logOpts)
	syncRoot(t, fs)
	s := openStore(t, fs, l, func(o *Options) {
		o.SyncBytes, o.MaxSyncDelay = 1, time.Millisecond
		o.Listeners = []Listener{lis}
		mut(o)
	})
	var res []commitlog.AppendResult
	for i := 0; i < n; i++ {
		res = append(res, mustAppend(t, l, testMsg(topicName(i%3), int32(i%2), fmt.Sprint("m", i), ""))...)
	}
	waitDispatched(t, s, l.WrittenOffset())
	return l, s, res
}

// crashAndReopen crashes fs (only synced bytes survive) and the listener
// v, and reopens the log and the store on what survived with a listener
// holding what survived of v. Cleanup closes them.
func crashAndReopen(t *testing.T, fs *vfs.MemFS, l *commitlog.Log, s *Store, v *volatileIndex) *volatileIndex {
	t.Helper()
	survived := v.crash()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	l.Close()
	v2 := newVolatileIndex(survived)
	l2 := openLog(t, crashed, func(o *commitlog.Options) { o.Flush = commitlog.FlushSync })
	s2 := openStore(t, crashed, l2, func(o *Options) { o.Listeners = []Listener{v2} })
	t.Cleanup(func() {
		s2.Close()
		l2.Close()
	})
	return v2
}

// TestCheckpointWaitsForListenerSync: a listener that has accepted every
// record but synced none of them holds the checkpoint back, so after a
// crash that loses its unsynced work the restart feeds it everything
// again.
func TestCheckpointWaitsForListenerSync(t *testing.T) {
	fs := vfs.NewCrashableMem()
	v := newVolatileIndex(nil)
	l, s, res := durabilityFixture(t, fs, v, 50, func(o *Options) {
		o.ListenerSyncInterval, o.ListenerSyncBytes = time.Hour, 1<<40
	})
	end := l.WrittenOffset()
	pollUntil(t, "the listener to accept every record", func() bool { a, _, _, _ := v.state(); return a == len(res) })
	pollUntil(t, "a checkpoint covering the queues", func() bool { return savedCheckpoint(fs).queues == end })
	if ck := savedCheckpoint(fs); ck.listeners > res[0].Offset {
		t.Fatalf("checkpoint %+v passed the listener, which synced nothing after %d", ck, res[0].Offset)
	}
	v2 := crashAndReopen(t, fs, l, s, v)
	v2.mu.Lock()
	defer v2.mu.Unlock()
	for _, r := range res {
		if !v2.applied[r.Offset] {
			t.Fatalf("record at %d was not fed again after the crash (%d of %d held)", r.Offset, len(v2.applied), len(res))
		}
	}
}

// TestListenerSyncedByInterval: with the log idle, the feeder still syncs
// a listener once its oldest unsynced record has waited
// ListenerSyncInterval, and then the checkpoint passes it, so a restart
// feeds it nothing again.
func TestListenerSyncedByInterval(t *testing.T) {
	fs := vfs.NewCrashableMem()
	v := newVolatileIndex(nil)
	l, s, res := durabilityFixture(t, fs, v, 30, func(o *Options) {
		o.ListenerSyncInterval, o.ListenerSyncBytes = 20*time.Millisecond, 1<<40
	})
	end := l.WrittenOffset()
	pollUntil(t, "the listener's work to be synced", func() bool { _, d, _, _ := v.state(); return d == len(res) })
	pollUntil(t, "a checkpoint past the listener", func() bool { return savedCheckpoint(fs).listeners == end })
	if _, _, _, syncs := v.state(); syncs > 5 {
		t.Fatalf("%d syncs for 30 records in about one interval", syncs)
	}
	v2 := crashAndReopen(t, fs, l, s, v)
	if _, _, fed, _ := v2.state(); fed != 0 {
		t.Fatalf("%d records fed again although the listener had synced them", fed)
	}
}

// TestListenerSyncedByBytes: a listener is synced once ListenerSyncBytes
// of log were fed to it, long before the interval.
func TestListenerSyncedByBytes(t *testing.T) {
	fs := vfs.NewCrashableMem()
	v := newVolatileIndex(nil)
	l, s, _ := durabilityFixture(t, fs, v, 100, func(o *Options) {
		o.ListenerSyncInterval, o.ListenerSyncBytes = time.Hour, 1<<10
	})
	defer l.Close()
	pollUntil(t, "a sync by size", func() bool { _, d, _, _ := v.state(); return d > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestListenerSyncFailureHoldsCheckpoint: while Sync fails, the durable
// point stays, and Close's final checkpoint does not pass it.
func TestListenerSyncFailureHoldsCheckpoint(t *testing.T) {
	fs := vfs.NewCrashableMem()
	v := newVolatileIndex(nil)
	v.failSync = true
	l, s, res := durabilityFixture(t, fs, v, 20, func(o *Options) {
		o.ListenerSyncInterval = time.Millisecond
	})
	defer l.Close()
	pollUntil(t, "the listener to accept every record", func() bool { a, _, _, _ := v.state(); return a == len(res) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ck := savedCheckpoint(fs); ck.listeners > res[0].Offset || ck.queues != l.WrittenOffset() {
		t.Fatalf("checkpoint %+v after a listener that never synced (first record at %d)", ck, res[0].Offset)
	}
}
