package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/apitest"
	"github.com/ferrymq/ferry/internal/poll"
)

// TestMain checks that no goroutine outlives the test run: every broker a
// test starts is shut down. The fasthttp server parks a worker-pool
// janitor for a while after shutdown and keeps a process-wide date
// updater; the benchmarks' fasthttp client likewise leaves its idle
// connection and address-cache janitors sleeping for a while.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"))
}

// startBroker starts a broker on 127.0.0.1 with its HTTP port served by
// this package, both on free ports; its log goes to the returned sink.
func startBroker(t testing.TB, mut func(*broker.Config), opts ...broker.Option) (*broker.Broker, *apitest.LogSink) {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
	cfg.HTTPHost, cfg.HTTPPort = "127.0.0.1", 0
	cfg.SegmentSize, cfg.MaxMessageSize = 16<<20, 1<<20
	if mut != nil {
		mut(&cfg)
	}
	var logs apitest.LogSink
	opts = append([]broker.Option{broker.WithLogger(zerolog.New(&logs)), broker.WithHTTP(Mount())}, opts...)
	b, err := broker.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b, &logs
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(context.Background(), timeout, 5*time.Millisecond, cond); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}
