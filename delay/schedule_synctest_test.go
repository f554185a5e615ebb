package delay

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
	putErrs int           // fail this many PutDue calls
	gets    int           // Get calls
	wake    func(q int32) // what the broker's notification hook calls (Service.Wake)
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
			if f.wake != nil {
				f.wake(q)
			}
		}
	}
	return consumequeue.Record{Entry: consumequeue.Entry{Offset: off, Size: 100}, Topic: []byte("TIMER"), StoreTimestamp: rec.StoreTimestamp, Properties: rec.Properties}
}

func (f *fakeSchedule) Get(_ string, q int32, offset int64, max int, dst []consumequeue.Entry) ([]consumequeue.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
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
	if f.putErrs > 0 {
		f.putErrs--
		return errors.New("disk full")
	}
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

// defaultLevels are RocketMQ's 18 delay levels.
var defaultLevels = []time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute,
	6 * time.Minute, 7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
}

// advance lets the bubble's fake clock run d: the test's goroutine blocks
// on a timer, every other goroutine of the bubble runs until it blocks,
// and then the clock jumps. Nothing waits in real time.
func advance(d time.Duration) {
	<-time.After(d)
	synctest.Wait()
}

// memDB opens an in-memory database inside the test's synctest bubble,
// so that pebble's goroutines (the write-ahead log writer a synced save
// waits on) live on the fake clock too; the test closes it before the
// bubble ends.
func memDB(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	o := &pebble.Options{FS: fs, Logger: quietLogger{}}
	o.Experimental.CompactionScheduler = noCompactions{}
	db, err := pebble.Open("meta", o)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// noCompactions grants no compaction beyond those pebble runs without
// asking (a test database of a few kilobytes needs none). Unlike pebble's
// default scheduler it has no 100 ms ticker, which inside a bubble would
// wake 35 million times over a 40-day schedule.
type noCompactions struct{}

func (noCompactions) Register(int, pebble.DBForCompaction) {}
func (noCompactions) Unregister()                          {}
func (noCompactions) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	return false, nil
}
func (noCompactions) UpdateGetAllowedWithoutPermission() {}

// quietLogger drops pebble's informational lines.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// startService starts a Service over f and db inside the bubble, with f
// wired to wake it as the broker's notification hook does.
func startService(t *testing.T, f *fakeSchedule, db *pebble.DB, levels []time.Duration) (*Service, *TimerIndex) {
	t.Helper()
	ti, err := NewTimerIndex(db, "TIMER", math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Levels: levels, ScheduleTopic: "SCHEDULE", TimerTopic: "TIMER",
		DB: db, Queues: f, Log: f, Put: f}, ti)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.wake = s.Wake
	f.mu.Unlock()
	s.Start()
	return s, ti
}

func expectDelivered(t *testing.T, f *fakeSchedule, when string, want ...string) {
	t.Helper()
	if got := f.delivered(); !slices.Equal(got, want) {
		t.Fatalf("%s: delivered %v, want %v", when, got, want)
	}
}

// TestScheduleTiming drives the level and timer deliverers on a fake
// clock: each message is delivered at its due time, not a millisecond
// before, and a message stored while a deliverer waits is picked up.
func TestScheduleTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		s, ti := startService(t, f, db, []time.Duration{time.Second, 5 * time.Second})
		defer s.Close()

		f.store(0, "L1", map[string]string{protocol.PropDelayLevel: "1"})
		advance(999 * time.Millisecond)
		expectDelivered(t, f, "at 999ms")
		advance(time.Millisecond)
		expectDelivered(t, f, "at 1s", "L1")

		// A level-2 message stored while that deliverer is idle.
		f.store(1, "L2", map[string]string{protocol.PropDelayLevel: "2"})
		advance(5*time.Second - time.Millisecond)
		expectDelivered(t, f, "at L2-1ms", "L1")
		advance(time.Millisecond)
		expectDelivered(t, f, "at L2", "L1", "L2")

		// A timer message, fed to the index as the dispatcher would.
		due := time.Now().Add(2500 * time.Millisecond).UnixMilli()
		rec := f.store(-1, "T", map[string]string{protocol.PropTimerDeliverMS: strconv.FormatInt(due, 10)})
		if err := ti.Dispatch([]consumequeue.Record{rec}); err != nil {
			t.Fatal(err)
		}
		advance(2499 * time.Millisecond)
		expectDelivered(t, f, "at T-1ms", "L1", "L2")
		advance(time.Millisecond)
		expectDelivered(t, f, "at T", "L1", "L2", "T")
	})
}

