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
