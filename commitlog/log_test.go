package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	testBorn  = netip.MustParseAddrPort("192.0.2.7:51234")
	testStore = netip.MustParseAddrPort("127.0.0.1:10911")
)

func testMsg(topic string, q int32, body string) Message {
	return Message{
		Topic: topic, QueueID: q, Body: []byte(body),
		Properties:    []byte("TAGS\x01TagA\x02KEYS\x01k1\x02UNIQ_KEY\x01ABC\x02"),
		BornTimestamp: 1700000000000, BornHost: testBorn, StoreHost: testStore,
	}
}

func openTest(t testing.TB, fs vfs.FS, mut func(*Options)) *Log {
	t.Helper()
	o := Options{FS: fs, Dir: "log", SegmentSize: 64 << 10, MaxMessageSize: 16 << 10, NoPreallocate: true}
	if mut != nil {
		mut(&o)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, msgs ...Message) []AppendResult {
	t.Helper()
	res, err := l.Append(msgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// allRecords scans the whole log.
func allRecords(t testing.TB, l *Log) []protocol.Record {
	t.Helper()
	var out []protocol.Record
	var buf []byte
	_, err := l.Scan(l.MinOffset(), l.WrittenOffset(), &buf, func(off int64, b []byte) error {
		r, err := protocol.Decode(b)
		if err != nil {
			return err
		}
		r.Body = bytes.Clone(r.Body)
		r.Topic = bytes.Clone(r.Topic)
		r.Properties = bytes.Clone(r.Properties)
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendReadReopen(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, nil)
	res := mustAppend(t, l, testMsg("A", 0, "one"), testMsg("A", 0, "two"), testMsg("B", 3, "three"))
	if res[0].Offset != 0 || res[1].Offset != int64(res[0].Size) || res[2].Offset != res[1].End() {
		t.Fatalf("offsets %+v", res)
	}
	if res[0].QueueOffset != 0 || res[1].QueueOffset != 1 || res[2].QueueOffset != 0 {
		t.Fatalf("queue offsets %+v", res)
	}
	rec, _, err := l.ReadRecord(res[1].Offset, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Body) != "two" || string(rec.Topic) != "A" || rec.QueueOffset != 1 || rec.PhysicalOffset != res[1].Offset {
		t.Fatalf("record %+v", rec)
	}
	if v, _ := rec.Property(protocol.PropTags); v != "TagA" {
		t.Fatalf("tags %q", v)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, fs, nil)
	defer l.Close()
	if l.WrittenOffset() != res[2].End() {
		t.Fatalf("reopened end %d, want %d", l.WrittenOffset(), res[2].End())
	}
	if got := l.NextQueueOffset("A", 0); got != 2 {
		t.Fatalf("next queue offset %d", got)
	}
	res2 := mustAppend(t, l, testMsg("A", 0, "four"))
	if res2[0].QueueOffset != 2 || res2[0].Offset != res[2].End() {
		t.Fatalf("after reopen %+v", res2)
	}
	if n := len(allRecords(t, l)); n != 4 {
		t.Fatalf("%d records", n)
	}
}

func TestSegmentRoll(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, func(o *Options) { o.SegmentSize = 64 << 10 })
	body := bytes.Repeat([]byte("x"), 1000)
	var ends []int64
	for i := 0; i < 200; i++ {
		m := testMsg("T", int32(i%4), string(body))
		res := mustAppend(t, l, m)
		if res[0].Offset/(64<<10) != (res[0].End()-1)/(64<<10) {
			t.Fatalf("record %d spans segments: %+v", i, res[0])
		}
		ends = append(ends, res[0].End())
	}
	recs := allRecords(t, l)
	if len(recs) != 200 {
		t.Fatalf("scanned %d records", len(recs))
	}
	l.Close()
	l = openTest(t, fs, func(o *Options) { o.SegmentSize = 64 << 10 })
	defer l.Close()
	if l.WrittenOffset() != ends[len(ends)-1] {
		t.Fatalf("end %d want %d", l.WrittenOffset(), ends[len(ends)-1])
	}
	if len(allRecords(t, l)) != 200 {
		t.Fatal("records lost on reopen")
	}
}

func TestSyncModeConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, func(o *Options) { o.Flush = FlushSync })
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				res, err := l.Append([]Message{testMsg(fmt.Sprintf("T%d", g), 0, "x")}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if l.FlushedOffset() < res[0].End() {
					t.Error("acknowledged before flushed")
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestValidation(t *testing.T) {
	l := openTest(t, vfs.NewMem(), nil)
	defer l.Close()
	cases := []struct {
		m    Message
		want error
	}{
		{Message{Topic: ""}, ErrTopicInvalid},
		{Message{Topic: string(bytes.Repeat([]byte("t"), 128))}, ErrTopicInvalid},
		{Message{Topic: "t", Body: make([]byte, 16<<10+1)}, ErrMessageTooLarge},
		{Message{Topic: "t", Properties: bytes.Repeat([]byte("k\x01v\x02"), 9000)}, ErrPropertiesTooLarge},
	}
	for _, c := range cases {
		if _, err := l.Append([]Message{testMsg("ok", 0, "fine"), c.m}, nil); !errors.Is(err, c.want) {
			t.Errorf("got %v, want %v", err, c.want)
		}
	}
	if l.WrittenOffset() != 0 {
		t.Fatal("a rejected batch wrote something")
	}
}

func TestLockFile(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Options{Dir: dir, SegmentSize: 1 << 20, MaxMessageSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Open(Options{Dir: dir, SegmentSize: 1 << 20, MaxMessageSize: 1024}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestStoreTimestampMonotonic(t *testing.T) {
	now := time.UnixMilli(5000)
	l := openTest(t, vfs.NewMem(), func(o *Options) { o.Now = func() time.Time { return now } })
	defer l.Close()
	a := mustAppend(t, l, testMsg("A", 0, "a"))
	now = time.UnixMilli(1000) // the clock steps back
	b := mustAppend(t, l, testMsg("A", 0, "b"))
	if b[0].StoreTimestamp < a[0].StoreTimestamp {
		t.Fatalf("store time went back: %d then %d", a[0].StoreTimestamp, b[0].StoreTimestamp)
	}
}
