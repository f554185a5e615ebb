package broker

import (
	"fmt"
	"sort"

	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// applyGroupInput merges the input into gc.
func applyGroupInput(in *protocol.HTTPGroupInput, gc *GroupConfig) {
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

func groupOut(gi GroupInfo) protocol.HTTPGroup {
	return protocol.HTTPGroup{Name: gi.GroupName, ConsumeEnable: gi.ConsumeEnable, ConsumeBroadcastEnable: gi.ConsumeBroadcastEnable,
		RetryMaxTimes: gi.RetryMaxTimes, OnlineClients: gi.Online, Broadcast: gi.Broadcast}
}

// info returns one group's GroupInfo.
func (v HTTPGroupsView) info(name string) (GroupInfo, error) {
	for _, gi := range v.b.Admin().Groups() {
		if gi.GroupName == name {
			return gi, nil
		}
	}
	return GroupInfo{}, fmt.Errorf("%w: %s", ErrGroupNotFound, name)
}

// need checks that a group exists.
func (t *groupTable) need(name string) (GroupConfig, error) {
	gc, ok := t.get(name)
	if !ok {
		return gc, fmt.Errorf("%w: %s", ErrGroupNotFound, name)
	}
	return gc, nil
}

// HTTPGroupsView is the broker's consumer groups as the HTTP API serves
// them.
type HTTPGroupsView struct{ b *Broker }

// List lists the groups.
func (v HTTPGroupsView) List() []protocol.HTTPGroup {
	out := []protocol.HTTPGroup{}
	for _, gi := range v.b.Admin().Groups() {
		out = append(out, groupOut(gi))
	}
	return out
}

// Create creates the group in.Name; absent fields take the defaults.
func (v HTTPGroupsView) Create(in protocol.HTTPGroupInput) (protocol.HTTPGroup, error) {
	b := v.b
	if err := ValidateGroup(in.Name); err != nil {
		return protocol.HTTPGroup{}, err
	}
	if _, ok := b.groups.get(in.Name); ok {
		return protocol.HTTPGroup{}, fmt.Errorf("%w: %s", protocol.ErrHTTPGroupExists, in.Name)
	}
	gc := DefaultGroupConfig(in.Name, b.c().RetryMaxTimes)
	applyGroupInput(&in, &gc)
	if err := b.Admin().PutGroup(gc); err != nil {
		return protocol.HTTPGroup{}, err
	}
	b.log.Info().Str("group", gc.GroupName).Msg("group created over HTTP")
	return v.Get(in.Name)
}

// Get is one group.
func (v HTTPGroupsView) Get(name string) (protocol.HTTPGroup, error) {
	gi, err := v.info(name)
	if err != nil {
		return protocol.HTTPGroup{}, err
	}
	return groupOut(gi), nil
}

// Update changes the fields in sets.
func (v HTTPGroupsView) Update(name string, in protocol.HTTPGroupInput) (protocol.HTTPGroup, error) {
	gc, err := v.b.groups.need(name)
	if err != nil {
		return protocol.HTTPGroup{}, err
	}
	applyGroupInput(&in, &gc)
	if err := v.b.Admin().PutGroup(gc); err != nil {
		return protocol.HTTPGroup{}, err
	}
	return v.Get(name)
}

// Delete deletes a group and forgets its receive leases.
func (v HTTPGroupsView) Delete(name string) error {
	if err := v.b.Admin().DeleteGroup(name); err != nil {
		return err
	}
	v.b.leases.forgetGroup(name)
	v.b.log.Info().Str("group", name).Msg("group deleted over HTTP")
	return nil
}

// Lag is a group's lag per queue, with the messages leased out.
func (v HTTPGroupsView) Lag(group string) (protocol.HTTPLag, error) {
	b := v.b
	if _, err := b.groups.need(group); err != nil {
		return protocol.HTTPLag{}, err
	}
	inflight := b.leases.inflight(group)
	rows := []protocol.HTTPLagRow{}
	var total int64
	for _, l := range b.Admin().ConsumeStats(group) {
		rows = append(rows, protocol.HTTPLagRow{QueueLag: l, Inflight: inflight[topicQueue{l.Topic, l.QueueID}]})
		total += l.Lag
	}
	return protocol.HTTPLag{Rows: rows, Total: total}, nil
}

// Clients lists a group's online consumers.
func (v HTTPGroupsView) Clients(group string) ([]ClientInfo, error) {
	if _, err := v.b.groups.need(group); err != nil {
		return nil, err
	}
	out := v.b.Admin().GroupClients(group)
	if out == nil {
		out = []ClientInfo{}
	}
	return out, nil
}

// ResetOffsets computes (and with in.Execute, commits) a group's offsets
// of a topic. Executing refuses while the group has online consumers.
func (v HTTPGroupsView) ResetOffsets(group string, in protocol.HTTPOffsetReset) (protocol.HTTPOffsetResetResult, error) {
	b := v.b
	var none protocol.HTTPOffsetResetResult
	if in.Topic == "" {
		return none, fmt.Errorf("%w: topic is required", protocol.ErrHTTPBadInput)
	}
	if _, err := b.groups.need(group); err != nil {
		return none, err
	}
	tc, ok := b.topics.get(in.Topic)
	if !ok {
		return none, fmt.Errorf("%w: %s", ErrTopicNotFound, in.Topic)
	}
	at := func(q int32) (int64, error) { return b.Admin().QueueOffsetAt(in.Topic, q, in.To, in.Value) }
	old := map[int32]int64{}
	target := map[int32]int64{}
	for q := int32(0); q < tc.ReadQueueNums; q++ {
		old[q] = -1
		if o, ok := b.offsets.get(group, in.Topic, q); ok {
			old[q] = o
		}
		off, err := at(q)
		if err != nil {
			return none, err
		}
		target[q] = max(b.reader.minOffset(in.Topic, q), min(off, b.cq.MaxOffset(in.Topic, q)))
	}
	if in.Execute {
		res, err := b.Admin().ResetOffset(group, in.Topic, at)
		if err != nil {
			return none, err
		}
		target = res
		b.leases.forgetGroupTopic(group, in.Topic)
		b.log.Info().Str("group", group).Str("topic", in.Topic).Str("to", in.To).Msg("offsets reset over HTTP")
	}
	out := make([]protocol.HTTPOffsetChange, 0, len(target))
	for q, n := range target {
		out = append(out, protocol.HTTPOffsetChange{QueueID: q, Old: old[q], New: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QueueID < out[j].QueueID })
	return protocol.HTTPOffsetResetResult{Offsets: out, Executed: in.Execute}, nil
}

// knownForDLQ checks that a group exists, or at least its dead-letter
// topic.
func (v HTTPGroupsView) knownForDLQ(group string) error {
	if _, ok := v.b.groups.get(group); !ok {
		if _, ok := v.b.topics.get(protocol.DLQTopic(group)); !ok {
			return fmt.Errorf("%w: %s", ErrGroupNotFound, group)
		}
	}
	return nil
}

// DeadLetters lists up to n of a group's dead letters from offset from.
func (v HTTPGroupsView) DeadLetters(group string, from int64, n int) (protocol.DLQPage, error) {
	if err := v.knownForDLQ(group); err != nil {
		return protocol.DLQPage{}, err
	}
	list, next, err := v.b.Admin().DLQList(group, from, n)
	if err != nil {
		return protocol.DLQPage{}, err
	}
	if list == nil {
		list = []dlq.DeadLetter{}
		next = max(next, from)
	}
	return protocol.DLQPage{DeadLetters: list, Next: next}, nil
}

// ResendDeadLetters sends a group's dead letters (those at in.Offsets, or
// all) to their topic again, or to in.Target.
func (v HTTPGroupsView) ResendDeadLetters(group string, in protocol.HTTPDLQResend) (protocol.DLQResendResult, error) {
	b := v.b
	var none protocol.DLQResendResult
	if err := b.sender.checkWritable(); err != nil {
		return none, err
	}
	switch {
	case in.All && len(in.Offsets) > 0:
		return none, fmt.Errorf("%w: give offsets or all, not both", protocol.ErrHTTPBadInput)
	case !in.All && len(in.Offsets) == 0:
		return none, fmt.Errorf("%w: give the dead letters' offsets, or all: true", protocol.ErrHTTPBadInput)
	}
	target, err := dlq.ParseTarget(in.Target)
	if err != nil {
		return none, fmt.Errorf("%w: %v", protocol.ErrHTTPBadInput, err)
	}
	if err := v.knownForDLQ(group); err != nil {
		return none, err
	}
	offsets := in.Offsets
	if in.All {
		if _, ok := b.topics.get(protocol.DLQTopic(group)); !ok {
			return none, nil
		}
		offsets = nil
	}
	n, skipped, err := b.Admin().DLQResend(group, offsets, target)
	if err != nil {
		if n > 0 {
			err = fmt.Errorf("%w (%d resent before it)", err, n)
		}
		return none, err
	}
	return protocol.DLQResendResult{Resent: n, Skipped: skipped}, nil
}