// TestScheduleEveryLevelBoundary stores one message in each of the 18
// default levels at once and walks the clock to each level's delay: the
// level's message is not delivered a millisecond before it and is
// delivered at it, in level order.
func TestScheduleEveryLevelBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		s, _ := startService(t, f, db, defaultLevels)
		defer s.Close()
		start := time.Now()
		var want []string
		for i := range defaultLevels {
			f.store(int32(i), fmt.Sprintf("level-%d", i+1), map[string]string{protocol.PropDelayLevel: strconv.Itoa(i + 1)})
		}
		for i, d := range defaultLevels {
			advance(time.Until(start.Add(d - time.Millisecond)))
			expectDelivered(t, f, fmt.Sprintf("1ms before level %d (%v)", i+1, d), want...)
			advance(time.Millisecond)
			want = append(want, fmt.Sprintf("level-%d", i+1))
			expectDelivered(t, f, fmt.Sprintf("at level %d (%v)", i+1, d), want...)
		}
		if p := s.Pending(); len(p) != 0 {
			t.Fatalf("pending after every level: %v", p)
		}
	})
}

type timedMsg struct {
	body string
	due  time.Time
}

// TestScheduleArbitraryTimes feeds timer messages due at random times
// from 1 s to 40 days (several at the same millisecond) and walks the
// clock to each: at every due time exactly the messages due by then are
// delivered, in due order.
func TestScheduleArbitraryTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		s, ti := startService(t, f, db, defaultLevels[:1])
		defer s.Close()
		rng := rand.New(rand.NewPCG(13, 13))
		start := time.Now()
		var msgs []timedMsg
		var recs []consumequeue.Record
		for i := range 300 {
			var due time.Time
			if i%10 == 9 {
				due = msgs[i-1].due // same millisecond as another
			} else {
				due = start.Add(time.Second + time.Duration(rng.Int64N(int64(40*24*time.Hour-time.Second)))).Truncate(time.Millisecond)
			}
			body := fmt.Sprintf("t%03d", i)
			msgs = append(msgs, timedMsg{body, due})
			recs = append(recs, f.store(-1, body, map[string]string{protocol.PropTimerDeliverMS: strconv.FormatInt(due.UnixMilli(), 10)}))
		}
		if err := ti.Dispatch(recs); err != nil {
			t.Fatal(err)
		}
		slices.SortStableFunc(msgs, func(a, b timedMsg) int { return a.due.Compare(b.due) })
		var want []string
		for i := 0; i < len(msgs); {
			at := msgs[i].due
			advance(time.Until(at.Add(-time.Millisecond)))
			if got := len(f.delivered()); got != len(want) {
				t.Fatalf("1ms before %v: %d delivered, want %d", at.Sub(start), got, len(want))
			}
			advance(time.Millisecond)
			for ; i < len(msgs) && msgs[i].due.Equal(at); i++ {
				want = append(want, msgs[i].body)
			}
			// Equal due times go in store (commitlog offset) order.
			expectDelivered(t, f, fmt.Sprintf("at %v", at.Sub(start)), want...)
		}
	})
}

// TestScheduleManyDueAtOnce: more messages than one step reads become due
// at the same instant, in a level queue and in the timer index; all are
// delivered at that instant, in order, none before.
func TestScheduleManyDueAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		s, ti := startService(t, f, db, []time.Duration{10 * time.Second})
		defer s.Close()
		const nLevel, nTimer = 3*levelBatch + 7, 2*timerBatch + 3
		var want []string
		for i := range nLevel {
			body := fmt.Sprintf("L%04d", i)
			f.store(0, body, map[string]string{protocol.PropDelayLevel: "1"})
			want = append(want, body)
		}
		due := time.Now().Add(10 * time.Second).UnixMilli()
		var recs []consumequeue.Record
		for i := range nTimer {
			body := fmt.Sprintf("T%04d", i)
			recs = append(recs, f.store(-1, body, map[string]string{protocol.PropTimerDeliverMS: strconv.FormatInt(due, 10)}))
			want = append(want, body)
		}
		if err := ti.Dispatch(recs); err != nil {
			t.Fatal(err)
		}
		advance(10*time.Second - time.Millisecond)
		expectDelivered(t, f, "1ms before")
		advance(time.Millisecond)
		got := f.delivered()
		// The two deliverers interleave their batches; each keeps its order.
		var levels, timers []string
		for _, b := range got {
			if b[0] == 'L' {
				levels = append(levels, b)
			} else {
				timers = append(timers, b)
			}
		}
		if !slices.Equal(append(levels, timers...), want) {
			t.Fatalf("delivered %d level and %d timer messages (want %d, %d) or out of order", len(levels), len(timers), nLevel, nTimer)
		}
		if n, _ := ti.Count(); n != 0 {
			t.Fatalf("%d timer entries left after delivery", n)
		}
	})
}

