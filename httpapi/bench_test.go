package httpapi

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/apitest"
)

// benchConfig keeps the default segment and message sizes.
func benchConfig(c *broker.Config) {
	d := broker.DefaultConfig()
	c.SegmentSize, c.MaxMessageSize = d.SegmentSize, d.MaxMessageSize
}

// BenchmarkHTTPProduce produces batches of 100 × 1 KiB messages over
// HTTP (one keep-alive connection per parallel worker) and reports msgs/s.
func BenchmarkHTTPProduce(b *testing.B) {
	br, _ := startBroker(b, benchConfig)
	msgs := make([]map[string]any, 100)
	for i := range msgs {
		msgs[i] = map[string]any{"body": strings.Repeat("x", 1024), "tags": "T"}
	}
	body, err := json.Marshal(map[string]any{"messages": msgs})
	if err != nil {
		b.Fatal(err)
	}
	url := "http://" + br.HTTPAddr() + "/v1/topics/bench/messages"
	client := &fasthttp.Client{MaxConnsPerHost: 1024}
	b.SetBytes(int64(len(msgs) * 1024))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.SetRequestURI(url)
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.SetBody(body)
			if err := client.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != 200 {
				b.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*len(msgs))/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkHTTPProduceLatency sends single-message produce requests at a
// fixed rate (FERRY_BENCH_HTTP_RATE requests/s, default 2,000) for
// FERRY_BENCH_HTTP_SECS seconds (default 10) from 16 connections, and
// reports the request latency percentiles.
//
//	go test -run '^$' -bench BenchmarkHTTPProduceLatency -benchtime 1x ./httpapi/
func BenchmarkHTTPProduceLatency(b *testing.B) {
	rate := apitest.EnvInt(b, "FERRY_BENCH_HTTP_RATE", 2000)
	secs := apitest.EnvInt(b, "FERRY_BENCH_HTTP_SECS", 10)
	br, _ := startBroker(b, benchConfig)
	body := []byte(`{"messages":[{"body":"` + strings.Repeat("x", 1024) + `","tags":"T"}]}`)
	url := "http://" + br.HTTPAddr() + "/v1/topics/latency/messages"
	client := &fasthttp.Client{MaxConnsPerHost: 64}
	const workers = 16
	for i := 0; i < b.N; i++ {
		lat := make([][]time.Duration, workers)
		interval := time.Second * workers / time.Duration(rate)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				next := time.Now().Add(time.Duration(w) * interval / workers)
				end := time.Now().Add(time.Duration(secs) * time.Second)
				pace := time.NewTimer(time.Until(next)) // each worker sends at its own slot of the interval
				defer pace.Stop()
				for next.Before(end) {
					<-pace.C
					req.SetRequestURI(url)
					req.Header.SetMethod("POST")
					req.Header.SetContentType("application/json")
					req.SetBody(body)
					start := time.Now()
					if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
						b.Errorf("produce: %v %d", err, resp.StatusCode())
						return
					}
					lat[w] = append(lat[w], time.Since(start))
					next = next.Add(interval)
					pace.Reset(time.Until(next))
				}
			}()
		}
		wg.Wait()
		var all []time.Duration
		for _, l := range lat {
			all = append(all, l...)
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		if len(all) == 0 {
			b.Fatal("no requests")
		}
		us := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))].Microseconds()) }
		b.ReportMetric(float64(len(all))/float64(secs), "req/s")
		b.ReportMetric(us(0.50), "p50-µs")
		b.ReportMetric(us(0.99), "p99-µs")
		b.ReportMetric(us(0.999), "p99.9-µs")
	}
}
