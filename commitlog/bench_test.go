package commitlog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/protocol"
)

// Benchmarks run on a real directory: b.TempDir(), or a fresh directory
// under FERRY_BENCH_DIR (to put them on the disk being measured).
//
//	go test -run '^$' -bench 'BenchmarkAppend/topics=64/flush=sync/appenders=16' ./commitlog/
//	FERRY_BENCH_RECOVERY_BYTES=$((10<<30)) go test -run '^$' -bench BenchmarkRecovery -benchtime 3x ./commitlog/

func benchDir(b *testing.B) string {
	root := os.Getenv("FERRY_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "ferry-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func envBytes(b *testing.B, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive byte count", name, s)
	}
	return n
}

const benchSegment = 128 << 20

// benchMessages returns one 1 KiB message per (topic, queue), 8 queues a
// topic, with realistic properties.
func benchMessages(topics int) []Message {
	body := make([]byte, 1024)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	var msgs []Message
	for tp := range topics {
		for q := range int32(8) {
			msgs = append(msgs, Message{
				Topic: fmt.Sprintf("BenchTopic-%04d", tp), QueueID: q, Body: body,
				Properties:    []byte("UNIQ_KEY\x017F0000010001000000001A2B3C4D5E\x02TAGS\x01TagA\x02KEYS\x01order-42\x02WAIT\x01true\x02"),
				BornTimestamp: 1700000000000, BornHost: testBorn, StoreHost: testStore,
			})
		}
	}
	return msgs
}

// BenchmarkAppend: b.N single-message appends of 1 KiB bodies spread over
// the appender goroutines, timed up to and including the final Sync.
// reader=dispatch adds a goroutine that follows the log as the consume
// queue dispatcher does (Watch, Scan from its last position, Decode).
func BenchmarkAppend(b *testing.B) {
	for _, topics := range []int{1, 64, 1024} {
		for _, mode := range []FlushMode{FlushAsync, FlushSync} {
			for _, appenders := range []int{1, 16, 64} {
				for _, reader := range []string{"none", "dispatch"} {
					name := fmt.Sprintf("topics=%d/flush=%v/appenders=%d/reader=%s", topics, mode, appenders, reader)
					b.Run(name, func(b *testing.B) {
						benchAppend(b, topics, mode, appenders, reader == "dispatch")
					})
				}
			}
		}
	}
}

func benchAppend(b *testing.B, topics int, mode FlushMode, appenders int, dispatch bool) {
	msgs := benchMessages(topics)
	l, err := Open(Options{Dir: benchDir(b), SegmentSize: benchSegment, Flush: mode})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()

	var dispatched atomic.Int64
	stopReader := make(chan struct{})
	var readerDone sync.WaitGroup
	if dispatch {
		ch, unwatch := l.Watch()
		readerDone.Go(func() {
			defer unwatch()
			var buf []byte
			var pos int64
			var tagHash uint64
			follow := func() {
				next, err := l.Scan(pos, l.VisibleOffset(), &buf, func(off int64, rec []byte) error {
					r, err := protocol.Decode(rec)
					if err != nil {
						return err
					}
					if v, ok := r.Property(protocol.PropTags); ok {
						tagHash += uint64(len(v)) // stand-in for the tag hash
					}
					dispatched.Add(1)
					return nil
				})
				if err != nil {
					b.Error(err)
				}
				pos = next
			}
			for {
				select {
				case <-ch:
					follow()
				case <-stopReader:
					follow()
					_ = tagHash
					return
				}
			}
		})
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(1024)
	b.ResetTimer()
	for range appenders {
		wg.Go(func() {
			res := make([]AppendResult, 0, 1)
			batch := make([]Message, 1)
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				batch[0] = msgs[int(n)%len(msgs)]
				var err error
				if res, err = l.Append(batch, res); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	if dispatch {
		close(stopReader)
		readerDone.Wait()
		if got := dispatched.Load(); got != int64(b.N) {
			b.Fatalf("dispatched %d of %d", got, b.N)
		}
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(l.WrittenOffset())/(1<<20)/secs, "MiB/s")
	b.ReportMetric(float64(b.N)/secs, "msgs/s")
}

// BenchmarkRecovery measures Open after an unclean stop: a log of
// FERRY_BENCH_RECOVERY_BYTES (default 256 MiB) whose checkpoint is current
// except for FERRY_BENCH_RECOVERY_TAIL bytes (default 16 MiB) appended
// after it; checkpoint=none removes the checkpoint (a scan of everything).
func BenchmarkRecovery(b *testing.B) {
	total := envBytes(b, "FERRY_BENCH_RECOVERY_BYTES", 256<<20)
	tail := min(envBytes(b, "FERRY_BENCH_RECOVERY_TAIL", 16<<20), total)
	dir := benchDir(b)
	opts := Options{Dir: dir, SegmentSize: DefaultSegmentSize, NoPreallocate: true}
	msgs := benchMessages(64)
	fill := func(l *Log, upTo int64) {
		batch := make([]Message, 64)
		var res []AppendResult
		for i := 0; l.WrittenOffset() < upTo; i++ {
			for j := range batch {
				batch[j] = msgs[(i*len(batch)+j)%len(msgs)]
			}
			var err error
			if res, err = l.Append(batch, res); err != nil {
				b.Fatal(err)
			}
		}
	}
	l, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	fill(l, total-tail)
	if err := l.Close(); err != nil { // checkpoint at total-tail
		b.Fatal(err)
	}
	slow := opts
	slow.CheckpointInterval = 1 << 40
	if l, err = Open(slow); err != nil {
		b.Fatal(err)
	}
	fill(l, total)
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	end := l.WrittenOffset()
	l.abandon() // no checkpoint for the tail: it must be scanned
	ckptPath := vfs.Default.PathJoin(dir, checkpointName)
	ckpt, err := os.ReadFile(ckptPath)
	if err != nil {
		b.Fatal(err)
	}

	for _, c := range []string{"current", "none"} {
		b.Run("checkpoint="+c, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if c == "current" {
					if err := WriteFileAtomic(vfs.Default, dir, checkpointName, ckpt); err != nil {
						b.Fatal(err)
					}
				} else if err := os.Remove(ckptPath); err != nil && !os.IsNotExist(err) {
					b.Fatal(err)
				}
				b.StartTimer()
				l, err := Open(opts)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if l.WrittenOffset() != end {
					b.Fatalf("recovered to %d, want %d", l.WrittenOffset(), end)
				}
				l.abandon()
				b.ReportMetric(float64(end)/(1<<20), "log-MiB")
				b.StartTimer()
			}
		})
	}
}

// BenchmarkEncode: the per-message work Append does outside the lock
// (size, encode) and under it (seal), into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	m := benchMessages(1)[0]
	var buf []byte
	b.SetBytes(1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		size, err := m.EncodedSize(DefaultMaxMessageSize)
		if err != nil {
			b.Fatal(err)
		}
		buf = appendRecord(buf[:0], &m, size)
		protocol.SealRecord(buf, int64(i), int64(i)*int64(size), 1700000000000)
	}
}
