package consumequeue

import (
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func testEntry(qo int64) Entry {
	return Entry{QueueOffset: qo, Offset: 1000 + 100*qo, Size: 90, TagsCode: qo}
}

// stageAll stages and commits entries qos in one batch.
func stageAll(t *testing.T, w *queueWriter, q *queue, qos ...int64) {
	t.Helper()
	for _, qo := range qos {
		e := testEntry(qo)
		if err := w.stage(q, &e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.commitTouched(); err != nil {
		t.Fatal(err)
	}
}

func readEntry(t *testing.T, q *queue, i int64) Entry {
	t.Helper()
	q.mu.RLock()
	defer q.mu.RUnlock()
	e, err := q.entryRLocked(i)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestQueueWriter(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("q", 0o755); err != nil {
		t.Fatal(err)
	}
	var notified []string
	w := &queueWriter{fs: fs, epf: 4, dirtyDirs: map[string]struct{}{},
		onNotify: func(topic string, id int32) { notified = append(notified, topic) }}
	q := &queue{topic: "T", dir: "q", epf: 4, dirtyFrom: -1}
	t.Cleanup(q.closeFiles)
	wake := make(chan struct{})
	q.notify = wake

	stageAll(t, w, q, 0, 1, 2, 3, 4, 5)
	if q.max != 6 || len(q.tail) != 6*EntrySize || q.fileEnd != 0 {
		t.Fatalf("after a commit: max %d, tail %d bytes, fileEnd %d", q.max, len(q.tail), q.fileEnd)
	}
	if len(w.touched) != 0 || !slices.Equal(w.dirty, []*queue{q}) || q.dirtyFrom != testEntry(0).Offset {
		t.Fatalf("touched %d, dirty %d, dirtyFrom %d", len(w.touched), len(w.dirty), q.dirtyFrom)
	}
	select {
	case <-wake:
	default:
		t.Fatal("the waiter was not woken")
	}
	if !slices.Equal(notified, []string{"T"}) {
		t.Fatalf("onNotify calls: %v", notified)
	}

	// The tail goes to files of epf entries each, in the queue's directory.
	if err := w.writeTail(q); err != nil {
		t.Fatal(err)
	}
	if q.fileEnd != 6 || len(q.tail) != 0 || len(q.files) != 2 || q.files[1].first != 4 || len(q.dirtyFiles) != 2 {
		t.Fatalf("after writeTail: fileEnd %d, tail %d bytes, %d files, %d dirty files", q.fileEnd, len(q.tail), len(q.files), len(q.dirtyFiles))
	}
	if _, ok := w.dirtyDirs["q"]; !ok {
		t.Fatal("creating a file did not mark its directory for a sync")
	}
	for i := range int64(6) {
		if got := readEntry(t, q, i); got != testEntry(i) {
			t.Fatalf("entry %d reads %+v", i, got)
		}
	}

	// A re-dispatch rewrites entries in place; a gap leaves holes.
	again := testEntry(2)
	again.TagsCode = 77
	if err := w.stage(q, &again); err != nil {
		t.Fatal(err)
	}
	if err := w.commitTouched(); err != nil {
		t.Fatal(err)
	}
	if got := readEntry(t, q, 2); got != again || q.max != 6 {
		t.Fatalf("rewritten entry 2 reads %+v, max %d", got, q.max)
	}
	stageAll(t, w, q, 9)
	if q.max != 10 || q.fileEnd != 9 {
		t.Fatalf("after a gap: max %d, fileEnd %d", q.max, q.fileEnd)
	}
	if got := readEntry(t, q, 7); got.Size != 0 {
		t.Fatalf("entry 7 in the gap reads %+v, want a hole", got)
	}
	if got := readEntry(t, q, 9); got != testEntry(9) {
		t.Fatalf("entry 9 reads %+v", got)
	}
}
