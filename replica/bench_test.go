package replica

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
)

// envInt64 reads a size from the environment, or def.
func envInt64(b *testing.B, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive number of bytes", name, s)
	}
	return v
}

// BenchmarkCatchUp ships a master's log to a fresh slave on loopback,
// both on the real disk (under TMPDIR), until the slave has acked every
// byte as flushed, and reports the rate in MiB/s. FERRY_CATCHUP_BYTES sets
// the log's size (default 256 MiB), FERRY_CATCHUP_FRAME the largest DATA
// frame (default the sender's, 1 MiB: 4 MiB frames cost half as much CPU
// again here, their buffers no longer stay in cache), FERRY_CATCHUP_SEGMENT the segment size (default
// the commitlog's); FERRY_CATCHUP_WRITTEN=1 times until every byte is
// acked as written, without flushed acks. It also reports the CPU time both sides took per GiB.
// Run with -benchtime=1x for sizes in GiB.
func BenchmarkCatchUp(b *testing.B) {
	size := envInt64(b, "FERRY_CATCHUP_BYTES", 256<<20)
	frame := envInt64(b, "FERRY_CATCHUP_FRAME", DefaultMaxFrame)
	segment := envInt64(b, "FERRY_CATCHUP_SEGMENT", commitlog.DefaultSegmentSize)
	requireFlushed := os.Getenv("FERRY_CATCHUP_WRITTEN") == ""
	dir := b.TempDir()
	opts := func(sub string) commitlog.Options {
		return commitlog.Options{FS: vfs.Default, Dir: filepath.Join(dir, sub), SegmentSize: segment}
	}
	ml, err := commitlog.Open(opts("master"))
	if err != nil {
		b.Fatal(err)
	}
	defer ml.Close()
	m := &logMaster{log: ml}
	m.epoch.Store(1)
	if err := ml.StartEpoch(1, 0); err != nil {
		b.Fatal(err)
	}
	// 1 KiB messages in batches of 256, over 16 queues.
	batch := make([]commitlog.Message, 256)
	for i := range batch {
		body := make([]byte, 1024)
		for j := range body {
			body[j] = byte(i*31 + j)
		}
		batch[i] = commitlog.Message{Topic: "bench", QueueID: int32(i % 16), Body: body}
	}
	var res []commitlog.AppendResult
	filling := time.Now()
	for ml.WrittenOffset() < size {
		if res, err = ml.Append(batch, res); err != nil {
			b.Fatal(err)
		}
	}
	if err := ml.Sync(); err != nil {
		b.Fatal(err)
	}
	end := ml.WrittenOffset()
	// The same bytes appended locally, synced, for comparison.
	b.Logf("master log of %d MiB appended and synced at %.0f MiB/s", end>>20, float64(end)/(1<<20)/time.Since(filling).Seconds())
	addr := listen(b, SenderConfig{MaxFrame: int(frame), SegmentSize: segment}, ml, m)
	b.SetBytes(end)
	b.ResetTimer()
	for i := range b.N {
		sl, err := commitlog.Open(opts("slave" + strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		start, cpu := time.Now(), cpuTime(b)
		r, err := StartReceiver(context.Background(), ReceiverConfig{
			Cluster: "c", BrokerName: "g", ReplicaID: 2, RequireFlushed: requireFlushed,
			Master: func() (string, int64) { return addr, 1 },
		}, sl)
		if err != nil {
			b.Fatal(err)
		}
		eventuallyWithin(b, time.Hour, "the slave to catch up", func() bool {
			st := r.Status()
			return st.Written == end && (st.Flushed == end || !requireFlushed)
		})
		elapsed := time.Since(start)
		b.ReportMetric(float64(end)/(1<<20)/elapsed.Seconds(), "MiB/s")
		b.ReportMetric((cpuTime(b)-cpu).Seconds()/(float64(end)/(1<<30)), "cpu-s/GiB")
		r.Close()
		b.StopTimer()
		sl.Close()
		os.RemoveAll(filepath.Join(dir, "slave"+strconv.Itoa(i)))
		b.StartTimer()
	}
}

// cpuTime is the process's user and system CPU time so far (both sides of
// the stream run in it).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAckRoundTrip is the part replication adds to an acks=all send:
// from the master's append of one 1 KiB message to the slave's ACK of it
// arriving at the master, one message at a time, over loopback, both logs
// on the real disk (under TMPDIR), written-offset acks. It reports the
// median and 99th percentile of the round trip.
func BenchmarkAckRoundTrip(b *testing.B) {
	dir := b.TempDir()
	opts := func(sub string) commitlog.Options {
		return commitlog.Options{FS: vfs.Default, Dir: filepath.Join(dir, sub)}
	}
	ml, err := commitlog.Open(opts("master"))
	if err != nil {
		b.Fatal(err)
	}
	defer ml.Close()
	m := &logMaster{log: ml}
	m.epoch.Store(1)
	if err := ml.StartEpoch(1, 0); err != nil {
		b.Fatal(err)
	}
	acked := make(chan int64, 1024)
	addr := listen(b, SenderConfig{SegmentSize: commitlog.DefaultSegmentSize, OnAck: func(a Ack) { acked <- a.Written }}, ml, m)
	sl, err := commitlog.Open(opts("slave"))
	if err != nil {
		b.Fatal(err)
	}
	defer sl.Close()
	r, err := StartReceiver(context.Background(), ReceiverConfig{
		Cluster: "c", BrokerName: "g", ReplicaID: 2,
		Master: func() (string, int64) { return addr, 1 },
	}, sl)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	eventuallyWithin(b, 10*time.Second, "the slave to connect", func() bool { return r.Status().Connected })
	msg := []commitlog.Message{{Topic: "bench", Body: make([]byte, 1024)}}
	var res []commitlog.AppendResult
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if res, err = ml.Append(msg, res); err != nil {
			b.Fatal(err)
		}
		end := ml.WrittenOffset()
		for w := int64(-1); w < end; {
			select {
			case w = <-acked:
			case <-time.After(10 * time.Second):
				b.Fatal("no ACK within 10 s")
			}
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
}
