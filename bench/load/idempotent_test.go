package load

import (
	"context"
	"testing"
	"time"
)

func TestIdempotentRun(t *testing.T) {
	ns, b := startCluster(t, t.TempDir(), "")
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
