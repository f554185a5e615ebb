package load

import (
	"context"
	"testing"
	"time"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/namesrv"
)

func TestIdempotentRun(t *testing.T) {
	ns, err := namesrv.New(namesrv.Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown(context.Background())
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
	cfg.SegmentSize, cfg.MaxMessageSize = 16<<20, 1<<20
	cfg.NamesrvAddrs = []string{ns.Addr()}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	for _, batch := range []int{1, 8} {
		r, err := Run(context.Background(), Config{Namesrv: ns.Addr(), Topic: "IdemBench", Queues: 2, Producers: 2, Size: 64,
			Batch: batch, Duration: 300 * time.Millisecond, Idempotent: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent == 0 || r.Errors != 0 {
			t.Fatalf("batch %d: sent %d, errors %d (%s)", batch, r.Sent, r.Errors, r.FirstError)
		}
	}
	if ps := b.Producers(); len(ps) != 4 {
		t.Fatalf("broker knows %d idempotent producers, want 4", len(ps))
	}
}
