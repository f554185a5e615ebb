package broker

// The broker's recent history for the console's charts: every 10 s the
// housekeeping loop takes one sample of the message and byte counters,
// the per-topic counters and every group's total lag, and keeps the last
// 15 minutes of them in memory. Nothing here runs per message; a sample
// costs one pass over the Prometheus counters and the committed offsets.

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

const (
	statsInterval = 10 * time.Second
	statsKeep     = 90 // samples: 15 minutes
)

// statsSample is the broker's counters at one moment (cumulative).
type statsSample struct {
	atMs                             int64
	msgIn, msgOut, bytesIn, bytesOut float64
}

// topicCounters are one topic's cumulative message counters.
type topicCounters struct{ in, out float64 }

// statsRing keeps the samples, the Broker's stats field, and computes
// the group lags they record. mu guards the samples.
type statsRing struct {
	metrics   *metrics
	offsets   *offsetTable
	groups    *groupTable
	topicConf *topicTable
	cq        *consumequeue.Store
	clients   *clientRegistry

	mu      sync.Mutex
	samples []statsSample // oldest first, at most statsKeep+1
	// per-topic counters at the last two samples, for rates
	topicsAt, topicsPrevAt int64
	topics, topicsPrev     map[string]topicCounters
	// lag holds each group's total lag at the last samples, oldest first
	// (aligned with the end of samples).
	lag map[string][]int64
}

// sumCounters adds up a counter vector's series by the value of its first
// label (the topic), and their grand total.
func sumCounters(c prometheus.Collector) (map[string]float64, float64) {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	out := map[string]float64{}
	var total float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || d.Counter == nil {
			continue
		}
		topic := ""
		for _, l := range d.Label {
			if l.GetName() == "topic" {
				topic = l.GetValue()
			}
		}
		v := d.Counter.GetValue()
		out[topic] += v
		total += v
	}
	return out, total
}

// sample records one sample at now.
func (r *statsRing) sample(now time.Time) {
	in, msgIn := sumCounters(r.metrics.msgIn)
	out, msgOut := sumCounters(r.metrics.msgOut)
	_, bytesIn := sumCounters(r.metrics.bytesIn)
	_, bytesOut := sumCounters(r.metrics.bytesOut)
	topics := make(map[string]topicCounters, len(in))
	for t, v := range in {
		topics[t] = topicCounters{in: v}
	}
	for t, v := range out {
		c := topics[t]
		c.out = v
		topics[t] = c
	}
	lags := r.groupLags()

	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, statsSample{atMs: now.UnixMilli(), msgIn: msgIn, msgOut: msgOut, bytesIn: bytesIn, bytesOut: bytesOut})
	if len(r.samples) > statsKeep+1 {
		r.samples = append(r.samples[:0], r.samples[len(r.samples)-statsKeep-1:]...)
	}
	r.topicsPrev, r.topicsPrevAt = r.topics, r.topicsAt
	r.topics, r.topicsAt = topics, now.UnixMilli()
	if r.lag == nil {
		r.lag = map[string][]int64{}
	}
	for g := range r.lag {
		if _, ok := lags[g]; !ok {
			delete(r.lag, g)
		}
	}
	for g, l := range lags {
		h := append(r.lag[g], l)
		if len(h) > statsKeep {
			h = append(h[:0], h[len(h)-statsKeep:]...)
		}
		r.lag[g] = h
	}
}

// groupLags returns every configured group's total lag, from one pass over
// the committed offsets.
func (r *statsRing) groupLags() map[string]int64 {
	committed := r.offsets.byGroup()
	out := map[string]int64{}
	for _, gc := range r.groups.all() {
		g := gc.GroupName
		out[g] = r.lagOf(g, committed[g])
	}
	return out
}

// lagOf is a group's total lag over the topics it subscribes to or has
// committed offsets on (ConsumeStats, summed).
func (r *statsRing) lagOf(group string, committed map[string]map[int32]int64) int64 {
	var total int64
	seen := map[string]bool{}
	add := func(t string) {
		if seen[t] {
			return
		}
		seen[t] = true
		tc, ok := r.topicConf.get(t)
		if !ok {
			return
		}
		for q := int32(0); q < tc.ReadQueueNums; q++ {
			total += max(0, r.cq.MaxOffset(t, q)-committed[t][q])
		}
	}
	for t := range committed {
		add(t)
	}
	for t := range r.clients.groupSubscriptions(group) {
		add(t)
	}
	return total
}

// byGroup returns every committed offset by group, topic and queue.
func (t *offsetTable) byGroup() map[string]map[string]map[int32]int64 {
	out := map[string]map[string]map[int32]int64{}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, v := range t.offsets {
		g := out[id.group]
		if g == nil {
			g = map[string]map[int32]int64{}
			out[id.group] = g
		}
		q := g[id.topic]
		if q == nil {
			q = map[int32]int64{}
			g[id.topic] = q
		}
		q[id.queue] = v
	}
	return out
}

// statsPoints returns the rates between consecutive samples, oldest first.
func (r *statsRing) statsPoints() []protocol.HTTPStatsPoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]protocol.HTTPStatsPoint, 0, len(r.samples))
	for i := 1; i < len(r.samples); i++ {
		a, z := r.samples[i-1], r.samples[i]
		secs := float64(z.atMs-a.atMs) / 1000
		if secs <= 0 {
			continue
		}
		out = append(out, protocol.HTTPStatsPoint{AtMs: z.atMs, MsgInRate: (z.msgIn - a.msgIn) / secs, MsgOutRate: (z.msgOut - a.msgOut) / secs,
			BytesInRate: (z.bytesIn - a.bytesIn) / secs, BytesOutRate: (z.bytesOut - a.bytesOut) / secs})
	}
	return out
}

// topicRates returns each topic's in and out msg/s over the last interval.
func (r *statsRing) topicRates() map[string]topicCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]topicCounters{}
	secs := float64(r.topicsAt-r.topicsPrevAt) / 1000
	if r.topicsPrev == nil || secs <= 0 {
		return out
	}
	for t, c := range r.topics {
		p := r.topicsPrev[t]
		out[t] = topicCounters{in: (c.in - p.in) / secs, out: (c.out - p.out) / secs}
	}
	return out
}

// lagHistory returns a group's total lag at the last samples, oldest first.
func (r *statsRing) lagHistory(group string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64{}, r.lag[group]...)
}
