package broker

import (
	"fmt"
	"sort"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// apiGroup is a consumer group as the HTTP API shows it.
type apiGroup = protocol.HTTPGroup

// apiGroupInput is the body of POST /v1/groups and PUT /v1/groups/{group};
// absent fields keep their current (or default) value.
type apiGroupInput = protocol.HTTPGroupInput

// applyGroupInput merges the input into gc.
func applyGroupInput(in *apiGroupInput, gc *GroupConfig) {
	if in.RetryMaxTimes != nil {
		gc.RetryMaxTimes = *in.RetryMaxTimes
	}
	if in.ConsumeEnable != nil {
		gc.ConsumeEnable = *in.ConsumeEnable
	}
	if in.ConsumeBroadcastEnable != nil {
		gc.ConsumeBroadcastEnable = *in.ConsumeBroadcastEnable
	}
}

func groupOut(gi GroupInfo) apiGroup {
	return apiGroup{Name: gi.GroupName, ConsumeEnable: gi.ConsumeEnable, ConsumeBroadcastEnable: gi.ConsumeBroadcastEnable,
		RetryMaxTimes: gi.RetryMaxTimes, OnlineClients: gi.Online, Broadcast: gi.Broadcast}
}

// groupInfo returns one group's GroupInfo.
func (b *Broker) groupInfo(name string) (GroupInfo, error) {
	for _, gi := range b.Groups() {
		if gi.GroupName == name {
			return gi, nil
		}
	}
	return GroupInfo{}, fmt.Errorf("%w: %s", ErrGroupNotFound, name)
}

// needGroup checks that a group exists.
func (b *Broker) needGroup(name string) (GroupConfig, error) {
	gc, ok := b.groups.get(name)
	if !ok {
		return gc, fmt.Errorf("%w: %s", ErrGroupNotFound, name)
	}
	return gc, nil
}

func (b *Broker) apiListGroups(ctx *fasthttp.RequestCtx, _ apiParams) {
	out := []apiGroup{}
	for _, gi := range b.Groups() {
		out = append(out, groupOut(gi))
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

func (b *Broker) apiCreateGroup(ctx *fasthttp.RequestCtx, _ apiParams) {
	var in apiGroupInput
	if err := decodeBody(ctx, &in); err != nil {
		writeProblem(ctx, err)
		return
	}
	if err := ValidateGroup(in.Name); err != nil {
		writeProblem(ctx, err)
		return
	}
	if _, ok := b.groups.get(in.Name); ok {
		writeProblem(ctx, fmt.Errorf("%w: %s", errGroupExists, in.Name))
		return
	}
	gc := DefaultGroupConfig(in.Name, b.c().RetryMaxTimes)
	applyGroupInput(&in, &gc)
	if err := b.PutGroup(gc); err != nil {
		writeProblem(ctx, err)
		return
	}
	b.log.Info().Str("group", gc.GroupName).Msg("group created over HTTP")
	gi, err := b.groupInfo(in.Name)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusCreated, groupOut(gi))
}

func (b *Broker) apiGetGroup(ctx *fasthttp.RequestCtx, p apiParams) {
	gi, err := b.groupInfo(p.get("group"))
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, groupOut(gi))
}

func (b *Broker) apiUpdateGroup(ctx *fasthttp.RequestCtx, p apiParams) {
	name := p.get("group")
	var in apiGroupInput
	if err := decodeBody(ctx, &in); err != nil {
		writeProblem(ctx, err)
		return
	}
	if in.Name != "" && in.Name != name {
		writeProblem(ctx, fmt.Errorf("%w: body names group %q, the path %q (groups cannot be renamed)", errBadInput, in.Name, name))
		return
	}
	gc, err := b.needGroup(name)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	applyGroupInput(&in, &gc)
	if err := b.PutGroup(gc); err != nil {
		writeProblem(ctx, err)
		return
	}
	gi, err := b.groupInfo(name)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, groupOut(gi))
}

