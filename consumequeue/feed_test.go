package consumequeue

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// newTestFeeder returns a feeder over a store that is only its context
// (no goroutines), for one listener at offset 0.
func newTestFeeder(t *testing.T, src Source, lis ...Listener) *feeder {
	t.Helper()
	s := &Store{src: src, stop: make(chan struct{}), opts: Options{ListenerSyncBytes: 1 << 20, ListenerSyncInterval: time.Hour}}
	f := newFeeder(s, lis, 0)
	t.Cleanup(func() { f.timer.Stop() })
	return f
}

func TestFeederFeedsAndSyncs(t *testing.T) {
	l := openLog(t, vfs.NewMem(), nil)
	defer l.Close()
	mustAppend(t, l, testMsg("A", 0, "a", "x"), testMsg("B", 3, "b", ""), testMsg("A", 1, "c", ""))
	v := newVolatileIndex(nil)
	f := newTestFeeder(t, l, v)
	ls := f.listeners[0]
	end := l.WrittenOffset()

	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.feedOnce(ls, end) {
		t.Fatal("feedOnce failed")
	}
	if ls.pos.Load() != end || len(f.recs) != 3 || string(f.recs[1].Topic) != "B" || f.recs[1].QueueID != 3 {
		t.Fatalf("fed to %d (want %d), records %+v", ls.pos.Load(), end, f.recs)
	}
	if applied, _, _, _ := v.state(); applied != 3 {
		t.Fatalf("the listener applied %d records, want 3", applied)
	}
	// Little was fed and not long ago: no sync unless forced.
	if !f.syncListener(ls, false) || ls.durable.Load() != 0 {
		t.Fatalf("an unforced sync moved the durable point to %d", ls.durable.Load())
	}
	if !f.syncListener(ls, true) || ls.durable.Load() != end {
		t.Fatalf("a forced sync left the durable point at %d, want %d", ls.durable.Load(), end)
	}

	// A failed sync keeps the durable point and marks the listener.
	mustAppend(t, l, testMsg("A", 0, "d", ""))
	v.mu.Lock()
	v.failSync = true
	v.mu.Unlock()
	if !f.feedOnce(ls, l.WrittenOffset()) {
		t.Fatal("feedOnce failed")
	}
	if f.syncListener(ls, true) || !ls.failed || ls.durable.Load() != end {
		t.Fatalf("after a failed sync: failed %v, durable %d (want %d)", ls.failed, ls.durable.Load(), end)
	}
}

func TestFeederRing(t *testing.T) {
	l := openLog(t, vfs.NewMem(), nil)
	defer l.Close()
	f := newTestFeeder(t, l, newVolatileIndex(nil))

	// Far behind: rung at once.
	f.ring(feedEagerBytes)
	select {
	case <-f.bell:
	default:
		t.Fatal("a listener feedEagerBytes behind did not ring the feeder at once")
	}
	// A little behind: rung by the timer, once however often it is armed.
	f.ring(10)
	f.ring(20)
	if !f.armed.Load() {
		t.Fatal("the timer is not armed")
	}
	select {
	case <-f.bell:
	case <-time.After(10 * time.Second):
		t.Fatal("the timer never rang the feeder")
	}
	if f.armed.Load() {
		t.Fatal("the timer is still armed after it rang")
	}

	// Without listeners nothing rings.
	none := newTestFeeder(t, l)
	none.ring(feedEagerBytes)
	if none.armed.Load() || len(none.bell) != 0 {
		t.Fatal("a feeder without listeners was rung")
	}
}
