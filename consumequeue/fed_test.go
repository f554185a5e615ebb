package consumequeue

import (
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// gatedListener signals entered when the feeder first hands it a batch
// and accepts batches only once its gate is open.
type gatedListener struct {
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedListener) Dispatch([]Record) error {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
	return nil
}

func (g *gatedListener) Sync() error { return nil }

// TestWatchFedRingsWhenListenersAdvance: the FedOffset doorbell rings when
// a listener accepts records the queues already hold. The feeder's and
// flusher's tickers are an hour away, so only the feed itself can ring it.
func TestWatchFedRingsWhenListenersAdvance(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	g := &gatedListener{entered: make(chan struct{}), gate: make(chan struct{})}
	var opened sync.Once
	release := func() { opened.Do(func() { close(g.gate) }) }
	s := openStore(t, fs, l, func(o *Options) {
		o.FlushInterval, o.ListenerSyncInterval = time.Hour, time.Hour
		o.Listeners = []Listener{g}
	})
	defer s.Close()
	defer release() // before Close, which feeds the listener what is left

	wake, stop := s.WatchFed()
	defer stop()
	res := mustAppend(t, l, testMsg("fed", 0, "m0", ""), testMsg("fed", 1, "m1", ""))
	end := res[len(res)-1].End()
	waitDispatched(t, s, end)
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	select {
	case <-g.entered:
	case <-deadline.C:
		t.Fatal("the feeder never offered the listener a batch")
	}
	if f := s.FedOffset(); f >= end {
		t.Fatalf("FedOffset %d before the listener accepted anything, want below %d", f, end)
	}
	// The dispatcher rang before it woke the feeder: forget that ring, so
	// only the feed can wake the loop below.
	select {
	case <-wake:
	default:
	}
	release()
	for s.FedOffset() < end {
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("FedOffset %d, want %d: the doorbell did not ring when the listener advanced", s.FedOffset(), end)
		}
	}
}
