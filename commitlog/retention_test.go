package commitlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestDeleteSegmentsBefore(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, nil)
	body := string(bytes.Repeat([]byte("r"), 2000))
	var res []AppendResult
	for l.WrittenOffset() < 4*l.opts.SegmentSize {
		res = append(res, mustAppend(t, l, testMsg("T", 0, body))...)
	}
	seg := l.opts.SegmentSize
	// Nothing before the first segment's end: nothing goes.
	if n, err := l.DeleteSegmentsBefore(seg - 1); err != nil || n != 0 {
		t.Fatalf("deleted %d (%v)", n, err)
	}
	if n, err := l.DeleteSegmentsBefore(2 * seg); err != nil || n != 2 {
		t.Fatalf("deleted %d (%v), want 2", n, err)
	}
	if l.MinOffset() != 2*seg {
		t.Fatalf("min offset %d", l.MinOffset())
	}
	if _, _, err := l.ReadRecord(res[0].Offset, nil); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read of a deleted record: %v", err)
	}
	last := res[len(res)-1]
	if _, _, err := l.ReadRecord(last.Offset, nil); err != nil {
		t.Fatal(err)
	}
	// The active segment is never deleted.
	if _, err := l.DeleteSegmentsBefore(1 << 62); err != nil {
		t.Fatal(err)
	}
	if len(l.Segments()) != 1 {
		t.Fatalf("segments left: %d", len(l.Segments()))
	}
	l.Close()
	l = openTest(t, fs, nil)
	defer l.Close()
	if l.MinOffset() != l.Segments()[0].Base || l.WrittenOffset() != last.End() {
		t.Fatalf("reopened: min %d end %d, want end %d", l.MinOffset(), l.WrittenOffset(), last.End())
	}
	if got := l.NextQueueOffset("T", 0); got != last.QueueOffset+1 {
		t.Fatalf("next queue offset %d after deleting segments, want %d", got, last.QueueOffset+1)
	}
}
