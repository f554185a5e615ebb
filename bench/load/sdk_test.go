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

// TestSDKConsumeRun: the SDK consume mode (W3) delivers what the SDK
// producers send to SDK push consumers, end-to-end latencies recorded; the
// idle mode runs the consumers alone.
func TestSDKConsumeRun(t *testing.T) {
	ns, _ := startCluster(t, t.TempDir(), "")
	run := Config{Namesrv: ns.Addr(), Topic: "SDKConsume", Queues: 2, Producers: 1, Size: 64, Window: 16,
		Consume: true, Consumers: 2, PullBatch: 8, Warmup: 500 * time.Millisecond, Duration: 500 * time.Millisecond}
	r, err := Run(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Consumed == 0 || r.E2EP50 == 0 || r.Errors != 0 {
		t.Fatalf("sent %d, consumed %d, e2e p50 %v, errors %d (%s)", r.Sent, r.Consumed, r.E2EP50, r.Errors, r.FirstError)
	}
	idle := Config{Namesrv: ns.Addr(), Topic: "SDKIdle", Queues: 2, Window: 1, Consume: true, Consumers: 3, Idle: true,
		Duration: 200 * time.Millisecond}
	r, err = Run(context.Background(), idle)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 0 {
		t.Fatalf("idle run sent %d", r.Sent)
	}
	if out := Format(idle, r); !strings.HasPrefix(out, "idle sdk consumers=3") {
		t.Fatalf("report %q", out)
	}
	for _, bad := range []Config{
		{Namesrv: ns.Addr(), Consumers: 2},                        // consumers without the SDK consume mode
		{Namesrv: ns.Addr(), Consume: true, Idle: true},           // idle without a window
		{Namesrv: ns.Addr(), Window: 4, Consumers: 1, Idle: true}, // idle without consume
	} {
		if _, err := Run(context.Background(), bad); err == nil {
			t.Fatalf("accepted %+v", bad)
		}
	}
}
