package consumequeue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/protocol"
)

// appendRandom appends n messages over topics × queues in random batches
// and returns what the log said about each, by queue.
func appendRandom(t testing.TB, l *commitlog.Log, rng *rand.Rand, n, topics, queues int) map[qk][]commitlog.AppendResult {
	t.Helper()
	out := map[qk][]commitlog.AppendResult{}
	for n > 0 {
		batch := make([]commitlog.Message, 0, 8)
		for i := rng.IntN(8); i >= 0 && n > 0; i-- {
			tag := ""
			if rng.IntN(3) > 0 {
				tag = fmt.Sprintf("Tag%d", rng.IntN(5))
			}
			batch = append(batch, testMsg(topicName(rng.IntN(topics)), int32(rng.IntN(queues)), fmt.Sprint("body ", n), tag))
			n--
		}
		res := mustAppend(t, l, batch...)
		for i, r := range res {
			k := qk{batch[i].Topic, batch[i].QueueID}
			out[k] = append(out[k], r)
		}
	}
	return out
}

func TestDispatchManyQueues(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	s := openStore(t, fs, l, func(o *Options) { o.EntriesPerFile = 7 })
	rng := rand.New(rand.NewPCG(1, 2))
	want := appendRandom(t, l, rng, 3000, 12, 5)
	waitDispatched(t, s, l.WrittenOffset())

	if got := len(s.Topics()); got != 12 {
		t.Fatalf("%d topics", got)
	}
	for k, rs := range want {
		if got := s.MaxOffset(k.topic, k.queue); got != int64(len(rs)) {
			t.Fatalf("%v: max %d, want %d", k, got, len(rs))
		}
		if got, err := s.MinOffset(k.topic, k.queue); err != nil || got != 0 {
			t.Fatalf("%v: min %d %v", k, got, err)
		}
		// Read in odd-sized steps so reads cross file boundaries.
		var es []Entry
		for off := int64(0); off < int64(len(rs)); off += int64(len(es)) {
			var err error
			es, err = s.Get(k.topic, k.queue, off, 1+int(off%11), es)
			if err != nil || len(es) == 0 {
				t.Fatalf("%v Get(%d): %d entries, %v", k, off, len(es), err)
			}
			for i, e := range es {
				r := rs[off+int64(i)]
				if e.QueueOffset != off+int64(i) || e.Offset != r.Offset || e.Size != r.Size {
					t.Fatalf("%v entry %+v, appended %+v", k, e, r)
				}
			}
		}
		if es, err := s.Get(k.topic, k.queue, int64(len(rs)), 5, nil); err != nil || len(es) != 0 {
			t.Fatalf("Get at max: %v %v", es, err)
		}
		if _, err := s.Get(k.topic, k.queue, int64(len(rs))+1, 5, nil); !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("Get past max: %v", err)
		}
	}
	checkAgainstLog(t, s, l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen: everything is still there and nothing is re-dispatched.
	s = openStore(t, fs, l, func(o *Options) { o.EntriesPerFile = 7 })
	defer s.Close()
	if s.DispatchedOffset() != l.WrittenOffset() {
		t.Fatalf("reopened at %d, log end %d", s.DispatchedOffset(), l.WrittenOffset())
	}
	checkAgainstLog(t, s, l)
}

func TestFileBoundaries(t *testing.T) {
	const epf = 10
	for _, n := range []int{epf - 1, epf, epf + 1, 2 * epf, 2*epf + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fs := vfs.NewMem()
			l := openLog(t, fs, nil)
			defer l.Close()
			s := openStore(t, fs, l, func(o *Options) { o.EntriesPerFile = epf })
			var res []commitlog.AppendResult
			for i := 0; i < n; i++ {
				res = append(res, mustAppend(t, l, testMsg("B", 3, fmt.Sprint(i), "TagA"))...)
			}
			waitDispatched(t, s, l.WrittenOffset())
			es, err := s.Get("B", 3, 0, 100, nil)
			if err != nil || len(es) != n {
				t.Fatalf("%d entries, %v", len(es), err)
			}
			for i, e := range es {
				if e.Offset != res[i].Offset || e.TagsCode != 2598919 {
					t.Fatalf("entry %d: %+v", i, e)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			names, err := fs.List("cq/B/3")
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(names)
			var want []string
			for first := 0; first < n; first += epf {
				want = append(want, fileName(int64(first)))
			}
			if !slices.Equal(names, want) {
				t.Fatalf("files %v, want %v", names, want)
			}
			last := want[len(want)-1]
			st, err := fs.Stat("cq/B/3/" + last)
			if err != nil {
				t.Fatal(err)
			}
			if wantSize := int64((n-1)%epf+1) * EntrySize; st.Size() != wantSize {
				t.Fatalf("last file %s is %d bytes, want %d", last, st.Size(), wantSize)
			}
			s = openStore(t, fs, l, func(o *Options) { o.EntriesPerFile = epf })
			defer s.Close()
			if got := s.MaxOffset("B", 3); got != int64(n) {
				t.Fatalf("reopened max %d", got)
			}
			res = append(res, mustAppend(t, l, testMsg("B", 3, "next", ""))...)
			waitDispatched(t, s, l.WrittenOffset())
			es, err = s.Get("B", 3, int64(n)-1, 5, nil)
			if err != nil || len(es) != 2 || es[1].Offset != res[n].Offset || es[1].TagsCode != 0 {
				t.Fatalf("after reopen: %+v %v", es, err)
			}
		})
	}
}

