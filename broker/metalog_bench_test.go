package broker

import (
	"context"
	"testing"
	"time"

	"github.com/ferrymq/ferry/commitlog"
)

// BenchmarkProduceWithOffsetCommits measures batch appends of 1 KiB
// messages to the broker's log alone and while offset commits (one
// metadata record each, flushed) are made back to back, as fast as they
// go: a commit's flush must not stall producers (async-flush mode).
//
//	go test -run XXX -bench ProduceWithOffsetCommits -benchtime 3s ./broker
func BenchmarkProduceWithOffsetCommits(b *testing.B) {
	for _, withCommits := range []bool{false, true} {
		name := "alone"
		if withCommits {
			name = "commits"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.DataDir = b.TempDir()
			cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
			br, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = br.Shutdown(context.Background()) }()
			if err := br.Admin().CreateTopic(TopicConfig{TopicName: "bench", ReadQueueNums: 1, WriteQueueNums: 1}); err != nil {
				b.Fatal(err)
			}
			stop, done := make(chan struct{}), make(chan int)
			go func() {
				n := 0
				for withCommits {
					select {
					case <-stop:
						done <- n
						return
					default:
					}
					n++
					if err := br.offsets.commit("g", []offsetCommit{{"bench", 0, int64(n)}}); err != nil {
						b.Error(err)
					}
				}
				<-stop
				done <- 0
			}()
			msgs := make([]commitlog.Message, 32)
			for i := range msgs {
				msgs[i] = commitlog.Message{Topic: "bench", Body: make([]byte, 1024)}
			}
			var res []commitlog.AppendResult
			b.SetBytes(32 * 1024)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if res, err = br.clog.Append(msgs, res); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			b.StopTimer()
			close(stop)
			commits := <-done
			b.ReportMetric(float64(b.N*32)/el.Seconds(), "msg/s")
			b.ReportMetric(float64(commits)/el.Seconds(), "commits/s")
		})
	}
}
