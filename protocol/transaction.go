package protocol

// OpenTransaction is a half message no commit, rollback or parking has
// closed yet: the body of FERRY_TX_LIST's answer (a JSON array) and of
// GET /v1/transactions.
type OpenTransaction struct {
	// CommitLogOffset is the half's commitlog offset (END_TRANSACTION's
	// commitLogOffset); QueueOffset its offset in the half topic.
	CommitLogOffset int64  `json:"commit_log_offset"`
	QueueOffset     int64  `json:"queue_offset"`
	ProducerGroup   string `json:"producer_group"`
	Topic           string `json:"topic"`
	QueueID         int32  `json:"queue_id"`
	MsgID           string `json:"msg_id"` // the client's message id (UNIQ_KEY)
	StoredMs        int64  `json:"stored_ms"`
	AgeMs           int64  `json:"age_ms"`
	Checks          int    `json:"checks"` // check-backs sent so far
	// HTTPTx is the HTTP transaction the half belongs to, ExpiresMs when
	// the broker rolls that transaction back (both empty otherwise).
	HTTPTx    string `json:"http_tx,omitempty"`
	ExpiresMs int64  `json:"expires_ms,omitempty"`
}

// ProducerState is an idempotent producer as the broker knows it: the
// body of FERRY_PRODUCER_LIST's answer (a JSON array) and of
// GET /v1/producers.
type ProducerState struct {
	ID         string          `json:"id"`
	Epoch      int32           `json:"epoch"`
	LastSeenMs int64           `json:"last_seen_ms"`
	Queues     []ProducerQueue `json:"queues"` // by topic, then queue
}

// ProducerQueue is the last sequence a producer stored on one queue.
type ProducerQueue struct {
	Topic   string `json:"topic"`
	QueueID int32  `json:"queue_id"`
	LastSeq int64  `json:"last_seq"`
}
