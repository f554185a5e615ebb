package broker

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// eosStores are the stores the exactly-once types work on, on an
// in-memory FS.
type eosStores struct {
	fs     vfs.FS
	clog   *commitlog.Log
	meta   *metaStore
	topics *topicTable
}

func openEOSStores(t *testing.T, fs vfs.FS) *eosStores {
	t.Helper()
	clog, err := commitlog.Open(commitlog.Options{FS: fs, Dir: "commitlog", SegmentSize: 1 << 20, MaxMessageSize: 64 << 10,
		NoPreallocate: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := openMeta(fs, "meta", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	topics, err := loadTopics(meta, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := meta.close(); err != nil {
			t.Error(err)
		}
		if err := clog.Close(); err != nil {
			t.Error(err)
		}
	})
	return &eosStores{fs: fs, clog: clog, meta: meta, topics: topics}
}

var testStoreHost = netip.MustParseAddrPort("127.0.0.1:10911")

// dedupWindows builds dedup windows over the stores, topic "d" with a
// window of window.
func (st *eosStores) dedupWindows(t *testing.T, window time.Duration) *dedupWindows {
	t.Helper()
	st.topics.applyPut(TopicConfig{TopicName: "d", ReadQueueNums: 1, WriteQueueNums: 1,
		Perm: protocol.PermRead | protocol.PermWrite, DedupWindowMs: window.Milliseconds()})
	s := &dedupWindows{topics: st.topics, meta: st.meta, clog: st.clog, metrics: newMetrics(nil), log: zerolog.Nop(),
		host: func() netip.AddrPort { return testStoreHost }, snapMu: new(sync.RWMutex), repl: &replication{}}
	if err := s.loadFilter(); err != nil {
		t.Fatal(err)
	}
	return s
}

func dedupMsg(key, body string) commitlog.Message {
	return commitlog.Message{Topic: "d", Body: []byte(body), StoreHost: testStoreHost, BornHost: testStoreHost,
		Properties: protocol.EncodeProperties(map[string]string{protocol.PropUniqKey: key})}
}

// storeOne stores one message through the dedup window and returns where
// it is.
func storeOne(t *testing.T, s *dedupWindows, m commitlog.Message) dedupStored {
	t.Helper()
	w := s.window([]commitlog.Message{m})
	if w <= 0 {
		t.Fatalf("topic %s has no dedup window", m.Topic)
	}
	_, out, err := s.storeResults([]commitlog.Message{m}, w)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestDedupWindowsAnswerRepeatWithFirst(t *testing.T) {
	st := openEOSStores(t, vfs.NewMem())
	s := st.dedupWindows(t, time.Hour)
	first := storeOne(t, s, dedupMsg("K", "one"))
	if first.Dup {
		t.Fatal("the first copy is answered as a duplicate")
	}
	end := st.clog.WrittenOffset()
	again := storeOne(t, s, dedupMsg("K", "two"))
	if !again.Dup || again.CommitlogOffset != first.CommitlogOffset || again.QueueOffset != first.QueueOffset {
		t.Fatalf("the repeat is answered %+v, want the first copy's place %+v", again, first)
	}
	if st.clog.WrittenOffset() != end {
		t.Fatal("the repeat was stored")
	}
	if other := storeOne(t, s, dedupMsg("L", "three")); other.Dup || other.QueueOffset != first.QueueOffset+1 {
		t.Fatalf("another key is answered %+v", other)
	}
}

func TestDedupWindowsForgetAfterWindow(t *testing.T) {
	st := openEOSStores(t, vfs.NewMem())
	s := st.dedupWindows(t, time.Millisecond)
	first := storeOne(t, s, dedupMsg("K", "one"))
	stored := time.Now()
	waitFor(t, time.Second, "the window to pass", func() bool { return time.Since(stored) > 3*time.Millisecond })
	if again := storeOne(t, s, dedupMsg("K", "two")); again.Dup || again.CommitlogOffset == first.CommitlogOffset {
		t.Fatalf("a copy after the window is answered %+v", again)
	}
	// The sweep drops the keys whose window ended, from memory too.
	if err := s.sweep(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.memLookup(dedupKey("d", "K")); ok {
		t.Fatal("the sweep kept a key past its window")
	}
}

func TestDedupWindowsJournalReloaded(t *testing.T) {
	fs := vfs.NewMem()
	st := openEOSStores(t, fs)
	s := st.dedupWindows(t, time.Hour)
	first := storeOne(t, s, dedupMsg("K", "one"))
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	// New windows over the same store: the key comes back from the journal.
	s2 := st.dedupWindows(t, time.Hour)
	if err := s2.loadJournal(time.Now()); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s2.find(dedupKey("d", "K"), time.Now().Add(-time.Hour).UnixMilli())
	if err != nil || !ok || got.CommitlogOffset != first.CommitlogOffset {
		t.Fatalf("the reloaded key: %+v %v %v, want offset %d", got, ok, err, first.CommitlogOffset)
	}
	if _, ok, _ := s2.find(dedupKey("d", "nope"), 0); ok {
		t.Fatal("a key never stored is found")
	}
}
