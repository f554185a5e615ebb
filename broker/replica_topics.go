package broker

import (
	"strings"
	"sync"

	"github.com/ferrymq/ferry/protocol"
)

// A topic deleted on the master reaches its slaves as a metadata record
// (metalog.go), which removes it from their topic tables as it is
// applied. Its consume-queue files and queue offsets are the slave's own:
// the applier (a dispatch listener, which may not call back into the
// consume queues) queues the name here and housekeeping removes them.
// Every topic change a slave applies also re-registers it with the name
// servers, so the routes it advertises follow the master's.

// topicDrops is the queue of topics deleted on the master whose local
// files a slave still has.
type topicDrops struct {
	mu    sync.Mutex
	names []string
	bell  chan struct{} // 1-slot: names were queued
}

// onReplicatedTopicChange is the applier's hook for a topic put or
// delete; it acts only while this broker follows a master's log.
func (b *Broker) onReplicatedTopicChange(kind uint8, name string) {
	if !b.offsets.follow.Load() {
		return
	}
	if kind == metaTopicDelete {
		b.topicDrops.mu.Lock()
		b.topicDrops.names = append(b.topicDrops.names, name)
		b.topicDrops.mu.Unlock()
		select {
		case b.topicDrops.bell <- struct{}{}:
		default:
		}
	}
	b.registrar.trigger()
}

// dropDeletedTopics removes the consume queues and queue offsets of the
// topics the master deleted (housekeeping). A topic created again since
// keeps them: its queues are the new topic's.
func (b *Broker) dropDeletedTopics() {
	b.topicDrops.mu.Lock()
	names := b.topicDrops.names
	b.topicDrops.names = nil
	b.topicDrops.mu.Unlock()
	for _, name := range names {
		if _, ok := b.topics.get(name); ok {
			b.log.Info().Str("topic", name).Msg("replication: topic deleted and created again on the master; its queues stay")
			continue
		}
		if err := b.cq.DeleteTopic(name); err != nil {
			b.log.Error().Err(err).Str("topic", name).Msg("replication: cannot remove the consume queues of a topic the master deleted")
			continue
		}
		b.clog.DeleteQueue(name)
		if group, ok := strings.CutPrefix(name, protocol.DLQTopicPrefix); ok {
			if err := b.meta.forgetResent(group); err != nil {
				b.log.Error().Err(err).Str("topic", name).Msg("replication: cannot forget the resent dead letters of a deleted topic")
			}
		}
		b.log.Info().Str("topic", name).Msg("replication: topic deleted on the master; its consume queues are removed here")
	}
}
