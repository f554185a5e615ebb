package broker

import (
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// TestAPIStats: the rate history, topic and group summaries follow
// the ring's samples, and it keeps only 15 minutes.
func TestAPIStats(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "clicks", "read_queues": 2, "write_queues": 2}, 201, nil)
	a.ok("POST", "/v1/groups", map[string]any{"name": "views"}, 201, nil)
	a.ok("PUT", "/v1/groups/views/offsets", map[string]any{"offsets": []map[string]any{{"topic": "clicks", "queue_id": 0, "offset": 0}}}, 200, nil)

	t0 := time.Now()
	b.stats.sample(t0)
	msgs := make([]map[string]any, 50)
	for i := range msgs {
		msgs[i] = map[string]any{"body": "0123456789"}
	}
	a.produce("clicks", msgs...)
	b.stats.sample(t0.Add(10 * time.Second))

	var st struct {
		IntervalMs int64                     `json:"interval_ms"`
		Points     []protocol.HTTPStatsPoint `json:"points"`
	}
	a.ok("GET", "/v1/broker/stats", nil, 200, &st)
	if st.IntervalMs != 10_000 || len(st.Points) == 0 {
		t.Fatalf("stats %+v", st)
	}
	last := st.Points[len(st.Points)-1]
	if last.MsgInRate != 5 || last.BytesInRate != 50 || last.AtMs != t0.Add(10*time.Second).UnixMilli() {
		t.Fatalf("last point %+v", last)
	}

	var topics []protocol.HTTPTopicStat
	a.ok("GET", "/v1/stats/topics", nil, 200, &topics)
	var clicks *protocol.HTTPTopicStat
	kinds := map[string]string{}
	for i := range topics {
		kinds[topics[i].Name] = topics[i].Kind
		if topics[i].Name == "clicks" {
			clicks = &topics[i]
		}
	}
	if clicks == nil || clicks.Messages != 50 || clicks.InRate != 5 || clicks.Kind != "normal" || clicks.ReadQueues != 2 {
		t.Fatalf("clicks %+v", clicks)
	}
	if kinds[protocol.ScheduleTopic] != "system" {
		t.Fatalf("kinds %v", kinds)
	}

	var groups []protocol.HTTPGroupStat
	waitFor(t, 10*time.Second, "the lag of views", func() bool {
		a.ok("GET", "/v1/stats/groups", nil, 200, &groups)
		return len(groups) == 1 && groups[0].Lag == 50
	})
	if g := groups[0]; g.Name != "views" || len(g.LagHistory) != 2 || g.Retry != 0 || g.DLQ != 0 {
		t.Fatalf("group %+v", g)
	}

	// 15 minutes: older samples fall out of the ring.
	for i := 2; i < 200; i++ {
		b.stats.sample(t0.Add(time.Duration(i) * 10 * time.Second))
	}
	a.ok("GET", "/v1/broker/stats", nil, 200, &st)
	if len(st.Points) != statsKeep {
		t.Fatalf("%d points, want %d", len(st.Points), statsKeep)
	}
	if h := b.stats.lagHistory("views"); len(h) != statsKeep {
		t.Fatalf("lag history of %d samples", len(h))
	}
	a.ok("DELETE", "/v1/groups/views", nil, 204, nil)
	b.stats.sample(t0.Add(2001 * time.Second))
	if h := b.stats.lagHistory("views"); len(h) != 0 {
		t.Fatalf("lag history of a deleted group: %v", h)
	}
}

// TestAPIDelayed counts messages waiting per delay level and for a
// delivery time, with the next due.
func TestAPIDelayed(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	// Not ready (the delay service starts after the HTTP server): 503.
	b.ready.Store(false)
	a.fails("GET", "/v1/delayed", nil, 503, 14)
	b.ready.Store(true)
	a.ok("POST", "/v1/topics", map[string]any{"name": "later"}, 201, nil)
	at := time.Now().Add(time.Hour).UnixMilli()
	a.produce("later",
		map[string]any{"body": "a", "delay_level": 18},
		map[string]any{"body": "b", "delay_level": 18},
		map[string]any{"body": "c", "deliver_at_ms": at},
		map[string]any{"body": "d", "deliver_at_ms": at + 1000})
	type level struct {
		Level     int   `json:"level"`
		DelayMs   int64 `json:"delay_ms"`
		Pending   int64 `json:"pending"`
		NextDueMs int64 `json:"next_due_ms"`
	}
	var d struct {
		Levels []level `json:"levels"`
		Timer  struct {
			Pending   int   `json:"pending"`
			Capped    bool  `json:"capped"`
			NextDueMs int64 `json:"next_due_ms"`
		} `json:"timer"`
		NextDueMs int64 `json:"next_due_ms"`
	}
	waitFor(t, 10*time.Second, "the timer index", func() bool {
		a.ok("GET", "/v1/delayed", nil, 200, &d)
		return d.Timer.Pending == 2
	})
	if len(d.Levels) != 18 {
		t.Fatalf("%d levels", len(d.Levels))
	}
	l := d.Levels[17]
	if l.Level != 18 || l.Pending != 2 || l.DelayMs != 2*time.Hour.Milliseconds() || l.NextDueMs < time.Now().Add(119*time.Minute).UnixMilli() {
		t.Fatalf("level 18 %+v", l)
	}
	if d.Levels[0].Pending != 0 || d.Levels[0].NextDueMs != 0 {
		t.Fatalf("level 1 %+v", d.Levels[0])
	}
	if d.Timer.NextDueMs != at || d.Timer.Capped || d.NextDueMs != at {
		t.Fatalf("timer %+v next %d", d.Timer, d.NextDueMs)
	}
}
