package protocol

// SubscriptionGroupConfig is a consumer group's configuration as the
// remoting admin requests carry it (RocketMQ's SubscriptionGroupConfig,
// JSON field names as Java writes them).
type SubscriptionGroupConfig struct {
	GroupName              string `json:"groupName"`
	ConsumeEnable          bool   `json:"consumeEnable"`
	ConsumeFromMinEnable   bool   `json:"consumeFromMinEnable"`
	ConsumeBroadcastEnable bool   `json:"consumeBroadcastEnable"`
	RetryQueueNums         int32  `json:"retryQueueNums"`
	RetryMaxTimes          int32  `json:"retryMaxTimes"`
	BrokerID               int64  `json:"brokerId"`
	WhichBrokerWhenSlow    int64  `json:"whichBrokerWhenConsumeSlowly"`
	NotifyConsumerIDs      bool   `json:"notifyConsumerIdsChangedEnable"`
}

// GroupState is a group's configuration with whether clients are online:
// one entry of the FERRY_GROUP_LIST answer.
type GroupState struct {
	SubscriptionGroupConfig
	Online    int  `json:"online_clients"`
	Broadcast bool `json:"broadcast"`
}

// QueueStat is one queue's offsets and last store time (the HTTP topic
// detail, and the GET_TOPIC_STATS_INFO answer).
type QueueStat struct {
	QueueID     int32 `json:"queue_id"`
	MinOffset   int64 `json:"min_offset"`
	MaxOffset   int64 `json:"max_offset"`
	LastStoreMs int64 `json:"last_store_ms"` // 0: the queue is empty
}

// TopicStats is the GET_TOPIC_STATS_INFO answer.
type TopicStats struct {
	Topic  string      `json:"topic"`
	Queues []QueueStat `json:"queues"`
}

// QueueLag is a group's committed offset and lag on one queue.
type QueueLag struct {
	Topic          string `json:"topic"`
	QueueID        int32  `json:"queue_id"`
	BrokerOffset   int64  `json:"broker_offset"`
	ConsumerOffset int64  `json:"consumer_offset"`
	Lag            int64  `json:"lag"`
}

// ConsumeStats is the GET_CONSUME_STATS answer.
type ConsumeStats struct {
	Group  string     `json:"group"`
	Queues []QueueLag `json:"queues"`
}

