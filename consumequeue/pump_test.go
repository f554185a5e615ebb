package consumequeue

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// An append with async flush is dispatched by the appender itself, and a
// queue's OnNotify runs there too: the queues have grown when Append
// returns, with no dispatcher wake-up in between.
func TestAppendDispatchesOnAppender(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	var onAppender []bool // written by OnNotify, read after Append returned on the same goroutine
	s := openStore(t, fs, l, func(o *Options) {
		o.FlushInterval = time.Hour // the dispatcher never takes the lock by itself
		o.OnNotify = func(topic string, q int32) {
			buf := make([]byte, 64<<10)
			st := string(buf[:runtime.Stack(buf, false)])
			onAppender = append(onAppender, strings.Contains(st, "commitlog.(*Log).Append"))
		}
	})
	defer s.Close()
	for i := range 20 {
		s.Notify("A", 0)
		res := mustAppend(t, l, testMsg("A", 0, "m", ""))
		if got := s.MaxOffset("A", 0); got != res[0].QueueOffset+1 {
			t.Fatalf("append %d: queue max offset %d right after Append, want %d", i, got, res[0].QueueOffset+1)
		}
		if len(onAppender) != i+1 || !onAppender[i] {
			t.Fatalf("append %d: OnNotify calls %v, want one more, on the appender", i, onAppender)
		}
	}
}

// When the store is closed, appends to the log go on and dispatch nothing.
func TestPumpAfterClose(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	s := openStore(t, fs, l, nil)
	mustAppend(t, l, testMsg("A", 0, "m", ""))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, testMsg("A", 0, "m", ""))
	s.pump() // as a Ring that began before the store stopped watching would
}
