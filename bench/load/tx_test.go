package load

import (
	"context"
	"testing"
	"time"
)

// TestTransactionRun: the transaction mode commits every message through
// SendInTransaction (on a topic created with a dedup window) and the
// consume mode sees them.
func TestTransactionRun(t *testing.T) {
	ns, _ := startCluster(t, t.TempDir(), "")
	run := Config{Namesrv: ns.Addr(), Topic: "TxBench", Queues: 2, Producers: 2, Size: 64,
		Transactions: true, Consume: true, DedupWindow: time.Minute, Duration: 500 * time.Millisecond}
	r, err := Run(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Errors != 0 || r.SendP50 == 0 || r.Consumed == 0 {
		t.Fatalf("sent %d, consumed %d, errors %d (%s), p50 %v", r.Sent, r.Consumed, r.Errors, r.FirstError, r.SendP50)
	}
	if _, err := Run(context.Background(), Config{Namesrv: ns.Addr(), Transactions: true, Idempotent: true}); err == nil {
		t.Fatal("the transaction mode took idempotent sends")
	}
}
