package broker

import (
	"testing"
	"time"
)

// TestStatsRing drives a broker's stats ring by hand: rates are the
// counters' growth between samples, a group's lag is what its queues
// hold past its committed offsets, and the lag history follows samples.
func TestStatsRing(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	for _, body := range []string{"a", "b", "c"} {
		mustOK(t, c.send("clicks", 0, body, nil))
	}
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("clicks", 0) == 3 })
	if err := b.groups.put(DefaultGroupConfig("views", 16)); err != nil {
		t.Fatal(err)
	}
	if err := b.groups.put(DefaultGroupConfig("idle", 16)); err != nil {
		t.Fatal(err)
	}
	b.offsets.set("views", "clicks", 0, 1)

	r := b.stats
	lags := r.groupLags()
	if lags["views"] != 2 || lags["idle"] != 0 {
		t.Fatalf("lags %v, want views 2 and idle 0", lags)
	}

	// The housekeeping loop takes its first sample at start: after it,
	// the samples are this test's alone.
	waitFor(t, 5*time.Second, "the first sample", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.samples) > 0
	})
	t0 := time.Now()
	r.sample(t0)
	r.metrics.messagesIn("clicks", 20, 2000)
	r.metrics.messagesOut("clicks", "views", 5, 500)
	b.offsets.set("views", "clicks", 0, 3)
	r.sample(t0.Add(10 * time.Second))

	points := r.statsPoints()
	if len(points) == 0 {
		t.Fatal("no rate points after two samples")
	}
	last := points[len(points)-1]
	if last.MsgInRate != 2 || last.BytesInRate != 200 || last.MsgOutRate != 0.5 || last.BytesOutRate != 50 {
		t.Fatalf("last point %+v, want 2 msg/s and 200 B/s in, 0.5 msg/s and 50 B/s out", last)
	}
	if rate := r.topicRates()["clicks"]; rate.in != 2 || rate.out != 0.5 {
		t.Fatalf("clicks rates %+v, want in 2 and out 0.5", rate)
	}
	if h := r.lagHistory("views"); len(h) < 2 || h[len(h)-2] != 2 || h[len(h)-1] != 0 {
		t.Fatalf("views lag history %v, want it to end 2, 0", h)
	}
}
