package broker

import (
	"fmt"
	"sort"

	"github.com/ferrymq/ferry/protocol"
	"github.com/valyala/fasthttp"
)

// apiOffset is one queue's committed offset of a group.
type apiOffset = protocol.HTTPOffset

// apiGetOffsets answers a group's committed offsets, of one topic with
// ?topic=T. A group that never committed has none (not an error).
func (b *Broker) apiGetOffsets(ctx *fasthttp.RequestCtx, p apiParams) {
	group := p.get("group")
	if err := ValidateGroup(group); err != nil {
		writeProblem(ctx, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	only := string(ctx.QueryArgs().Peek("topic"))
	out := []apiOffset{}
	for topic, qs := range b.offsets.forGroup(group) {
		if only != "" && topic != only {
			continue
		}
		for q, off := range qs {
			out = append(out, apiOffset{Topic: topic, QueueID: q, Offset: off})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].QueueID < out[j].QueueID
	})
	writeJSON(ctx, fasthttp.StatusOK, protocol.HTTPOffsets{Group: group, Offsets: out})
}

// apiCommitOffsets commits offsets for a group, as a consumer does with
// UPDATE_CONSUMER_OFFSET: {"offsets":[{"topic","queue_id","offset"}]}.
func (b *Broker) apiCommitOffsets(ctx *fasthttp.RequestCtx, p apiParams) {
	group := p.get("group")
	if err := ValidateGroup(group); err != nil {
		writeProblem(ctx, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	var in protocol.HTTPOffsets
	if err := decodeBody(ctx, &in); err != nil {
		writeProblem(ctx, err)
		return
	}
	if len(in.Offsets) == 0 {
		writeProblem(ctx, fmt.Errorf("%w: offsets must list at least one {topic, queue_id, offset}", errBadInput))
		return
	}
	for _, o := range in.Offsets {
		tc, ok := b.topics.get(o.Topic)
		if !ok {
			writeProblem(ctx, fmt.Errorf("%w: %s", ErrTopicNotFound, o.Topic))
			return
		}
		if o.QueueID < 0 || o.QueueID >= tc.ReadQueueNums || o.Offset < 0 {
			writeProblem(ctx, fmt.Errorf("%w: queue %d offset %d of %s (%d read queues)", errBadInput, o.QueueID, o.Offset, o.Topic, tc.ReadQueueNums))
			return
		}
	}
	if _, ok := b.groups.get(group); !ok {
		if !b.c().AutoCreateGroup {
			writeProblem(ctx, fmt.Errorf("%w: %s", ErrGroupNotFound, group))
			return
		}
		if err := b.groups.put(DefaultGroupConfig(group, b.c().RetryMaxTimes)); err != nil {
			writeProblem(ctx, err)
			return
		}
	}
	if err := b.meta.writable(); err != nil {
		writeProblem(ctx, err)
		return
	}
	cs := make([]offsetCommit, len(in.Offsets))
	for i, o := range in.Offsets {
		cs[i] = offsetCommit{o.Topic, o.QueueID, o.Offset}
	}
	if err := b.offsets.commit(group, cs); err != nil {
		writeProblem(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"committed": len(in.Offsets)})
}
