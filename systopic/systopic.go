// Package systopic names the topics a broker reserves for itself: the one
// definition of them that the broker, the SDK and the CLI share.
//
// Ordinary sends cannot write a system topic, and topic administration
// cannot create or update one; the broker writes them itself (delay
// levels, timers, retries, dead letters). The exceptions, kept as RocketMQ
// keeps them: a send to %RETRY%<group> made as a send-back (it carries the
// RETRY_TOPIC property) for a group that exists, the deletion of a
// dead-letter topic (with an explicit confirmation) and of the retry topic
// of a group that no longer exists.
package systopic

import "strings"

// The reserved names. Part of the protocol: clients and tools rely on them.
const (
	// AutoCreateTemplate is the topic whose config auto-created topics copy.
	AutoCreateTemplate = "TBW102"
	// Schedule holds messages with a delay level until due.
	Schedule = "SCHEDULE_TOPIC_XXXX"
	// Timer holds messages with an arbitrary delivery time until due.
	Timer = "FERRY_SYS_TIMER"
	// TransHalf and TransOpHalf hold transactional messages and their
	// commit/rollback records.
	TransHalf   = "RMQ_SYS_TRANS_HALF_TOPIC"
	TransOpHalf = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
	// Trace holds message traces.
	Trace = "RMQ_SYS_TRACE_TOPIC"
	// RetryPrefix and DLQPrefix start a group's retry and dead-letter
	// topics.
	RetryPrefix = "%RETRY%"
	DLQPrefix   = "%DLQ%"
	// sysPrefix starts every other name RocketMQ reserves.
	sysPrefix = "RMQ_SYS_"
)

// ToolsGroup is the consumer group of tools that read topics without a
// group of their own (RocketMQ's TOOLS_CONSUMER): a broker neither stores
// it nor lists it, and it commits no offsets.
const ToolsGroup = "TOOLS_CONSUMER"

// Retry and DLQ name a group's retry and dead-letter topics.
func Retry(group string) string { return RetryPrefix + group }
func DLQ(group string) string   { return DLQPrefix + group }

// IsRetry and IsDLQ report a group's retry and dead-letter topics.
func IsRetry(topic string) bool { return strings.HasPrefix(topic, RetryPrefix) }
func IsDLQ(topic string) bool   { return strings.HasPrefix(topic, DLQPrefix) }

// Group is the group a retry or dead-letter topic belongs to.
func Group(topic string) (string, bool) {
	if g, ok := strings.CutPrefix(topic, RetryPrefix); ok {
		return g, true
	}
	return strings.CutPrefix(topic, DLQPrefix)
}

// Is reports every reserved topic.
func Is(topic string) bool {
	switch topic {
	case AutoCreateTemplate, Schedule, Timer, TransHalf, TransOpHalf, Trace:
		return true
	}
	return IsRetry(topic) || IsDLQ(topic) || strings.HasPrefix(topic, sysPrefix)
}

// IsScheduled reports the topics that hold messages until they are due.
func IsScheduled(topic string) bool { return topic == Schedule || topic == Timer }
