package consumequeue

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
)

// TestManyQueuesSyncedTogether runs enough queues on a real file system
// that a flush syncs them with one syncfs, and checks that the checkpoint
// then covers them and a reopen serves exactly the same entries.
func TestManyQueuesSyncedTogether(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.Default
	l := openLog(t, fs, func(o *commitlog.Options) { o.Dir = fs.PathJoin(dir, "log") })
	s := openStore(t, fs, l, func(o *Options) {
		o.Dir = fs.PathJoin(dir, "cq")
		o.SyncBytes = 1 // every dirty queue is due at each flush
	})
	var last commitlog.AppendResult
	for i := 0; i < 3*syncfsThreshold; i++ {
		res := mustAppend(t, l, testMsg(fmt.Sprintf("T%02d", i), int32(i%3), "x", "tag"))
		last = res[0]
	}
	waitDispatched(t, s, last.End())
	before := snapshot(t, s)
	if len(before) != 3*syncfsThreshold {
		t.Fatalf("%d queues", len(before))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ck, err := commitlog.ReadFile(fs, fs.PathJoin(dir, "cq", checkpointName))
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeCheckpoint(ck)
	if err != nil || c.queues != last.End() {
		t.Fatalf("checkpoint %+v (%v), want queues at %d", c, err, last.End())
	}
	s = openStore(t, fs, l, func(o *Options) { o.Dir = fs.PathJoin(dir, "cq") })
	defer s.Close()
	defer l.Close()
	if after := snapshot(t, s); !reflect.DeepEqual(before, after) {
		t.Fatal("entries differ after reopen")
	}
}
