package broker

import (
	"context"
	"os"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/apitest"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// BenchmarkDelayedDelivery measures the timer path at scale: it schedules
// FERRY_BENCH_DELAY_PENDING messages (default 1,000,000) with delivery
// times spread over the next day, plus a burst due at 10,000 a second for
// FERRY_BENCH_DELAY_BURST_S seconds (default 10) starting 5 s after the
// sends end, then reports the heap while they are all pending and the
// lateness of the burst's deliveries (stored-on-the-real-topic time minus
// the due time, ms resolution). Run by hand:
//
//	go test -run '^$' -bench BenchmarkDelayedDelivery -benchtime 1x -timeout 30m ./broker/
func BenchmarkDelayedDelivery(b *testing.B) {
	pending := apitest.EnvInt(b, "FERRY_BENCH_DELAY_PENDING", 1_000_000)
	burstSecs := apitest.EnvInt(b, "FERRY_BENCH_DELAY_BURST_S", 10)
	const rate = 10_000
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		if d := os.Getenv("FERRY_BENCH_DIR"); d != "" {
			var err error
			if dir, err = os.MkdirTemp(d, "delay-bench"); err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
		}
		cfg := DefaultConfig()
		cfg.DataDir = dir
		cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
		br, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := br.Start(); err != nil {
			b.Fatal(err)
		}
		cl := remoting.NewClient(remoting.ClientConfig{})
		body := make([]byte, 256)
		send := func(due []int64) {
			var batch []byte
			for _, d := range due {
				props := protocol.EncodeProperties(map[string]string{protocol.PropTimerDeliverMS: strconv.FormatInt(d, 10)})
				batch = EncodeBatch(batch, []int32{0}, [][]byte{body}, [][]byte{props})
			}
			req := remoting.NewRequest(protocol.ReqSendBatchMessage, map[string]string{
				"a": "bench", "b": "delayed", "c": "TBW102", "d": "4", "e": "0", "f": "0",
				"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0", "i": "", "j": "0", "k": "false", "l": "0", "m": "true",
			}, batch)
			resp, err := cl.Invoke(context.Background(), br.Addr(), req)
			if err == nil {
				err = resp.Err()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		// The day-long backlog, then the burst.
		now := time.Now().UnixMilli()
		due := make([]int64, 0, 200)
		for n := 0; n < pending; n++ {
			due = append(due, now+60_000+int64(n)*(86_400_000/int64(pending)))
			if len(due) == cap(due) {
				send(due)
				due = due[:0]
			}
		}
		if len(due) > 0 {
			send(due)
		}
		burstStart := time.Now().Add(5 * time.Second).UnixMilli()
		burst := burstSecs * rate
		for n := 0; n < burst; n++ {
			due = append(due, burstStart+int64(n)*1000/rate)
			if len(due) == cap(due) {
				send(due)
				due = due[:0]
			}
		}
		if len(due) > 0 {
			send(due)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(pending+burst), "pending")

		// Collect the burst from the real topic's queue 0.
		var late []int64
		var off int64
		deadline := time.Now().Add(time.Duration(burstSecs)*time.Second + 60*time.Second)
		for len(late) < burst && time.Now().Before(deadline) {
			req := remoting.NewRequest(protocol.ReqPullMessage, map[string]string{
				"consumerGroup": "bench", "topic": "delayed", "queueId": "0", "queueOffset": strconv.FormatInt(off, 10),
				"maxMsgNums": "64", "sysFlag": "6", "commitOffset": "0", "suspendTimeoutMillis": "1000",
				"subscription": "*", "subVersion": "0", "expressionType": "TAG",
			}, nil)
			resp, err := cl.Invoke(context.Background(), br.Addr(), req)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := resp.Int64("nextBeginOffset"); err == nil {
				off = n
			}
			for p := resp.Body; len(p) > 0; {
				rec, err := protocol.Decode(p)
				if err != nil {
					b.Fatal(err)
				}
				p = p[rec.Size:]
				late = append(late, rec.StoreTimestamp)
			}
		}
		if len(late) < burst {
			b.Fatalf("%d of %d burst messages delivered", len(late), burst)
		}
		// Delivered in due order: the i-th delivery was due at burstStart + i/rate.
		lateness := make([]int64, len(late))
		for i, st := range late {
			lateness[i] = st - (burstStart + int64(i)*1000/rate)
		}
		sort.Slice(lateness, func(i, j int) bool { return lateness[i] < lateness[j] })
		b.ReportMetric(float64(lateness[len(lateness)/2]), "p50-late-ms")
		b.ReportMetric(float64(lateness[len(lateness)*99/100]), "p99-late-ms")
		b.ReportMetric(float64(lateness[len(lateness)-1]), "max-late-ms")
		cl.Close()
		if err := br.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
