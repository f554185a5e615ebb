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
