package delay

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/consumequeue"
)

func saveCursor(t *testing.T, db *pebble.DB, k timerKey) {
	t.Helper()
	var c [16]byte
	binary.BigEndian.PutUint64(c[:], uint64(k.due))
	binary.BigEndian.PutUint64(c[8:], uint64(k.off))
	if err := db.Set(keyTimerCursor, c[:], pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestTimerIndexReplayAfterCrash: a crash loses a timer entry that was
// indexed (late, above the deliverer's floor) but not synced, after the
// deliverer saved a cursor past its due time. The consume queues feed the
// index again from before it: the lost entry must be delivered, and the
// entries the index had synced (already delivered) must not be indexed
// again.
func TestTimerIndexReplayAfterCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db, err := pebble.Open("meta", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	ti, err := NewTimerIndex(db, "TIMER", math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := timerRecord(0, 1000), timerRecord(100, 2000), timerRecord(200, 1500)
	if err := ti.Dispatch([]consumequeue.Record{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := ti.Sync(); err != nil {
		t.Fatal(err)
	}
	keys, _, err := ti.scan(timerKey{}, 2500, 10)
	if err != nil || len(keys) != 2 {
		t.Fatalf("scan: %v (%v)", keys, err)
	}
	cursor := timerKey{due: 2000, off: 101}
	saveCursor(t, db, cursor) // a and b were delivered
	if err := ti.Dispatch([]consumequeue.Record{c}); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	db.Close()

	db, err = pebble.Open("meta", &pebble.Options{FS: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ti, err = NewTimerIndex(db, "TIMER", math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	// The replay: everything from the last checkpoint the listener passed.
	if err := ti.Dispatch([]consumequeue.Record{a, b, c}); err != nil {
		t.Fatal(err)
	}
	keys, _, err = ti.scan(cursor, 1<<40, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].off != 200 {
		t.Fatalf("after the replay the deliverer finds %v, want only the lost entry at offset 200", keys)
	}
	// Feeding the same records once more changes nothing.
	if err := ti.Dispatch([]consumequeue.Record{a, b, c}); err != nil {
		t.Fatal(err)
	}
	if n, _ := ti.Count(); n != 3 {
		t.Fatalf("%d entries after a repeated feed, want 3", n)
	}
}

// TestTimerIndexPastLogEnd: records the index saw past the recovered log's
// end were lost with the log's unsynced tail; new records at those offsets
// are indexed, not skipped as seen.
func TestTimerIndexPastLogEnd(t *testing.T) {
	db, ti := memTimerIndex(t)
	if err := ti.Dispatch([]consumequeue.Record{timerRecord(100, 1000), timerRecord(500, 2000)}); err != nil {
		t.Fatal(err)
	}
	// The log recovered to 400: the record at 500 is gone, and a new one
	// is appended at 450.
	ti, err := NewTimerIndex(db, "TIMER", 400)
	if err != nil {
		t.Fatal(err)
	}
	if err := ti.Dispatch([]consumequeue.Record{timerRecord(100, 1000), timerRecord(450, 3000)}); err != nil {
		t.Fatal(err)
	}
	keys, _, err := ti.scan(timerKey{}, 1<<40, 10)
	if err != nil {
		t.Fatal(err)
	}
	offs := map[int64]bool{}
	for _, k := range keys {
		offs[k.off] = true
	}
	if !offs[450] || len(keys) != 3 {
		t.Fatalf("index holds %v: the new record at 450 must be indexed once, the one at 100 not again", keys)
	}
}

// memTimerIndex opens a timer index on an in-memory database that the
// test's cleanup closes.
func memTimerIndex(t *testing.T) (*pebble.DB, *TimerIndex) {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ti, err := NewTimerIndex(db, "TIMER", math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	return db, ti
}
