package remoting

// InitProducerIDResponse is the JSON body answering INIT_PRODUCER_ID
// (request header: producerId): the epoch granted and the last sequence
// the broker stored of each queue, so that a restarted producer continues
// after it.
type InitProducerIDResponse struct {
	Epoch  int32              `json:"epoch"`
	Queues []ProducerQueueSeq `json:"queues"`
}

// ProducerQueueSeq is one queue's last stored sequence.
type ProducerQueueSeq struct {
	Topic   string `json:"topic"`
	QueueID int32  `json:"queueId"`
	LastSeq int64  `json:"lastSeq"`
}
