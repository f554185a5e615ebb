package broker

import (
	"fmt"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Drain stops (true) or resumes (false) accepting sends. A drained broker
// registers its queues read-only, so producers move elsewhere while
// consumers drain it.
func (a *Admin) Drain(on bool) {
	a.drained.Store(on)
	a.log.Info().Bool("drained", on).Msg("drain state changed")
	a.registrar.wait()
}

// GroupInfo is a group's config and whether clients are online.
type GroupInfo = protocol.GroupState

// Groups lists every configured group.
func (a *Admin) Groups() []GroupInfo {
	var out []GroupInfo
	for _, g := range a.groups.all() {
		gi := GroupInfo{SubscriptionGroupConfig: g, Online: len(a.clients.consumerIDs(g.GroupName))}
		_, model := a.clients.subscriptionOf(g.GroupName, protocol.RetryTopic(g.GroupName))
		gi.Broadcast = model == remoting.MessageModelBroadcast
		out = append(out, gi)
	}
	return out
}

// PutGroup creates or updates a group config (refused while the data disk
// is full; groups created on first use are not).
func (a *Admin) PutGroup(gc GroupConfig) error {
	if err := a.meta.writable(); err != nil {
		return err
	}
	return a.groups.put(gc)
}

// Group returns a group's config.
func (a *Admin) Group(name string) (GroupConfig, bool) { return a.groups.get(name) }

// Topic returns a topic's config.
func (a *Admin) Topic(name string) (TopicConfig, bool) { return a.topics.get(name) }

// Topics lists the topic names.
func (a *Admin) Topics() []string { return a.topics.names() }

// GroupClients lists a group's online clients.
func (a *Admin) GroupClients(group string) []ClientInfo { return a.clients.clients(group) }

// ResetOffset sets a group's committed offsets of topic: every queue to
// the offset offsetFor returns. The group must have no online consumers
// (they would overwrite the reset with their in-memory offsets), as
// Kafka's reset requires an inactive group.
func (a *Admin) ResetOffset(group, topic string, offsetFor func(q int32) (int64, error)) (map[int32]int64, error) {
	if n := len(a.clients.consumerIDs(group)); n > 0 {
		return nil, fmt.Errorf("%w: group %s has %d online consumers; stop them before resetting offsets", ErrInvalidRequest, group, n)
	}
	tc, ok := a.topics.get(topic)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	out := map[int32]int64{}
	for q := int32(0); q < tc.ReadQueueNums; q++ {
		off, err := offsetFor(q)
		if err != nil {
			return nil, err
		}
		off = max(a.minOffset(topic, q), min(off, a.cq.MaxOffset(topic, q)))
		out[q] = off
	}
	if err := a.offsets.writable(); err != nil {
		return nil, err
	}
	for q, off := range out {
		a.offsets.set(group, topic, q, off)
	}
	return out, a.offsets.flush()
}

// QueueOffsetAt answers the offset-reset targets of a queue: "earliest",
// "latest", a store time in ms ("time"), or an explicit offset.
func (a *Admin) QueueOffsetAt(topic string, q int32, to string, value int64) (int64, error) {
	switch to {
	case "earliest":
		return a.cq.MinOffset(topic, q)
	case "latest":
		return a.cq.MaxOffset(topic, q), nil
	case "time":
		return a.cq.OffsetByTime(topic, q, value)
	case "offset":
		return value, nil
	}
	return 0, fmt.Errorf("%w: reset target %q: want earliest, latest, time or offset", ErrInvalidRequest, to)
}

// ConfigMap returns the configuration in force as TOML key → value text.
func (a *Admin) ConfigMap() map[string]string { return a.conf.asMap() }

// SetConfig changes one run-time configurable key and keeps the change
// across restarts (a kept change wins over the config file, the
// environment and the flags).
func (a *Admin) SetConfig(key, value string) error { return a.conf.set(key, value) }
