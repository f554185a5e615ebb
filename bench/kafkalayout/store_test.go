package kafkalayout

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	born  = netip.MustParseAddrPort("192.0.2.7:51234")
	store = netip.MustParseAddrPort("127.0.0.1:10911")
)

func msg(topic string, q int32, body string) commitlog.Message {
	return commitlog.Message{
		Topic: topic, QueueID: q, Body: []byte(body),
		Properties:    []byte("TAGS\x01TagA\x02KEYS\x01k1"),
		BornTimestamp: 1700000000000, BornHost: born, StoreHost: store,
	}
}

func openStore(t testing.TB, fs vfs.FS, mut func(*Options)) *Store {
	t.Helper()
	o := Options{FS: fs, Dir: "kl", SegmentSize: 40 << 10, IndexInterval: 512, MaxMessageSize: 4 << 10}
	if mut != nil {
		mut(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readAll reads every visible record of a partition, checking each.
func readAll(t testing.TB, s *Store, topic string, part int32, from int64) []protocol.Record {
	t.Helper()
	var out []protocol.Record
	off := from
	for {
		b, n, err := s.Read(topic, part, off, 7, 4<<10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
		for i := 0; i < n; i++ {
			r, err := protocol.Decode(b)
			if err != nil {
				t.Fatalf("%s-%d offset %d: %v", topic, part, off, err)
			}
			if r.QueueOffset != off || string(r.Topic) != topic || r.QueueID != part {
				t.Fatalf("%s-%d: record %+v at offset %d", topic, part, r, off)
			}
			r.Body = bytes.Clone(r.Body)
			out = append(out, r)
			b = b[r.Size:]
			off++
		}
		if len(b) != 0 {
			t.Fatalf("%d stray bytes after %d records", len(b), n)
		}
	}
}

// TestRecordsMatchCommitlog checks that the baseline stores the very bytes
// Ferry's commitlog stores for the same message and assigned fields.
func TestRecordsMatchCommitlog(t *testing.T) {
	v6 := netip.MustParseAddrPort("[2001:db8::1]:9876")
	mapped := netip.MustParseAddrPort("[::ffff:10.0.0.1]:1")
	msgs := []commitlog.Message{
		msg("A", 0, "plain"),
		{Topic: "B", QueueID: 3, Body: []byte("no props"), BornHost: v6, StoreHost: store, Flag: 7, ReconsumeTimes: 2, PreparedTransactionOffset: 99},
		{Topic: "C", QueueID: 1, Body: nil, Properties: []byte("K\x01V\x02"), BornHost: born, StoreHost: v6, SysFlag: protocol.SysFlagCompressed},
		{Topic: "D", Body: []byte("old crc"), Properties: []byte("A\x01b\x02__CRC32#\x010000000001\x02Z\x01y"), BornHost: mapped},
		{Topic: "E", Body: bytes.Repeat([]byte{0xfe}, 3000), Properties: []byte("__CRC32#\x010000000001")},
	}
	l, err := commitlog.Open(commitlog.Options{FS: vfs.NewMem(), Dir: "cl", SegmentSize: 1 << 20, MaxMessageSize: 8 << 10, NoPreallocate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.Append(msgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		want, err := l.Read(res[i].Offset, res[i].Size, nil)
		if err != nil {
			t.Fatal(err)
		}
		size, err := msgs[i].EncodedSize(0)
		if err != nil {
			t.Fatal(err)
		}
		got := appendRecord(nil, &msgs[i], size)
		sealRecord(got, res[i].QueueOffset, res[i].Offset, res[i].StoreTimestamp)
		if !bytes.Equal(got, want) {
			t.Errorf("message %d: records differ\n got %q\nwant %q", i, got, want)
		}
	}
}

func TestRoundTripRollReopen(t *testing.T) {
	fs := vfs.NewMem()
	s := openStore(t, fs, nil)
	const parts = 3
	var want [parts][]string
	for i := 0; i < 300; i++ {
		part := int32(i % parts)
		batch := make([]commitlog.Message, 1+i%5)
		for j := range batch {
			body := fmt.Sprintf("m%d.%d-%s", i, j, bytes.Repeat([]byte("x"), 200+i%700))
			batch[j] = msg("orders", part, body)
			want[part] = append(want[part], body)
		}
		res, err := s.Append(batch, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res[len(res)-1].QueueOffset != int64(len(want[part])-1) {
			t.Fatalf("queue offset %d, want %d", res[len(res)-1].QueueOffset, len(want[part])-1)
		}
	}
	check := func(s *Store) {
		t.Helper()
		for p := int32(0); p < parts; p++ {
			recs := readAll(t, s, "orders", p, 0)
			if len(recs) != len(want[p]) {
				t.Fatalf("partition %d: %d records, want %d", p, len(recs), len(want[p]))
			}
			for i, r := range recs {
				if string(r.Body) != want[p][i] {
					t.Fatalf("partition %d record %d: %q", p, i, r.Body)
				}
			}
			// A read from the middle starts exactly there.
			mid := int64(len(want[p]) / 2)
			if got := readAll(t, s, "orders", p, mid); string(got[0].Body) != want[p][mid] {
				t.Fatalf("read from %d returned %q", mid, got[0].Body)
			}
		}
	}
	check(s)
	if n := len(*s.parts[partKey{"orders", 0}].segs.Load()); n < 3 {
		t.Fatalf("only %d segments: the test should roll", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append([]commitlog.Message{msg("orders", 0, "late")}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	s = openStore(t, fs, nil)
	defer s.Close()
	if s.Partitions() != parts {
		t.Fatalf("%d partitions after reopen", s.Partitions())
	}
	check(s)
	res, err := s.Append([]commitlog.Message{msg("orders", 1, "after reopen")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].QueueOffset != int64(len(want[1])) {
		t.Fatalf("offset after reopen %d, want %d", res[0].QueueOffset, len(want[1]))
	}
}

func TestValidationRejectsBatch(t *testing.T) {
	s := openStore(t, vfs.NewMem(), nil)
	defer s.Close()
	big := msg("t", 0, string(make([]byte, 5<<10)))
	if _, err := s.Append([]commitlog.Message{msg("t", 0, "ok"), big}, nil); !errors.Is(err, commitlog.ErrMessageTooLarge) {
		t.Fatalf("got %v", err)
	}
	if s.Partitions() != 0 {
		t.Fatal("a rejected batch created a partition")
	}
	if _, err := s.Append([]commitlog.Message{msg("a/b", 0, "x")}, nil); err == nil {
		t.Fatal("a topic with a slash was accepted")
	}
}

// TestCrashSync appends concurrently in sync mode, takes crash images of
// the file system (only synced bytes, plus a random share of unsynced ones)
// and checks that every acknowledged record survives and recovery cuts any
// torn tail.
func TestCrashSync(t *testing.T) {
	for _, unsynced := range []int{0, 50, 100} {
		t.Run(fmt.Sprintf("unsynced%d", unsynced), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			s := openStore(t, fs, func(o *Options) { o.Flush = commitlog.FlushSync })
			var mu sync.Mutex
			acked := map[partKey]int64{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for g := 0; g < 6; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 1))
					for {
						select {
						case <-stop:
							return
						default:
						}
						k := partKey{fmt.Sprintf("t%d", rng.IntN(3)), int32(rng.IntN(4))}
						batch := make([]commitlog.Message, 1+rng.IntN(4))
						for i := range batch {
							batch[i] = msg(k.topic, k.id, string(bytes.Repeat([]byte{byte('a' + g)}, 100+rng.IntN(900))))
						}
						res, err := s.Append(batch, nil)
						if errors.Is(err, ErrClosed) {
							return
						}
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						acked[k] = max(acked[k], res[len(res)-1].QueueOffset+1)
						mu.Unlock()
					}
				}()
			}
			rng := rand.New(rand.NewPCG(uint64(unsynced), 2))
			for round := 0; round < 5; round++ {
				waitForAcks(t, &mu, acked, 40*(round+1))
				mu.Lock()
				snap := make(map[partKey]int64, len(acked))
				for k, v := range acked {
					snap[k] = v
				}
				mu.Unlock()
				crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rng})
				r := openStore(t, crashed, nil)
				for k, n := range snap {
					recs := readAll(t, r, k.topic, k.id, 0)
					if int64(len(recs)) < n {
						t.Fatalf("round %d: %s-%d has %d records after the crash, %d were acknowledged", round, k.topic, k.id, len(recs), n)
					}
				}
				// The recovered store takes appends where it left off.
				for k := range snap {
					next := r.Visible(k.topic, k.id)
					res, err := r.Append([]commitlog.Message{msg(k.topic, k.id, "after crash")}, nil)
					if err != nil || res[0].QueueOffset != next {
						t.Fatalf("append after recovery: %+v, %v (want offset %d)", res, err, next)
					}
					break
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitForAcks polls, with a deadline, until at least n records are
// acknowledged in total.
func waitForAcks(t *testing.T, mu *sync.Mutex, acked map[partKey]int64, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		var total int64
		for _, v := range acked {
			total += v
		}
		mu.Unlock()
		if total >= int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d records acknowledged", total)
		}
		runtimeGosched()
	}
}

func TestAsyncSyncIsDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openStore(t, fs, func(o *Options) { o.FlushInterval = time.Hour })
	defer s.Close()
	for i := 0; i < 50; i++ {
		if _, err := s.Append([]commitlog.Message{msg("a", int32(i%2), fmt.Sprint(i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, fs.CrashClone(vfs.CrashCloneCfg{}), nil)
	defer r.Close()
	if n := len(readAll(t, r, "a", 0, 0)) + len(readAll(t, r, "a", 1, 0)); n != 50 {
		t.Fatalf("%d records survived a crash after Sync", n)
	}
}

func TestWatchSignalsAppends(t *testing.T) {
	s := openStore(t, vfs.NewMem(), nil)
	defer s.Close()
	ch, stop := s.Watch()
	defer stop()
	if _, err := s.Append([]commitlog.Message{msg("w", 0, "x")}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no signal after an append")
	}
}
