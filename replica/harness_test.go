package replica

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
)

// The test harness of the replica package: logs on in-memory file systems,
// a master over a log, a listener and a receiver, and comparisons of the
// segment files of two logs.

func openLogOn(t testing.TB, fs vfs.FS) *commitlog.Log {
	t.Helper()
	l, err := commitlog.Open(commitlog.Options{FS: fs, Dir: "cl", SegmentSize: testSegment, MaxMessageSize: 4096, NoPreallocate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// logMaster is a master whose history is its log's.
type logMaster struct {
	epoch atomic.Int64
	log   *commitlog.Log
}

func (m *logMaster) Epoch() int64 { return m.epoch.Load() }
func (m *logMaster) History() History {
	h, err := m.log.Epochs()
	if err != nil {
		panic(err)
	}
	return toHistory(h)
}

// newMaster opens a master log in a fresh file system, in epoch.
func newMaster(t testing.TB, epoch int64) (*commitlog.Log, *logMaster, vfs.FS) {
	t.Helper()
	fs := vfs.NewMem()
	l := openLogOn(t, fs)
	m := &logMaster{log: l}
	m.epoch.Store(epoch)
	if err := l.StartEpoch(epoch, l.WrittenOffset()); err != nil {
		t.Fatal(err)
	}
	return l, m, fs
}

// listen serves Sender streams on 127.0.0.1 until the test ends.
func listen(t testing.TB, cfg SenderConfig, l Log, m Master) string {
	t.Helper()
	cfg.Cluster, cfg.BrokerName = "c", "g"
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = testSegment
	}
	snd, err := NewSender(cfg, l, m)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { _ = snd.Serve(ctx, conn) })
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// receive starts a receiver into l from addr in epoch (read on every
// connection).
func receive(t testing.TB, l SlaveLog, addr string, epoch *atomic.Int64, mut func(*ReceiverConfig)) *Receiver {
	t.Helper()
	cfg := ReceiverConfig{
		Cluster: "c", BrokerName: "g", ReplicaID: 2,
		Master:      func() (string, int64) { return addr, epoch.Load() },
		AckInterval: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
	if mut != nil {
		mut(&cfg)
	}
	r, err := StartReceiver(context.Background(), cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 20*time.Second, what, cond)
}

func eventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// segmentFiles reads every segment file of a log whole.
func segmentFiles(t testing.TB, fs vfs.FS, l *commitlog.Log) map[int64][]byte {
	t.Helper()
	out := map[int64][]byte{}
	for _, s := range l.Segments() {
		f, err := fs.Open(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[s.Base] = b
	}
	return out
}

// sameFiles requires the two logs' segment files to be equal byte for
// byte, and their ends and queue offsets to match.
func sameFiles(t testing.TB, mfs vfs.FS, m *commitlog.Log, sfs vfs.FS, s *commitlog.Log) {
	t.Helper()
	if m.WrittenOffset() != s.WrittenOffset() {
		t.Fatalf("master ends at %d, slave at %d", m.WrittenOffset(), s.WrittenOffset())
	}
	mf, sf := segmentFiles(t, mfs, m), segmentFiles(t, sfs, s)
	if len(mf) != len(sf) {
		t.Fatalf("master has %d segments, slave %d", len(mf), len(sf))
	}
	for base, b := range mf {
		if !bytes.Equal(b, sf[base]) {
			t.Fatalf("segment %d differs (%d and %d bytes)", base, len(b), len(sf[base]))
		}
	}
	mq, sq := m.QueueOffsets(), s.QueueOffsets()
	for topic, qs := range mq {
		for q, n := range qs {
			if sq[topic][q] != n {
				t.Fatalf("%s/%d: next queue offset %d on the master, %d on the slave", topic, q, n, sq[topic][q])
			}
		}
	}
}

// appendRandom appends n messages of random sizes to random queues.
func appendRandom(t testing.TB, l *commitlog.Log, rng *rand.Rand, n int) {
	t.Helper()
	for range n {
		body := make([]byte, 50+rng.IntN(3000))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		topic := []string{"a", "b", "c"}[rng.IntN(3)]
		if _, err := l.Append([]commitlog.Message{{Topic: topic, QueueID: int32(rng.IntN(4)), Body: body}}, nil); err != nil {
			t.Error(err)
			return
		}
	}
}

// keepAppending appends random records to ml on a goroutine of its own
// until the returned function is called, which waits for it to stop.
func keepAppending(t *testing.T, ml *commitlog.Log, rng *rand.Rand) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			appendRandom(t, ml, rng, 3)
			runtimeYield()
		}
	})
	return func() { close(done); wg.Wait() }
}
