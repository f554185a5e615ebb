package broker

import (
	"fmt"
	"strings"

	"github.com/ferrymq/ferry/protocol"
)

// System topics (protocol.IsReservedTopic) are written by the broker alone: delay
// levels and timers (SCHEDULE_TOPIC_XXXX, FERRY_SYS_TIMER), send-backs and
// dead letters (%RETRY%, %DLQ%). Those internal writes append to the
// commitlog directly; the checks here guard the doors a client comes in by.

// checkSendTopic refuses an ordinary send (remoting or HTTP) to a system
// topic. The one exception is RocketMQ's: a send to %RETRY%<group> that is
// a client's send-back made as a plain send (it carries RETRY_TOPIC) for a
// group that exists.
func (b *Broker) checkSendTopic(topic, properties string) error {
	if !protocol.IsReservedTopic(topic) {
		return nil
	}
	if group, ok := strings.CutPrefix(topic, protocol.RetryTopicPrefix); ok {
		if _, sendBack := protocol.Property([]byte(properties), protocol.PropRetryTopic); sendBack {
			if _, exists := b.groups.get(group); exists {
				return nil
			}
			return fmt.Errorf("%w: %s: consumer group %s does not exist", ErrTopicSystem, topic, group)
		}
	}
	return fmt.Errorf("%w: %s is reserved for the broker's own use: sends cannot write it", ErrTopicSystem, topic)
}

// checkTopicAdmin refuses to create, update or (when deleting) delete a
// system topic by topic administration. A dead-letter topic may be deleted
// (the transports ask for a confirmation: the CLI's --yes, the HTTP API's
// ?confirm=), and so may the retry topic of a group that no longer exists.
func checkTopicAdmin(groups *groupTable, topic string, deleting bool) error {
	if !protocol.IsReservedTopic(topic) {
		return nil
	}
	if !deleting {
		return fmt.Errorf("%w: %s is reserved for the broker's own use: the broker creates and configures it", ErrTopicSystem, topic)
	}
	if protocol.IsDLQTopic(topic) {
		return nil
	}
	if group, ok := strings.CutPrefix(topic, protocol.RetryTopicPrefix); ok {
		if _, exists := groups.get(group); !exists {
			return nil
		}
		return fmt.Errorf("%w: %s is the retry topic of consumer group %s: delete the group first", ErrTopicSystem, topic, group)
	}
	return fmt.Errorf("%w: %s is reserved for the broker's own use and cannot be deleted", ErrTopicSystem, topic)
}