// BrokerRuntime is a broker's run-time status: the GET_BROKER_RUNTIME_INFO
// answer and GET /v1/broker.
type BrokerRuntime struct {
	BrokerName     string  `json:"broker_name"`
	ClusterName    string  `json:"cluster_name"`
	BrokerID       int64   `json:"broker_id"`
	Addr           string  `json:"addr"`
	Version        string  `json:"version"`
	Flush          string  `json:"flush"`
	Writable       bool    `json:"writable"`
	NotWritableWhy string  `json:"not_writable_reason,omitempty"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	CommitlogMin   int64   `json:"commitlog_min_offset"`
	CommitlogMax   int64   `json:"commitlog_max_offset"`
	FlushedOffset  int64   `json:"commitlog_flushed_offset"`
	Dispatched     int64   `json:"dispatched_offset"`
	DiskUsedRatio  float64 `json:"disk_used_ratio"`
	Topics         int     `json:"topics"`
	Groups         int     `json:"groups"`
	Producers      int     `json:"producers"`
	Consumers      int     `json:"consumers"`
	MsgInTotal     float64 `json:"msg_in_total"`
	MsgOutTotal    float64 `json:"msg_out_total"`
	// Replication is the broker's part in its group (role "standalone"
	// when replication is off).
	Replication ReplicationStatus `json:"replication"`
}

// ReplicationStatus is a broker's replication state (GET /v1/broker, and
// each broker's "replication" in GET /v1/cluster).
//
// Lag: LagBytes is what a slave lacks of its master's log end; LagSeconds
// is how long ago the slave last held the master's whole log (0 while it
// does). On a master they are those of its furthest-behind slave, on a
// slave its own lag against the master's end as the master last reported
// it to the control plane (MasterEndOffset).
type ReplicationStatus struct {
	Role         string          `json:"role"` // "master", "slave" or "standalone"
	ReplicaID    int64           `json:"replica_id"`
	Epoch        int64           `json:"epoch"`
	MasterAddr   string          `json:"master_addr"`
	InSync       []int64         `json:"in_sync"`
	CommitOffset int64           `json:"commit_offset"`
	MaxOffset    int64           `json:"max_offset"`
	LagBytes     int64           `json:"lag_bytes"`
	LagSeconds   float64         `json:"lag_seconds"`
	Replicas     []ReplicaStatus `json:"replicas"`
	Error        string          `json:"error,omitempty"` // the last heartbeat or stream failure
	// MasterEndOffset (on a slave) is the master's log end as it last
	// reported it.
	MasterEndOffset int64 `json:"master_end_offset,omitempty"`
	// CatchUp (on a slave out of the in-sync set that lacks data) is its
	// catch-up progress.
	CatchUp *CatchUpStatus `json:"catch_up,omitempty"`
}

// CatchUpStatus is a slave's catch-up progress: it began at FromOffset
// (its log end then) ElapsedSeconds ago; DoneBytes of TotalBytes (up to
// the master's end as last reported) are copied, RemainingBytes lack, at
// RateBytesPerSec on average.
type CatchUpStatus struct {
	FromOffset      int64   `json:"from_offset"`
	DoneBytes       int64   `json:"done_bytes"`
	TotalBytes      int64   `json:"total_bytes"`
	RemainingBytes  int64   `json:"remaining_bytes"`
	RateBytesPerSec float64 `json:"rate_bytes_per_sec"`
	ElapsedSeconds  float64 `json:"elapsed_seconds"`
}

// ReplicaStatus is one slave as its master sees it: LagBytes is the
// master's end less what the slave acknowledged, LagSeconds how long ago
// the slave last held the master's end (0 when it does).
type ReplicaStatus struct {
	ID          int64   `json:"id"`
	Addr        string  `json:"addr"`
	InSync      bool    `json:"in_sync"`
	AckedOffset int64   `json:"acked_offset"`
	LagBytes    int64   `json:"lag_bytes"`
	LagSeconds  float64 `json:"lag_seconds"`
}

// DeadLetter is one message of a group's dead-letter queue as the DLQ
// listings show it.
type DeadLetter struct {
	QueueOffset    int64  `json:"queue_offset"`
	CommitOffset   int64  `json:"commitlog_offset"`
	MsgID          string `json:"msg_id"`
	OriginMsgID    string `json:"origin_msg_id,omitempty"`
	Topic          string `json:"topic"` // the topic it was consumed from first
	Tags           string `json:"tags,omitempty"`
	Keys           string `json:"keys,omitempty"`
	ReconsumeTimes int32  `json:"reconsume_times"`
	FailedAtMillis int64  `json:"failed_at_ms"`
	BornAtMillis   int64  `json:"born_at_ms"`
	BodySize       int    `json:"body_size"`
	// OffsetMsgID names this copy (in the DLQ) exactly; MsgID is shared
	// with the original and its retries.
	OffsetMsgID string `json:"offset_msg_id"`
	// ResentAtMillis and ResentTo ("topic" or "retry") say that it was
	// resent (the broker fills them in).
	ResentAtMillis int64  `json:"resent_at_ms,omitempty"`
	ResentTo       string `json:"resent_to,omitempty"`
}

// DLQPage is one page of a DLQ listing (FERRY_DLQ_LIST, GET
// /v1/groups/{group}/dlq); Next is the queue offset to ask from next.
type DLQPage struct {
	Group       string       `json:"group,omitempty"`
	DeadLetters []DeadLetter `json:"dead_letters"`
	Next        int64        `json:"next"`
}
