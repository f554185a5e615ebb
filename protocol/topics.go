package protocol

import "strings"

// System topic names and prefixes (RocketMQ's TopicValidator and
// MixAll, and Ferry's timer topic). Part of the protocol: clients and
// tools recognise these names.
const (
	// RetryTopicPrefix + group is the topic a group's failed messages are
	// redelivered from.
	RetryTopicPrefix = "%RETRY%"
	// DLQTopicPrefix + group is the group's dead-letter topic.
	DLQTopicPrefix = "%DLQ%"
	// AutoCreateTopicTemplate is the template topic a producer names when
	// it asks the broker to create a topic on first send.
	AutoCreateTopicTemplate = "TBW102"
	// ScheduleTopic holds messages sent with a delay level until due.
	ScheduleTopic = "SCHEDULE_TOPIC_XXXX"
	// TimerTopic holds messages with an arbitrary delivery time until due.
	TimerTopic = "FERRY_SYS_TIMER"
	// MetaTopic holds the broker's metadata changes (topic and group
	// config, consumer offsets, delay progress) as records in the shared
	// commitlog, so that every replica replaying the log ends with the same
	// metadata. Only the broker writes it.
	MetaTopic = "FERRY_SYS_META"
	// TransHalfTopic and TransOpHalfTopic are RocketMQ's transaction
	// topics: half messages and their commit/rollback operations.
	TransHalfTopic   = "RMQ_SYS_TRANS_HALF_TOPIC"
	TransOpHalfTopic = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
	// TransCheckMaxTimeTopic holds the halves the broker gave up checking
	// (RocketMQ's name), for operators to inspect.
	TransCheckMaxTimeTopic = "TRANS_CHECK_MAX_TIME_TOPIC"
	// TraceTopic is RocketMQ's default message-trace topic.
	TraceTopic = "RMQ_SYS_TRACE_TOPIC"
)

// MaxGroupLen is the longest consumer or producer group name (topics:
// MaxTopicLen).
const MaxGroupLen = 255

// RetryTopic is the retry topic of a consumer group.
func RetryTopic(group string) string { return RetryTopicPrefix + group }

// DLQTopic is the dead-letter topic of a consumer group.
func DLQTopic(group string) string { return DLQTopicPrefix + group }

// IsSystemTopic reports the broker's internal topics, which users may not
// create or delete by hand: the auto-create template and the schedule and
// timer topics and the metadata topic.
func IsSystemTopic(t string) bool {
	return t == AutoCreateTopicTemplate || t == ScheduleTopic || t == TimerTopic || t == MetaTopic
}

// IsGroupTopic reports a retry or dead-letter topic of a consumer group.
func IsGroupTopic(t string) bool {
	return strings.HasPrefix(t, RetryTopicPrefix) || strings.HasPrefix(t, DLQTopicPrefix)
}

// sysTopicPrefix starts every other topic name RocketMQ reserves.
const sysTopicPrefix = "RMQ_SYS_"

// ToolsConsumerGroup is the group RocketMQ's tools read with: the broker
// never stores it, so a tool that reads a topic leaves no group behind.
const ToolsConsumerGroup = "TOOLS_CONSUMER"

// IsRetryTopic reports a group's retry topic.
func IsRetryTopic(t string) bool { return strings.HasPrefix(t, RetryTopicPrefix) }

// IsDLQTopic reports a group's dead-letter topic.
func IsDLQTopic(t string) bool { return strings.HasPrefix(t, DLQTopicPrefix) }

// GroupOfTopic returns the group a retry or dead-letter topic belongs to.
func GroupOfTopic(t string) (string, bool) {
	if g, ok := strings.CutPrefix(t, RetryTopicPrefix); ok {
		return g, true
	}
	return strings.CutPrefix(t, DLQTopicPrefix)
}

// IsReservedTopic reports every topic the broker reserves for its own
// use — the system topics, the transaction and trace topics, any other
// RMQ_SYS_ name, and the groups' retry and dead-letter topics. Ordinary
// sends and topic admin may not write them.
func IsReservedTopic(t string) bool {
	switch t {
	case AutoCreateTopicTemplate, ScheduleTopic, TimerTopic, MetaTopic, TransHalfTopic, TransOpHalfTopic, TransCheckMaxTimeTopic, TraceTopic:
		return true
	}
	return IsGroupTopic(t) || strings.HasPrefix(t, sysTopicPrefix)
}

// IsScheduledTopic reports the topics that hold messages until due.
func IsScheduledTopic(t string) bool { return t == ScheduleTopic || t == TimerTopic }
