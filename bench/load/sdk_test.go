package load

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSDKRun: the SDK mode sends through client.Producer's SendAsync over
// several topics and counts every answered message.
func TestSDKRun(t *testing.T) {
	ns, _ := startCluster(t, t.TempDir(), "")
	run := Config{Namesrv: ns.Addr(), Topic: "SDKBench", Topics: 3, Queues: 2, Producers: 2, Size: 64,
		Window: 16, Duration: 300 * time.Millisecond}
	r, err := Run(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Errors != 0 || r.SendP50 == 0 {
		t.Fatalf("sent %d, errors %d (%s), p50 %v", r.Sent, r.Errors, r.FirstError, r.SendP50)
	}
	if out := Format(run, r); !strings.HasPrefix(out, "sdk producers=2 window=16") {
		t.Fatalf("report %q", out)
	}
	if _, err := Run(context.Background(), Config{Namesrv: ns.Addr(), Window: 4, Batch: 8}); err == nil {
		t.Fatal("the SDK mode took a batch size")
	}
}
