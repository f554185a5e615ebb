package protocol

// The HTTP API's statistics and tracing answers (GET /v1/stats/topics,
// /v1/stats/groups, /v1/delayed and /v1/messages/{msgId}/trace).

// HTTPTopicStat is one topic in GET /v1/stats/topics.
type HTTPTopicStat struct {
	HTTPTopic
	Kind     string  `json:"kind"` // "normal", "retry", "dlq" or "system"
	Messages int64   `json:"messages"`
	InRate   float64 `json:"in_per_s"`
	OutRate  float64 `json:"out_per_s"`
}

// HTTPGroupStat is one group in GET /v1/stats/groups.
type HTTPGroupStat struct {
	HTTPGroup
	Lag        int64   `json:"lag"`
	LagHistory []int64 `json:"lag_history"` // total lag every 10 s, oldest first
	Retry      int64   `json:"retry_messages"`
	DLQ        int64   `json:"dlq_messages"`
}

// HTTPDelayLevel is one delay level's backlog in GET /v1/delayed.
type HTTPDelayLevel struct {
	Level     int   `json:"level"`
	DelayMs   int64 `json:"delay_ms"`
	Pending   int64 `json:"pending"`
	NextDueMs int64 `json:"next_due_ms,omitempty"`
}

// HTTPTraceCopy is a copy of a traced message in a retry, dead-letter or
// its original topic.
type HTTPTraceCopy struct {
	Group          string `json:"group"`
	Topic          string `json:"topic"`
	QueueID        int32  `json:"queue_id"`
	QueueOffset    int64  `json:"queue_offset"`
	OffsetMsgID    string `json:"offset_msg_id"`
	StoredAtMs     int64  `json:"stored_at_ms"`
	ReconsumeTimes int32  `json:"reconsume_times"`
}

// HTTPTraceGroup is one group's progress past a traced message's queue.
type HTTPTraceGroup struct {
	Group           string `json:"group"`
	CommittedOffset int64  `json:"committed_offset"`
	Consumed        bool   `json:"consumed"`
	Online          int    `json:"online_clients"`
}

// HTTPTrace is the life of a message (GET /v1/messages/{msgId}/trace).
type HTTPTrace struct {
	Message    HTTPMessage      `json:"message"`
	Scheduled  *HTTPMessage     `json:"scheduled,omitempty"` // the copy waiting in the schedule or timer topic
	Groups     []HTTPTraceGroup `json:"groups"`
	Retries    []HTTPTraceCopy  `json:"retries"`
	DeadLetter []HTTPTraceCopy  `json:"dead_letters"`
	Resent     []HTTPTraceCopy  `json:"resent"` // later copies in the original topic (resent dead letters or messages)
	Scanned    int              `json:"scanned"`
	Truncated  bool             `json:"truncated"`
}
