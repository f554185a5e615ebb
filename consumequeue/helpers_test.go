package consumequeue

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	testBorn  = netip.MustParseAddrPort("192.0.2.7:51234")
	testStore = netip.MustParseAddrPort("127.0.0.1:10911")
)

func testMsg(topic string, q int32, body string, tag string) commitlog.Message {
	props := "KEYS\x01k1\x02UNIQ_KEY\x01ABC\x02"
	if tag != "" {
		props = "TAGS\x01" + tag + "\x02" + props
	}
	return commitlog.Message{
		Topic: topic, QueueID: q, Body: []byte(body), Properties: []byte(props),
		BornTimestamp: 1700000000000, BornHost: testBorn, StoreHost: testStore,
	}
}

func openLog(t testing.TB, fs vfs.FS, mut func(*commitlog.Options)) *commitlog.Log {
	t.Helper()
	o := commitlog.Options{FS: fs, Dir: "log", SegmentSize: 64 << 10, MaxMessageSize: 16 << 10, NoPreallocate: true}
	if mut != nil {
		mut(&o)
	}
	l, err := commitlog.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func openStore(t testing.TB, fs vfs.FS, src Source, mut func(*Options)) *Store {
	t.Helper()
	o := Options{FS: fs, Dir: "cq", Source: src, EntriesPerFile: 10, FlushInterval: 10 * time.Millisecond}
	if mut != nil {
		mut(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAppend(t testing.TB, l *commitlog.Log, msgs ...commitlog.Message) []commitlog.AppendResult {
	t.Helper()
	res, err := l.Append(msgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func waitDispatched(t testing.TB, s *Store, off int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitDispatched(ctx, off); err != nil {
		t.Fatalf("waiting for offset %d (at %d): %v", off, s.DispatchedOffset(), err)
	}
}

type qk = queueKey

// snapshot returns every entry of every queue, from the first kept one.
func snapshot(t testing.TB, s *Store) map[qk][]Entry {
	t.Helper()
	out := map[qk][]Entry{}
	for _, topic := range s.Topics() {
		for _, id := range s.Queues(topic) {
			lo, err := s.MinOffset(topic, id)
			if err != nil {
				t.Fatal(err)
			}
			hi := s.MaxOffset(topic, id)
			es, err := s.Get(topic, id, lo, int(hi-lo), nil)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(es)) != hi-lo {
				t.Fatalf("%s/%d: got %d entries of [%d, %d)", topic, id, len(es), lo, hi)
			}
			out[qk{topic, id}] = es
		}
	}
	return out
}

// checkAgainstLog checks that every entry of every queue points at a whole
// record of its own topic, queue and queue offset, below the log's end, and
// that queue offsets match the log's next queue offsets.
func checkAgainstLog(t testing.TB, s *Store, l *commitlog.Log) {
	t.Helper()
	next := l.QueueOffsets()
	for k, es := range snapshot(t, s) {
		for _, e := range es {
			if e.Offset+int64(e.Size) > l.WrittenOffset() {
				t.Fatalf("%v entry %d points past the log end %d: %+v", k, e.QueueOffset, l.WrittenOffset(), e)
			}
			rec, _, err := l.ReadRecord(e.Offset, nil)
			if err != nil {
				t.Fatalf("%v entry %+v: %v", k, e, err)
			}
			if string(rec.Topic) != k.topic || rec.QueueID != k.queue || rec.QueueOffset != e.QueueOffset || rec.Size != e.Size {
				t.Fatalf("%v entry %+v points at %s/%d #%d size %d", k, e, rec.Topic, rec.QueueID, rec.QueueOffset, rec.Size)
			}
			tag, _ := rec.Property(protocol.PropTags)
			if e.TagsCode != TagsCode(tag) {
				t.Fatalf("%v entry %+v: tags code, want %d", k, e, TagsCode(tag))
			}
		}
		if got, want := s.MaxOffset(k.topic, k.queue), next[k.topic][k.queue]; got != want {
			var buf []byte
			var seen []string
			l.Scan(l.MinOffset(), l.WrittenOffset(), &buf, func(off int64, b []byte) error {
				r, _ := protocol.Decode(b)
				if string(r.Topic) == k.topic && r.QueueID == k.queue {
					seen = append(seen, fmt.Sprintf("#%d@%d", r.QueueOffset, off))
				}
				return nil
			})
			t.Fatalf("%v: max offset %d, log's next queue offset %d; log end %d, records %v", k, got, want, l.WrittenOffset(), seen)
		}
	}
	for topic, qs := range next {
		for id, n := range qs {
			if got := s.MaxOffset(topic, id); got != n {
				t.Fatalf("%s/%d: max offset %d, the log has %d", topic, id, got, n)
			}
		}
	}
}

func topicName(i int) string { return fmt.Sprintf("T%03d", i) }
