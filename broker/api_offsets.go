package broker

import (
	"fmt"
	"sort"

	"github.com/ferrymq/ferry/protocol"
)

// apiOffset is one queue's committed offset of a group.
type apiOffset = protocol.HTTPOffset

// HTTPOffsetsView is the broker's consumer offsets as the HTTP API serves
// them.
type HTTPOffsetsView struct{ b *Broker }

// Get is a group's committed offsets, of topic only unless only is "". A
// group that never committed has none (not an error).
func (v HTTPOffsetsView) Get(group, only string) (protocol.HTTPOffsets, error) {
	if err := ValidateGroup(group); err != nil {
		return protocol.HTTPOffsets{}, fmt.Errorf("%w: %v", protocol.ErrHTTPBadInput, err)
	}
	out := []apiOffset{}
	for topic, qs := range v.b.offsets.forGroup(group) {
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
	return protocol.HTTPOffsets{Group: group, Offsets: out}, nil
}

// Commit commits offsets for a group, as a consumer does with
// UPDATE_CONSUMER_OFFSET; the group is created if it may be.
func (v HTTPOffsetsView) Commit(group string, in protocol.HTTPOffsets) error {
	b := v.b
	if err := ValidateGroup(group); err != nil {
		return fmt.Errorf("%w: %v", protocol.ErrHTTPBadInput, err)
	}
	if len(in.Offsets) == 0 {
		return fmt.Errorf("%w: offsets must list at least one {topic, queue_id, offset}", protocol.ErrHTTPBadInput)
	}
	for _, o := range in.Offsets {
		tc, ok := b.topics.get(o.Topic)
		if !ok {
			return fmt.Errorf("%w: %s", ErrTopicNotFound, o.Topic)
		}
		if o.QueueID < 0 || o.QueueID >= tc.ReadQueueNums || o.Offset < 0 {
			return fmt.Errorf("%w: queue %d offset %d of %s (%d read queues)", protocol.ErrHTTPBadInput, o.QueueID, o.Offset, o.Topic, tc.ReadQueueNums)
		}
	}
	if _, ok := b.groups.get(group); !ok {
		if !b.c().AutoCreateGroup {
			return fmt.Errorf("%w: %s", ErrGroupNotFound, group)
		}
		if err := b.groups.put(DefaultGroupConfig(group, b.c().RetryMaxTimes)); err != nil {
			return err
		}
	}
	if err := b.meta.writable(); err != nil {
		return err
	}
	cs := make([]offsetCommit, len(in.Offsets))
	for i, o := range in.Offsets {
		cs[i] = offsetCommit{o.Topic, o.QueueID, o.Offset}
	}
	return b.offsets.commit(group, cs)
}
