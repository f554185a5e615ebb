package broker

import (
	"fmt"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// apiTopic is a topic's config as the HTTP API shows it.
type apiTopic = protocol.HTTPTopic

func topicOut(tc TopicConfig) apiTopic {
	return apiTopic{Name: tc.TopicName, ReadQueues: tc.ReadQueueNums, WriteQueues: tc.WriteQueueNums,
		Perm: protocol.HTTPPermText(tc.Perm), Order: tc.Order, DedupWindow: dedupWindowText(tc.DedupWindowMs)}
}

func dedupWindowText(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// parsePerm turns "rw", "r", "w" into perm bits, keeping the other bits of
// old (inherit, priority).
func parsePerm(s string, old int32) (int32, error) {
	base := old &^ (protocol.PermRead | protocol.PermWrite)
	switch s {
	case "rw", "wr":
		return base | protocol.PermRead | protocol.PermWrite, nil
	case "r":
		return base | protocol.PermRead, nil
	case "w":
		return base | protocol.PermWrite, nil
	}
	return 0, fmt.Errorf("%w: perm %q: want rw, r or w", protocol.ErrHTTPBadInput, s)
}

// applyTopicInput merges the input into tc.
func applyTopicInput(in *protocol.HTTPTopicInput, tc *TopicConfig) error {
	if in.ReadQueues != nil {
		tc.ReadQueueNums = *in.ReadQueues
	}
	if in.WriteQueues != nil {
		tc.WriteQueueNums = *in.WriteQueues
	}
	if in.Perm != nil {
		p, err := parsePerm(*in.Perm, tc.Perm)
		if err != nil {
			return err
		}
		tc.Perm = p
	}
	if in.Order != nil {
		tc.Order = *in.Order
	}
	if in.DedupWindow != nil {
		d, err := parseDuration(*in.DedupWindow)
		if err != nil || d < 0 {
			return fmt.Errorf("%w: dedup_window %q: want a duration such as 10m, or 0 for off", protocol.ErrHTTPBadInput, *in.DedupWindow)
		}
		tc.DedupWindowMs = d.Milliseconds()
	}
	return nil
}

// HTTPTopicsView is the broker's topic administration as the HTTP API
// serves it.
type HTTPTopicsView struct{ b *Broker }

// List lists the topics.
func (v HTTPTopicsView) List() []protocol.HTTPTopic {
	out := []protocol.HTTPTopic{}
	for _, name := range v.b.topics.names() {
		if tc, ok := v.b.topics.get(name); ok {
			out = append(out, topicOut(tc))
		}
	}
	return out
}

// Create creates the topic in.Name with the default queue count unless in
// says otherwise.
func (v HTTPTopicsView) Create(in protocol.HTTPTopicInput) (protocol.HTTPTopic, error) {
	b := v.b
	if err := ValidateTopic(in.Name); err != nil {
		return protocol.HTTPTopic{}, err
	}
	if err := checkTopicAdmin(b.groups, in.Name, false); err != nil {
		return protocol.HTTPTopic{}, err
	}
	if _, ok := b.topics.get(in.Name); ok {
		return protocol.HTTPTopic{}, fmt.Errorf("%w: %s", protocol.ErrHTTPTopicExists, in.Name)
	}
	n := b.c().DefaultTopicQueueNums
	tc := TopicConfig{TopicName: in.Name, ReadQueueNums: n, WriteQueueNums: n,
		Perm: protocol.PermRead | protocol.PermWrite, TopicFilterType: remoting.TopicFilterSingleTag}
	if err := applyTopicInput(&in, &tc); err != nil {
		return protocol.HTTPTopic{}, err
	}
	if err := b.Admin().CreateTopic(tc); err != nil {
		return protocol.HTTPTopic{}, err
	}
	b.log.Info().Str("topic", tc.TopicName).Int32("queues", tc.WriteQueueNums).Msg("topic created over HTTP")
	cur, _ := b.topics.get(tc.TopicName)
	return topicOut(cur), nil
}

// Get is a topic with its queues' offsets.
func (v HTTPTopicsView) Get(name string) (protocol.HTTPTopicDetail, error) {
	tc, ok := v.b.topics.get(name)
	if !ok {
		return protocol.HTTPTopicDetail{}, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	st, err := v.b.Admin().TopicStats(name)
	if err != nil {
		return protocol.HTTPTopicDetail{}, err
	}
	return protocol.HTTPTopicDetail{HTTPTopic: topicOut(tc), Queues: st}, nil
}

// Update changes the fields in sets.
func (v HTTPTopicsView) Update(name string, in protocol.HTTPTopicInput) (protocol.HTTPTopic, error) {
	tc, ok := v.b.topics.get(name)
	if !ok {
		return protocol.HTTPTopic{}, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	if err := applyTopicInput(&in, &tc); err != nil {
		return protocol.HTTPTopic{}, err
	}
	if err := v.b.Admin().CreateTopic(tc); err != nil {
		return protocol.HTTPTopic{}, err
	}
	cur, _ := v.b.topics.get(name)
	return topicOut(cur), nil
}

// Delete deletes a topic and forgets its receive leases.
func (v HTTPTopicsView) Delete(name string) error {
	if err := v.b.Admin().DeleteTopic(name); err != nil {
		return err
	}
	v.b.leases.forgetTopic(name)
	v.b.log.Info().Str("topic", name).Msg("topic deleted over HTTP")
	return nil
}
