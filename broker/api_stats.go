package broker

// Read-only summaries for dashboards (the console polls them): the broker's
// rates over the last 15 minutes, every topic's message count and rates,
// every group's lag with its trend, and the delayed-message backlog.

import (
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"
)

// apiBrokerStats answers the rate history kept by sampleStats.
func (b *Broker) apiBrokerStats(ctx *fasthttp.RequestCtx, _ apiParams) {
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"interval_ms": statsInterval.Milliseconds(),
		"points":      b.stats.statsPoints(),
	})
}

func topicKind(t string) string {
	switch {
	case strings.HasPrefix(t, protocol.RetryTopicPrefix):
		return "retry"
	case strings.HasPrefix(t, protocol.DLQTopicPrefix):
		return "dlq"
	case protocol.IsReservedTopic(t):
		return "system"
	}
	return "normal"
}

// messagesIn is how many messages a topic keeps: the sum over its queues
// of max offset - min offset.
func (b *Broker) messagesIn(topic string, queues int32) int64 {
	var n int64
	for q := int32(0); q < queues; q++ {
		n += max(0, b.cq.MaxOffset(topic, q)-b.minOffset(topic, q))
	}
	return n
}

func (b *Broker) apiTopicStats(ctx *fasthttp.RequestCtx, _ apiParams) {
	rates := b.stats.topicRates()
	out := []protocol.HTTPTopicStat{}
	for _, name := range b.topics.names() {
		tc, ok := b.topics.get(name)
		if !ok {
			continue
		}
		r := rates[name]
		out = append(out, protocol.HTTPTopicStat{HTTPTopic: topicOut(tc), Kind: topicKind(name),
			Messages: b.messagesIn(name, max(tc.ReadQueueNums, tc.WriteQueueNums)), InRate: r.in, OutRate: r.out})
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

func (b *Broker) apiGroupStats(ctx *fasthttp.RequestCtx, _ apiParams) {
	committed := b.offsets.byGroup()
	out := []protocol.HTTPGroupStat{}
	for _, gi := range b.Groups() {
		g := gi.GroupName
		s := protocol.HTTPGroupStat{HTTPGroup: groupOut(gi), Lag: b.lagOf(g, committed[g]), LagHistory: b.stats.lagHistory(g)}
		for _, t := range []struct {
			name string
			n    *int64
		}{{protocol.RetryTopic(g), &s.Retry}, {protocol.DLQTopic(g), &s.DLQ}} {
			if tc, ok := b.topics.get(t.name); ok {
				*t.n = b.messagesIn(t.name, max(tc.ReadQueueNums, tc.WriteQueueNums))
			}
		}
		out = append(out, s)
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// maxTimerCount bounds the scan that counts pending timer messages.
const maxTimerCount = 100_000

// apiDelayed answers the backlog of scheduled messages: per delay level,
// and for arbitrary delivery times.
func (b *Broker) apiDelayed(ctx *fasthttp.RequestCtx, _ apiParams) {
	if !b.ready.Load() { // the delay service starts after the HTTP server
		writeProblem(ctx, fmt.Errorf("%w: broker is starting or shutting down", errNotWritable))
		return
	}
	levels := []protocol.HTTPDelayLevel{}
	for _, st := range b.delaySvc.LevelStats() {
		d := b.delays[st.Level-1]
		l := protocol.HTTPDelayLevel{Level: st.Level, DelayMs: d.Milliseconds(), Pending: st.Pending}
		if st.HeadStoredMs > 0 {
			l.NextDueMs = st.HeadStoredMs + d.Milliseconds()
		}
		levels = append(levels, l)
	}
	ts, err := b.timerIdx.TimerStats(maxTimerCount)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	next := ts.NextDueMs
	for _, l := range levels {
		if l.NextDueMs > 0 && (next == 0 || l.NextDueMs < next) {
			next = l.NextDueMs
		}
	}
	sort.Slice(levels, func(i, j int) bool { return levels[i].Level < levels[j].Level })
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"levels": levels,
		"timer": map[string]any{"pending": ts.Pending, "capped": ts.Capped, "next_due_ms": ts.NextDueMs,
			"count_limit": maxTimerCount},
		"next_due_ms": next,
	})
}