func (b *Broker) apiDeleteGroup(ctx *fasthttp.RequestCtx, p apiParams) {
	name := p.get("group")
	if err := b.DeleteGroup(name); err != nil {
		writeProblem(ctx, err)
		return
	}
	b.api.leases.forgetGroup(name)
	b.log.Info().Str("group", name).Msg("group deleted over HTTP")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

type apiLagRow = protocol.HTTPLagRow

func (b *Broker) apiGroupLag(ctx *fasthttp.RequestCtx, p apiParams) {
	group := p.get("group")
	if _, err := b.needGroup(group); err != nil {
		writeProblem(ctx, err)
		return
	}
	inflight := b.api.leases.inflight(group)
	rows := []apiLagRow{}
	var total int64
	for _, l := range b.ConsumeStats(group) {
		rows = append(rows, apiLagRow{QueueLag: l, Inflight: inflight[topicQueue{l.Topic, l.QueueID}]})
		total += l.Lag
	}
	writeJSON(ctx, fasthttp.StatusOK, protocol.HTTPLag{Rows: rows, Total: total})
}

func (b *Broker) apiGroupClients(ctx *fasthttp.RequestCtx, p apiParams) {
	group := p.get("group")
	if _, err := b.needGroup(group); err != nil {
		writeProblem(ctx, err)
		return
	}
	out := b.GroupClients(group)
	if out == nil {
		out = []ClientInfo{}
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

type apiResetRequest = protocol.HTTPOffsetReset

type apiOffsetChange = protocol.HTTPOffsetChange

// apiResetOffsets computes (and with execute, commits) a group's offsets
// of a topic. Executing refuses while the group has online consumers.
func (b *Broker) apiResetOffsets(ctx *fasthttp.RequestCtx, p apiParams) {
	group := p.get("group")
	var in apiResetRequest
	if err := decodeBody(ctx, &in); err != nil {
		writeProblem(ctx, err)
		return
	}
	if in.Topic == "" {
		writeProblem(ctx, fmt.Errorf("%w: topic is required", errBadInput))
		return
	}
	if _, err := b.needGroup(group); err != nil {
		writeProblem(ctx, err)
		return
	}
	tc, ok := b.topics.get(in.Topic)
	if !ok {
		writeProblem(ctx, fmt.Errorf("%w: %s", ErrTopicNotFound, in.Topic))
		return
	}
	at := func(q int32) (int64, error) { return b.QueueOffsetAt(in.Topic, q, in.To, in.Value) }
	old := map[int32]int64{}
	target := map[int32]int64{}
	for q := int32(0); q < tc.ReadQueueNums; q++ {
		old[q] = -1
		if o, ok := b.offsets.get(group, in.Topic, q); ok {
			old[q] = o
		}
		off, err := at(q)
		if err != nil {
			writeProblem(ctx, err)
			return
		}
		target[q] = max(b.minOffset(in.Topic, q), min(off, b.cq.MaxOffset(in.Topic, q)))
	}
	if in.Execute {
		res, err := b.ResetOffset(group, in.Topic, at)
		if err != nil {
			writeProblem(ctx, err)
			return
		}
		target = res
		b.api.leases.forgetGroupTopic(group, in.Topic)
		b.log.Info().Str("group", group).Str("topic", in.Topic).Str("to", in.To).Msg("offsets reset over HTTP")
	}
	out := make([]apiOffsetChange, 0, len(target))
	for q, n := range target {
		out = append(out, apiOffsetChange{QueueID: q, Old: old[q], New: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QueueID < out[j].QueueID })
	writeJSON(ctx, fasthttp.StatusOK, protocol.HTTPOffsetResetResult{Offsets: out, Executed: in.Execute})
}

func (b *Broker) apiDLQList(ctx *fasthttp.RequestCtx, p apiParams) {
	group := p.get("group")
	if _, ok := b.groups.get(group); !ok {
		if _, ok := b.topics.get(protocol.DLQTopic(group)); !ok {
			writeProblem(ctx, fmt.Errorf("%w: %s", ErrGroupNotFound, group))
			return
		}
	}
	from, err := queryIntIn(ctx, "from", 0, 0, 1<<62)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	n, err := queryIntIn(ctx, "max", 100, 1, 1000)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	list, next, err := b.DLQList(group, from, int(n))
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	if list == nil {
		list = []dlq.DeadLetter{}
		next = max(next, from)
	}
	writeJSON(ctx, fasthttp.StatusOK, protocol.DLQPage{DeadLetters: list, Next: next})
}

type apiResendRequest = protocol.HTTPDLQResend

func (b *Broker) apiDLQResend(ctx *fasthttp.RequestCtx, p apiParams) {
	group := p.get("group")
	if err := b.checkWritable(); err != nil {
		writeProblem(ctx, err)
		return
	}
	var in apiResendRequest
	if err := decodeBody(ctx, &in); err != nil {
		writeProblem(ctx, err)
		return
	}
	switch {
	case in.All && len(in.Offsets) > 0:
		writeProblem(ctx, fmt.Errorf("%w: give offsets or all, not both", errBadInput))
		return
	case !in.All && len(in.Offsets) == 0:
		writeProblem(ctx, fmt.Errorf("%w: give the dead letters' offsets, or all: true", errBadInput))
		return
	}
	target, err := dlq.ParseTarget(in.Target)
	if err != nil {
		writeProblem(ctx, fmt.Errorf("%w: %v", errBadInput, err))
		return
	}
	if _, ok := b.groups.get(group); !ok {
		if _, ok := b.topics.get(protocol.DLQTopic(group)); !ok {
			writeProblem(ctx, fmt.Errorf("%w: %s", ErrGroupNotFound, group))
			return
		}
	}
	offsets := in.Offsets
	if in.All {
		if _, ok := b.topics.get(protocol.DLQTopic(group)); !ok {
			writeJSON(ctx, fasthttp.StatusOK, protocol.DLQResendResult{})
			return
		}
		offsets = nil
	}
	n, skipped, err := b.DLQResend(group, offsets, target)
	if err != nil {
		if n > 0 {
			err = fmt.Errorf("%w (%d resent before it)", err, n)
		}
		writeProblem(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, protocol.DLQResendResult{Resent: n, Skipped: skipped})
}
