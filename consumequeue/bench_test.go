package consumequeue

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
)

// BenchmarkDispatch measures the dispatcher: a log of b.N 1 KiB records
// spread round-robin over topics × 8 queues is written first (untimed) on
// the real filesystem, after one warm-up record per queue has been
// dispatched; the timed part opens a store over it, which dispatches every
// record before Open returns, and closes it (writing and syncing every
// dirty queue file: one fsync per queue).
func BenchmarkDispatch(b *testing.B) {
	for _, topics := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("topics=%d", topics), func(b *testing.B) {
			dir := b.TempDir()
			fs := vfs.Default
			l, err := commitlog.Open(commitlog.Options{FS: fs, Dir: fs.PathJoin(dir, "log"), SegmentSize: 256 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			body := bytes.Repeat([]byte("x"), 1024)
			names := make([]string, topics)
			for i := range names {
				names[i] = fmt.Sprintf("BenchTopic%04d", i)
			}
			batch := make([]commitlog.Message, 0, 256)
			var res []commitlog.AppendResult
			// Warm up: one record per queue, dispatched, so the timed part
			// measures steady-state dispatch, not creating thousands of
			// files and directories.
			for i := 0; i < topics*8; i++ {
				batch = append(batch, testMsg(names[i%topics], int32(i/topics%8), "", "TagA"))
				if len(batch) == cap(batch) || i == topics*8-1 {
					if res, err = l.Append(batch, res); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			warm, err := Open(Options{FS: fs, Dir: fs.PathJoin(dir, "cq"), Source: l})
			if err != nil {
				b.Fatal(err)
			}
			if err := warm.Close(); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				m := testMsg(names[i%topics], int32(i/topics%8), "", "TagA")
				m.Body = body
				batch = append(batch, m)
				if len(batch) == cap(batch) || i == b.N-1 {
					if res, err = l.Append(batch, res); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if err := l.Sync(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(res[0].Size))
			b.ResetTimer()
			start := time.Now()
			s, err := Open(Options{FS: fs, Dir: fs.PathJoin(dir, "cq"), Source: l})
			if err != nil {
				b.Fatal(err)
			}
			if s.DispatchedOffset() != l.WrittenOffset() {
				b.Fatalf("dispatched %d of %d", s.DispatchedOffset(), l.WrittenOffset())
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
