package broker

// Read-only summaries for dashboards (the console polls them): the broker's
// rates over the last 15 minutes, every topic's message count and rates,
// every group's lag with its trend, and the delayed-message backlog.

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ferrymq/ferry/protocol"
)

// HTTPStatsView is the broker's summaries as the HTTP API serves them.
type HTTPStatsView struct{ b *Broker }

// Broker is the rate history the stats ring keeps.
func (v HTTPStatsView) Broker() map[string]any {
	return map[string]any{
		"interval_ms": statsInterval.Milliseconds(),
		"points":      v.b.stats.statsPoints(),
	}
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

// Topics is every topic's message count and rates.
func (v HTTPStatsView) Topics() []protocol.HTTPTopicStat {
	b := v.b
	rates := b.stats.topicRates()
	out := []protocol.HTTPTopicStat{}
	for _, name := range b.topics.names() {
		tc, ok := b.topics.get(name)
		if !ok {
			continue
		}
		r := rates[name]
		out = append(out, protocol.HTTPTopicStat{HTTPTopic: topicOut(tc), Kind: topicKind(name),
			Messages: b.messages.messagesIn(name, max(tc.ReadQueueNums, tc.WriteQueueNums)), InRate: r.in, OutRate: r.out})
	}
	return out
}

// Groups is every group's lag with its trend and its retry and
// dead-letter backlogs.
func (v HTTPStatsView) Groups() []protocol.HTTPGroupStat {
	b := v.b
	committed := b.offsets.byGroup()
	out := []protocol.HTTPGroupStat{}
	for _, gi := range b.Admin().Groups() {
		g := gi.GroupName
		s := protocol.HTTPGroupStat{HTTPGroup: groupOut(gi), Lag: b.stats.lagOf(g, committed[g]), LagHistory: b.stats.lagHistory(g)}
		for _, t := range []struct {
			name string
			n    *int64
		}{{protocol.RetryTopic(g), &s.Retry}, {protocol.DLQTopic(g), &s.DLQ}} {
			if tc, ok := b.topics.get(t.name); ok {
				*t.n = b.messages.messagesIn(t.name, max(tc.ReadQueueNums, tc.WriteQueueNums))
			}
		}
		out = append(out, s)
	}
	return out
}

// maxTimerCount bounds the scan that counts pending timer messages.
const maxTimerCount = 100_000

// Delayed is the backlog of scheduled messages: per delay level, and for
// arbitrary delivery times.
func (v HTTPStatsView) Delayed() (map[string]any, error) {
	b := v.b
	if !b.ready.Load() { // the delay service starts after the HTTP server
		return nil, fmt.Errorf("%w: broker is starting or shutting down", ErrNotWritable)
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
		return nil, err
	}
	next := ts.NextDueMs
	for _, l := range levels {
		if l.NextDueMs > 0 && (next == 0 || l.NextDueMs < next) {
			next = l.NextDueMs
		}
	}
	sort.Slice(levels, func(i, j int) bool { return levels[i].Level < levels[j].Level })
	return map[string]any{
		"levels": levels,
		"timer": map[string]any{"pending": ts.Pending, "capped": ts.Capped, "next_due_ms": ts.NextDueMs,
			"count_limit": maxTimerCount},
		"next_due_ms": next,
	}, nil
}