// TestScheduleRestartWithProgress stops the service half way, starts a
// new one on the same database: what was delivered is not delivered
// again, what was not is delivered at its time, from every level and the
// timer index.
func TestScheduleRestartWithProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		levels := []time.Duration{time.Second, time.Minute}
		s, ti := startService(t, f, db, levels)
		start := time.Now()
		var recs []consumequeue.Record
		for i := range 4 {
			// Level 1 at +1s … +4s, level 2 at +60s … +63s, timer at +30s … +33s.
			f.store(0, fmt.Sprintf("a%d", i), map[string]string{protocol.PropDelayLevel: "1"})
			f.store(1, fmt.Sprintf("b%d", i), map[string]string{protocol.PropDelayLevel: "2"})
			due := start.Add(time.Duration(30+i) * time.Second).UnixMilli()
			recs = append(recs, f.store(-1, fmt.Sprintf("t%d", i), map[string]string{protocol.PropTimerDeliverMS: strconv.FormatInt(due, 10)}))
			advance(time.Second)
		}
		if err := ti.Dispatch(recs); err != nil {
			t.Fatal(err)
		}
		// At +31.5s: a0 … a3, t0, t1 delivered.
		advance(time.Until(start.Add(31500 * time.Millisecond)))
		expectDelivered(t, f, "before the restart", "a0", "a1", "a2", "a3", "t0", "t1")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		advance(time.Second) // down for a second: t2 falls due meanwhile

		s, _ = startService(t, f, db, levels)
		defer s.Close()
		synctest.Wait()
		expectDelivered(t, f, "at once after the restart", "a0", "a1", "a2", "a3", "t0", "t1", "t2")
		advance(time.Until(start.Add(64 * time.Second)))
		expectDelivered(t, f, "after the restart", "a0", "a1", "a2", "a3", "t0", "t1", "t2", "t3", "b0", "b1", "b2", "b3")
	})
}

// TestScheduleRetriesFailedPut: a put that fails is tried again a second
// later; nothing is skipped.
func TestScheduleRetriesFailedPut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		f.putErrs = 2
		s, _ := startService(t, f, db, []time.Duration{time.Second})
		defer s.Close()
		f.store(0, "x", map[string]string{protocol.PropDelayLevel: "1"})
		advance(time.Second) // first put fails
		expectDelivered(t, f, "after a failed put")
		advance(retryDelay) // second fails
		expectDelivered(t, f, "after two failed puts")
		advance(retryDelay - time.Millisecond)
		expectDelivered(t, f, "1ms before the second retry")
		advance(time.Millisecond)
		expectDelivered(t, f, "at the second retry", "x")
		if p := s.Pending(); len(p) != 0 {
			t.Fatalf("pending %v", p)
		}
	})
}

// TestScheduleLevelIgnoresAppendsBehindHead: while a level waits for its
// head entry, appends behind it (due later) do not make it read again;
// they are delivered at their own times.
func TestScheduleLevelIgnoresAppendsBehindHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		s, _ := startService(t, f, db, []time.Duration{10 * time.Second})
		defer s.Close()
		synctest.Wait()
		f.store(0, "head", map[string]string{protocol.PropDelayLevel: "1"})
		advance(time.Millisecond)
		f.mu.Lock()
		before := f.gets
		f.mu.Unlock()
		want := []string{"head"}
		for i := range 100 {
			body := fmt.Sprintf("m%d", i)
			f.store(0, body, map[string]string{protocol.PropDelayLevel: "1"})
			want = append(want, body)
			advance(time.Millisecond)
		}
		f.mu.Lock()
		reads := f.gets - before
		f.mu.Unlock()
		if reads > 1 {
			t.Fatalf("the waiting level read its queue %d times for 100 appends behind its head", reads)
		}
		advance(10 * time.Second)
		expectDelivered(t, f, "after 10 s", want...)
	})
}

// TestScheduleStopStartReload: a stopped service delivers nothing however
// long it waits; Reload takes the progress saved meanwhile (by another
// writer, as a replica's store gets its master's) and the restarted
// driver delivers from there, not from where it stopped.
func TestScheduleStopStartReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memDB(t, vfs.NewMem())
		defer db.Close()
		f := newFakeSchedule()
		s, _ := startService(t, f, db, []time.Duration{time.Second})
		defer s.Close()
		s.Stop()
		s.Stop() // twice is harmless
		if s.Running() {
			t.Fatal("Running after Stop")
		}
		for i := range 3 {
			f.store(0, fmt.Sprintf("m%d", i), map[string]string{protocol.PropDelayLevel: "1"})
		}
		advance(time.Minute)
		expectDelivered(t, f, "while stopped")
		// Another writer saved that m0 was delivered.
		b := db.NewBatch()
		if err := PutProgress(b, Progress{Levels: []int64{1}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Apply(b, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
		s.Start()
		s.Start() // twice is harmless
		if err := s.Reload(); err == nil {
			t.Fatal("Reload while running succeeded")
		}
		synctest.Wait()
		expectDelivered(t, f, "after the restart", "m1", "m2")
	})
}
