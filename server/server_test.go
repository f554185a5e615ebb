package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/namesrv"
)

// The fasthttp server (the broker's HTTP API) parks a worker-pool
// janitor for a while after shutdown and keeps a process-wide date
// updater; everything else Run starts must be gone when it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// TestRunServesAndStops runs a name server and a broker in one process,
// sends a message through the name server and reads the broker's HTTP
// API, then cancels the context and checks Run returns cleanly.
func TestRunServesAndStops(t *testing.T) {
	bc := broker.DefaultConfig()
	bc.DataDir = t.TempDir()
	bc.ListenHost, bc.AdvertiseHost, bc.Port = "127.0.0.1", "127.0.0.1", 0
	bc.HTTPHost, bc.HTTPPort = "127.0.0.1", 0
	bc.SegmentSize = 16 << 20
	callerAddrs := []string{}
	bc.NamesrvAddrs = callerAddrs

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Namesrv:         &namesrv.Config{ListenAddr: "127.0.0.1:0"},
			Broker:          &bc,
			ShutdownTimeout: 10 * time.Second,
			Ready:           func(a Addrs) { ready <- a },
		})
	}()
	var addrs Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run returned before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run not ready after 30s")
	}
	if addrs.Namesrv == "" || addrs.Broker == "" || addrs.HTTP == "" {
		t.Fatalf("addresses %+v", addrs)
	}
	if len(bc.NamesrvAddrs) != 0 {
		t.Errorf("Run changed the caller's broker config: %v", bc.NamesrvAddrs)
	}

	resp, err := http.Get("http://" + addrs.HTTP + "/v1/broker")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/broker: %s", resp.Status)
	}
	http.DefaultClient.CloseIdleConnections()

	p, err := client.NewProducer(addrs.Namesrv, client.WithRetries(4))
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	// The broker registers with the name server in the background: poll
	// until the topic (auto-created) has a route. Any answer but "no
	// route yet" ends the wait; err is the last send's.
	_ = poll.Until(sctx, 20*time.Second, 20*time.Millisecond, func() bool {
		_, err = p.Send(sctx, &client.Message{Topic: "run-test", Body: []byte("hello")})
		return !errors.Is(err, client.ErrTopicNotFound)
	})
	scancel()
	_ = p.Close()
	if err != nil {
		t.Fatalf("send through the name server: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30s after cancel")
	}
}

func TestRunNothing(t *testing.T) {
	if err := Run(context.Background(), Config{}); !errors.Is(err, ErrNothingToRun) {
		t.Fatalf("Run of an empty config: %v", err)
	}
}

// TestRunStartFailure checks that a broker that cannot start stops the
// name server started before it and is reported at once.
func TestRunStartFailure(t *testing.T) {
	bc := broker.DefaultConfig()
	bc.DataDir = t.TempDir()
	bc.ListenHost, bc.Port = "127.0.0.1", 0
	bc.HTTPHost, bc.HTTPPort = "256.0.0.1", 0 // not an address
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, Config{Namesrv: &namesrv.Config{ListenAddr: "127.0.0.1:0"}, Broker: &bc,
		Ready: func(Addrs) { t.Error("Ready called for a broker that cannot start") }})
	if err == nil || !strings.HasPrefix(err.Error(), "broker: ") || ctx.Err() != nil {
		t.Fatalf("Run with a bad HTTP address: %v (ctx %v), want a broker start failure", err, ctx.Err())
	}
}
