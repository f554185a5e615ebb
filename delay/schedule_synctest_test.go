package delay

import (
	"math"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// fakeSchedule is the schedule topic's queues and the log under them.
type fakeSchedule struct {
	mu      sync.Mutex
	queues  map[int32][]consumequeue.Entry
	notify  map[int32]chan struct{}
	records map[int64]protocol.Record
	next    int64 // next commitlog offset
	put     []commitlog.Message
}

func newFakeSchedule() *fakeSchedule {
	return &fakeSchedule{queues: map[int32][]consumequeue.Entry{}, notify: map[int32]chan struct{}{}, records: map[int64]protocol.Record{}, next: 100}
}

// store stores a scheduled message for level queue q (q < 0: the timer
// topic, which has no queue here) at the current time and returns its
// offset.
func (f *fakeSchedule) store(q int32, body string, props map[string]string) consumequeue.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	props[protocol.PropRealTopic], props[protocol.PropRealQueueID] = "real", "0"
	off := f.next
	f.next += 100
	rec := protocol.Record{PhysicalOffset: off, Size: 100, Body: []byte(body), StoreTimestamp: time.Now().UnixMilli(),
		Properties: protocol.EncodeProperties(props)}
	f.records[off] = rec
	if q >= 0 {
		f.queues[q] = append(f.queues[q], consumequeue.Entry{QueueOffset: int64(len(f.queues[q])), Offset: off, Size: 100})
		if ch := f.notify[q]; ch != nil {
			close(ch)
			delete(f.notify, q)
		}
	}
	return consumequeue.Record{Entry: consumequeue.Entry{Offset: off, Size: 100}, Topic: []byte("TIMER"), StoreTimestamp: rec.StoreTimestamp, Properties: rec.Properties}
}

func (f *fakeSchedule) Get(_ string, q int32, offset int64, max int, dst []consumequeue.Entry) ([]consumequeue.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	es := f.queues[q]
	for i := offset; i < int64(len(es)) && len(dst) < max; i++ {
		dst = append(dst, es[i])
	}
	return dst, nil
}

func (f *fakeSchedule) MaxOffset(_ string, q int32) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.queues[q]))
}

func (f *fakeSchedule) Notify(_ string, q int32) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.notify[q]
	if ch == nil {
		ch = make(chan struct{})
		f.notify[q] = ch
	}
	return ch
}

func (f *fakeSchedule) ReadRecord(off int64, buf []byte) (protocol.Record, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records[off], buf, nil
}

func (f *fakeSchedule) PutDue(msgs []commitlog.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.put = append(f.put, msgs...)
	return nil
}

// delivered returns the bodies put so far.
func (f *fakeSchedule) delivered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.put {
		out = append(out, string(m.Body))
	}
	return out
}

// TestScheduleTiming drives the level and timer deliverers on a fake
// clock: each message is delivered at its due time, not a millisecond
// before, and a message stored while a deliverer waits is picked up.
func TestScheduleTiming(t *testing.T) {
	// Without a write-ahead log, a synced write does not wait on pebble's
	// log writer goroutine, which lives outside the bubble.
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), DisableWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSchedule()
		ti, err := NewTimerIndex(db, "TIMER", math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Levels: []time.Duration{time.Second, 5 * time.Second}, ScheduleTopic: "SCHEDULE", TimerTopic: "TIMER",
			DB: db, Queues: f, Log: f, Put: f}, ti)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		defer s.Close()

		step := func(d time.Duration, want ...string) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := f.delivered(); len(got) != len(want) {
				t.Fatalf("after %v: delivered %v, want %v", d, got, want)
			}
		}
		f.store(0, "L1", map[string]string{protocol.PropDelayLevel: "1"})
		step(999 * time.Millisecond)
		step(time.Millisecond, "L1")

		// A level-2 message stored while that deliverer waits for its queue.
		f.store(1, "L2", map[string]string{protocol.PropDelayLevel: "2"})
		step(5*time.Second-time.Millisecond, "L1")
		step(time.Millisecond, "L1", "L2")

		// A timer message, fed to the index as the dispatcher would.
		due := time.Now().Add(2500 * time.Millisecond).UnixMilli()
		rec := f.store(-1, "T", map[string]string{protocol.PropTimerDeliverMS: strconv.FormatInt(due, 10)})
		if err := ti.Dispatch([]consumequeue.Record{rec}); err != nil {
			t.Fatal(err)
		}
		step(2499*time.Millisecond, "L1", "L2")
		step(time.Millisecond, "L1", "L2", "T")
	})
}
