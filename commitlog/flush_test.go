package commitlog

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// openIdleFlusher opens an async log whose flusher never runs a round on
// its own during the test, so the test drives rounds itself.
func openIdleFlusher(t *testing.T, fs vfs.FS) *Log {
	t.Helper()
	l := openTest(t, fs, func(o *Options) {
		o.FlushInterval = time.Hour
		o.CheckpointInterval = time.Hour
		o.SyncTimeout = 10 * time.Millisecond
	})
	t.Cleanup(func() { l.Close() })
	return l
}

func TestFlusherRoundMakesWritesDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openIdleFlusher(t, fs)
	res := mustAppend(t, l, testMsg("T", 0, "a"), testMsg("T", 1, "b"))
	end := res[1].End()
	if l.FlushedOffset() >= end {
		t.Fatalf("flushed %d before any round, written %d", l.FlushedOffset(), end)
	}
	ck := l.flush.checkpointedOffset

	l.flush.round(false)
	if l.FlushedOffset() != end {
		t.Fatalf("after a round flushed %d, want %d", l.FlushedOffset(), end)
	}
	if l.flush.checkpointedOffset != ck {
		t.Fatal("a round before the checkpoint interval wrote a checkpoint")
	}
	// The synced bytes survive a crash.
	clone := fs.CrashClone(vfs.CrashCloneCfg{})
	after := openTest(t, clone, nil)
	defer after.Close()
	if after.WrittenOffset() != end || len(allRecords(t, after)) != 2 {
		t.Fatalf("after a crash the log ends at %d with %d records, want %d and 2", after.WrittenOffset(), len(allRecords(t, after)), end)
	}

	// The final round checkpoints.
	l.flush.round(true)
	if l.flush.checkpointedOffset != end {
		t.Fatalf("checkpointed %d after the final round, want %d", l.flush.checkpointedOffset, end)
	}
	c, err := readCheckpoint(fs, "log")
	if err != nil || c.offset != end || c.queues[queueKey{"T", 1}] != 1 {
		t.Fatalf("checkpoint %+v, %v", c, err)
	}
}

func TestFlusherWait(t *testing.T) {
	l := openIdleFlusher(t, vfs.NewMem())
	res := mustAppend(t, l, testMsg("T", 0, "a"))
	if err := l.flush.wait(make(chan struct{}), res[0].End()); !errors.Is(err, ErrFlushTimeout) {
		t.Fatalf("wait on a round that never ends: %v, want ErrFlushTimeout", err)
	}
	ended := make(chan struct{})
	close(ended)
	if err := l.flush.wait(ended, res[0].End()); !errors.Is(err, ErrClosed) {
		t.Fatalf("a round that ended short of the end: %v, want ErrClosed", err)
	}
	l.flush.round(false)
	if err := l.flush.wait(ended, res[0].End()); err != nil {
		t.Fatalf("a round that covered the end: %v", err)
	}
}

func TestFlusherBellCoalesces(t *testing.T) {
	f := flusher{bell: make(chan struct{}, 1)}
	f.ring()
	f.ring() // must not block
	<-f.bell
	select {
	case <-f.bell:
		t.Fatal("two rings left two signals")
	default:
	}
}