func TestRebuildEqualsIncremental(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	opts := func(o *Options) { o.EntriesPerFile = 13 }
	s := openStore(t, fs, l, opts)
	appendRandom(t, l, rng, 1500, 7, 3)
	waitDispatched(t, s, l.WrittenOffset())
	// A restart in the middle, and more appends.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	appendRandom(t, l, rng, 300, 9, 3) // while the store is closed
	s = openStore(t, fs, l, opts)
	appendRandom(t, l, rng, 1200, 9, 4)
	waitDispatched(t, s, l.WrittenOffset())
	incremental := snapshot(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if err := fs.RemoveAll("cq"); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, fs, l, opts)
	defer s.Close()
	rebuilt := snapshot(t, s)
	if len(rebuilt) != len(incremental) {
		t.Fatalf("%d queues rebuilt, %d built incrementally", len(rebuilt), len(incremental))
	}
	n := 0
	for k, es := range incremental {
		if !slices.Equal(es, rebuilt[k]) {
			t.Fatalf("%v differs:\nincremental %v\nrebuilt     %v", k, es, rebuilt[k])
		}
		n += len(es)
	}
	if n != 3000 {
		t.Fatalf("%d entries", n)
	}
	checkAgainstLog(t, s, l)
}

func TestNotify(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	s := openStore(t, fs, l, nil)
	defer s.Close()
	mustAppend(t, l, testMsg("A", 0, "first", ""))
	waitDispatched(t, s, l.WrittenOffset())

	a0 := s.Notify("A", 0) // an existing queue
	b0 := s.Notify("B", 0) // a queue that does not exist yet
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	mustAppend(t, l, testMsg("A", 1, "x", ""), testMsg("C", 0, "x", ""), testMsg("B", 1, "x", ""))
	waitDispatched(t, s, l.WrittenOffset())
	if closed(a0) || closed(b0) {
		t.Fatal("woken by an append to another queue")
	}
	mustAppend(t, l, testMsg("A", 0, "second", ""))
	waitDispatched(t, s, l.WrittenOffset())
	if !closed(a0) {
		t.Fatal("A/0 waiter not woken")
	}
	if closed(b0) {
		t.Fatal("B/0 waiter woken by A/0")
	}
	a0 = s.Notify("A", 0)
	if closed(a0) {
		t.Fatal("a fresh channel is already closed")
	}
	mustAppend(t, l, testMsg("B", 0, "x", ""))
	waitDispatched(t, s, l.WrittenOffset())
	if !closed(b0) || closed(a0) {
		t.Fatalf("after B/0 append: b0 %v a0 %v", closed(b0), closed(a0))
	}

	// A long-poller: take the channel, check, wait.
	done := make(chan int64)
	go func() {
		for {
			ch := s.Notify("D", 2)
			if m := s.MaxOffset("D", 2); m > 0 {
				done <- m
				return
			}
			<-ch
		}
	}()
	mustAppend(t, l, testMsg("D", 2, "x", ""))
	select {
	case m := <-done:
		if m != 1 {
			t.Fatalf("max %d", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poller never woke")
	}
}

func TestOffsetByTime(t *testing.T) {
	fs := vfs.NewMem()
	var mu sync.Mutex
	now := time.UnixMilli(1_000_000)
	l := openLog(t, fs, func(o *commitlog.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	defer l.Close()
	s := openStore(t, fs, l, func(o *Options) { o.EntriesPerFile = 4 })
	defer s.Close()
	if got, err := s.OffsetByTime("A", 0, 5); err != nil || got != 0 {
		t.Fatalf("unknown queue: %d %v", got, err)
	}
	// A/0 gets messages at 1,000,000 + 1000*i ms; other queues in between.
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testMsg("A", 0, "a", ""), testMsg("B", 0, "b", ""))
		mu.Lock()
		now = now.Add(500 * time.Millisecond)
		mu.Unlock()
		mustAppend(t, l, testMsg("B", 0, "b", ""))
		mu.Lock()
		now = now.Add(500 * time.Millisecond)
		mu.Unlock()
	}
	waitDispatched(t, s, l.WrittenOffset())
	for _, c := range []struct{ ts, want int64 }{
		{0, 0},
		{1_000_000, 0},
		{1_000_001, 1},
		{1_003_000, 3},
		{1_003_500, 4},
		{1_009_000, 9},
		{1_009_001, 10},
		{2_000_000, 10},
	} {
		got, err := s.OffsetByTime("A", 0, c.ts)
		if err != nil || got != c.want {
			t.Errorf("OffsetByTime(%d) = %d %v, want %d", c.ts, got, err, c.want)
		}
	}
	if got, _ := s.OffsetByTime("B", 0, 1_000_500); got != 1 {
		t.Errorf("B/0 at 1,000,500: %d", got)
	}
}

// recorder is a listener that fails while fail is set.
type recorder struct {
	mu   sync.Mutex
	fail bool
	got  map[int64]Record // by commitlog offset
	dups int
}

func (r *recorder) Dispatch(batch []Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("listener down")
	}
	for _, rec := range batch {
		if _, ok := r.got[rec.Offset]; ok {
			r.dups++
		}
		tags, _ := protocol.Property(rec.Properties, protocol.PropTags)
		if TagsCode(tags) != rec.TagsCode {
			panic("tags code does not match properties")
		}
		rec.Topic = slices.Clone(rec.Topic)
		rec.Properties = slices.Clone(rec.Properties)
		r.got[rec.Offset] = rec
	}
	return nil
}

func (r *recorder) Sync() error { return nil }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestListeners(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	good := &recorder{got: map[int64]Record{}}
	flaky := &recorder{got: map[int64]Record{}, fail: true}
	s := openStore(t, fs, l, func(o *Options) { o.Listeners = []Listener{good, flaky} })
	rng := rand.New(rand.NewPCG(5, 6))
	want := appendRandom(t, l, rng, 500, 4, 2)
	waitDispatched(t, s, l.WrittenOffset())
	// Listeners are fed after the entries are visible: poll for them.
	if err := poll.Until(context.Background(), 10*time.Second, time.Millisecond, func() bool { return good.count() == 500 }); err != nil {
		t.Fatalf("good listener has %d records", good.count())
	}
	// The queues did not wait for the failing listener.
	checkAgainstLog(t, s, l)
	flaky.mu.Lock()
	flaky.fail = false
	flaky.mu.Unlock()
	if poll.Until(context.Background(), 10*time.Second, time.Millisecond, func() bool { return flaky.count() >= 500 }) != nil {
		t.Fatalf("flaky listener caught up to %d records", flaky.count())
	}
	for k, rs := range want {
		for _, r := range rs {
			for _, rec := range []Record{good.got[r.Offset], flaky.got[r.Offset]} {
				if string(rec.Topic) != k.topic || rec.QueueID != k.queue || rec.QueueOffset != r.QueueOffset ||
					rec.Size != r.Size || rec.StoreTimestamp != r.StoreTimestamp {
					t.Fatalf("%v: record %+v, appended %+v", k, rec, r)
				}
			}
		}
	}
	if good.dups != 0 || flaky.dups != 0 {
		t.Fatalf("duplicates without a restart: %d %d", good.dups, flaky.dups)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// stuck is a listener whose Dispatch blocks until release is closed.
type stuck struct {
	entered chan struct{} // closed at the first call
	release chan struct{}
	once    sync.Once
	n       atomic.Int64
}

func (l *stuck) Dispatch(batch []Record) error {
	l.once.Do(func() { close(l.entered) })
	<-l.release
	l.n.Add(int64(len(batch)))
	return nil
}

func (l *stuck) Sync() error { return nil }

// TestSlowListenerDoesNotHoldQueues: while a listener is stuck in Dispatch
// (as a pebble commit can be, waiting on its write-ahead log), later
// records still reach the queues and wake their waiters; the listener
// catches up once it returns, and Close waits for it.
func TestSlowListenerDoesNotHoldQueues(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	lis := &stuck{entered: make(chan struct{}), release: make(chan struct{})}
	s := openStore(t, fs, l, func(o *Options) { o.Listeners = []Listener{lis} })
	mustAppend(t, l, testMsg("S", 0, "first", ""))
	select {
	case <-lis.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("listener never called")
	}
	wake := s.Notify("S", 0)
	mustAppend(t, l, testMsg("S", 0, "second", ""), testMsg("S", 1, "third", ""))
	waitDispatched(t, s, l.WrittenOffset())
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken while the listener was stuck")
	}
	if got := s.MaxOffset("S", 0); got != 2 {
		t.Fatalf("queue S/0 holds %d entries, want 2", got)
	}
	close(lis.release)
	if err := poll.Until(context.Background(), 10*time.Second, time.Millisecond, func() bool { return lis.n.Load() == 3 }); err != nil {
		t.Fatalf("listener has %d records, want 3", lis.n.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteTopicAndTrim(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, nil)
	defer l.Close()
	s := openStore(t, fs, l, func(o *Options) { o.EntriesPerFile = 5 })
	for i := 0; i < 23; i++ {
		mustAppend(t, l, testMsg("A", 0, "a", ""), testMsg("Z", 1, "z", ""))
	}
	waitDispatched(t, s, l.WrittenOffset())
	if err := s.DeleteTopic("Z"); err != nil {
		t.Fatal(err)
	}
	if got := s.Topics(); !slices.Equal(got, []string{"A"}) {
		t.Fatalf("topics %v", got)
	}
	if _, err := fs.Stat("cq/Z"); err == nil {
		t.Fatal("topic directory still there")
	}
	if s.MaxOffset("Z", 1) != 0 {
		t.Fatal("deleted queue has entries")
	}
	// Entries 0..9 (files 0 and 1) point below the offset of entry 10.
	es, err := s.Get("A", 0, 10, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.TrimBefore(es[0].Offset)
	if err != nil || n != 2 {
		t.Fatalf("trimmed %d files, %v", n, err)
	}
	if _, err := s.Get("A", 0, 9, 1, nil); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Get below the trimmed files: %v", err)
	}
	if es, err := s.Get("A", 0, 10, 100, nil); err != nil || len(es) != 13 {
		t.Fatalf("after trim: %d entries, %v", len(es), err)
	}
	// The file holding the last entry stays even when all is expired.
	if n, _ := s.TrimBefore(l.WrittenOffset()); n != 2 {
		t.Fatalf("trimmed %d files", n)
	}
	if s.MaxOffset("A", 0) != 23 {
		t.Fatal("max offset lost")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, fs, l, func(o *Options) { o.EntriesPerFile = 5 })
	defer s.Close()
	if s.MaxOffset("A", 0) != 23 || s.MaxOffset("Z", 1) != 0 {
		t.Fatalf("after reopen: A/0 %d, Z/1 %d", s.MaxOffset("A", 0), s.MaxOffset("Z", 1))
	}
	mustAppend(t, l, testMsg("Z", 1, "z", ""))
	waitDispatched(t, s, l.WrittenOffset())
	if s.MaxOffset("Z", 1) != 24 {
		t.Fatalf("Z/1 continues at %d", s.MaxOffset("Z", 1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitDispatched(ctx, l.WrittenOffset()+1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitDispatched past the end: %v", err)
	}
}

// TestTruncateBeyondLog opens an index against a log that lost its tail.
func TestTruncateBeyondLog(t *testing.T) {
	fs := vfs.NewMem()
	long := openLog(t, fs, func(o *commitlog.Options) { o.Dir = "long" })
	short := openLog(t, fs, func(o *commitlog.Options) { o.Dir = "short" })
	defer long.Close()
	defer short.Close()
	s := openStore(t, fs, long, func(o *Options) { o.EntriesPerFile = 4 })
	for i := 0; i < 10; i++ {
		m := testMsg("A", 0, fmt.Sprint(i), "")
		mustAppend(t, long, m)
		if i < 6 {
			mustAppend(t, short, m)
		}
	}
	// B's records are all past the short log's end, and its first file
	// is lost too (as a crash can lose an unsynced directory entry).
	for i := 0; i < 6; i++ {
		mustAppend(t, long, testMsg("B", 0, fmt.Sprint(i), ""))
	}
	waitDispatched(t, s, long.WrittenOffset())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove("cq/B/0/" + fileName(0)); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, fs, short, func(o *Options) { o.EntriesPerFile = 4 })
	defer s.Close()
	if got := s.MaxOffset("A", 0); got != 6 {
		t.Fatalf("max %d after the log lost entries 6..9", got)
	}
	if got := s.MaxOffset("B", 0); got != 0 || len(s.Topics()) != 1 {
		t.Fatalf("B/0 max %d, topics %v, after the log lost all of B", got, s.Topics())
	}
	mustAppend(t, short, testMsg("A", 0, "new", ""))
	waitDispatched(t, s, short.WrittenOffset())
	checkAgainstLog(t, s, short)
	if names, _ := fs.List("cq/A/0"); len(names) != 2 {
		t.Fatalf("files %v", names)
	}
}
