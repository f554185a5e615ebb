package remoting

// Typed headers of the produce and consume paths. Each writes its fields in
// a fixed order, the same keys the official clients send (see PROTOCOL in
// the protocol package), so a command built from one encodes without a map
// or a sort.

// SendHeader is the header of SEND_MESSAGE (V2 false: long key names) and of
// SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE (V2 true: the one-letter names "a"
// to "n").
type SendHeader struct {
	V2                    bool
	ProducerGroup         string
	Topic                 string
	DefaultTopic          string
	DefaultTopicQueueNums int32
	QueueID               int32
	SysFlag               int32
	BornTimestamp         int64
	Flag                  int32
	Properties            string
	ReconsumeTimes        int32
	UnitMode              bool
	// MaxReconsumeTimes is written only when HasMaxReconsumeTimes is set.
	MaxReconsumeTimes    int32
	HasMaxReconsumeTimes bool
	Batch                bool
	// BrokerName is written when not empty ("bname" / "n").
	BrokerName string
}

// sendKeys are the key names of SendHeader's fields: [0] long, [1] V2.
var sendKeys = [14][2]string{
	{"producerGroup", "a"}, {"topic", "b"}, {"defaultTopic", "c"}, {"defaultTopicQueueNums", "d"},
	{"queueId", "e"}, {"sysFlag", "f"}, {"bornTimestamp", "g"}, {"flag", "h"}, {"properties", "i"},
	{"reconsumeTimes", "j"}, {"unitMode", "k"}, {"maxReconsumeTimes", "l"}, {"batch", "m"}, {"bname", "n"},
}

// AppendFields implements Header.
func (h *SendHeader) AppendFields(w FieldWriter) FieldWriter {
	k := 0
	if h.V2 {
		k = 1
	}
	w.String(sendKeys[0][k], h.ProducerGroup)
	w.String(sendKeys[1][k], h.Topic)
	w.String(sendKeys[2][k], h.DefaultTopic)
	w.Int(sendKeys[3][k], int64(h.DefaultTopicQueueNums))
	w.Int(sendKeys[4][k], int64(h.QueueID))
	w.Int(sendKeys[5][k], int64(h.SysFlag))
	w.Int(sendKeys[6][k], h.BornTimestamp)
	w.Int(sendKeys[7][k], int64(h.Flag))
	w.String(sendKeys[8][k], h.Properties)
	w.Int(sendKeys[9][k], int64(h.ReconsumeTimes))
	w.Bool(sendKeys[10][k], h.UnitMode)
	if h.HasMaxReconsumeTimes {
		w.Int(sendKeys[11][k], int64(h.MaxReconsumeTimes))
	}
	w.Bool(sendKeys[12][k], h.Batch)
	if h.BrokerName != "" {
		w.String(sendKeys[13][k], h.BrokerName)
	}
	return w
}

// SendMultiHeader is the header of FERRY_SEND_MULTI: the producer group
// under key "a".
type SendMultiHeader struct {
	ProducerGroup string
}

// AppendFields implements Header.
func (h *SendMultiHeader) AppendFields(w FieldWriter) FieldWriter {
	w.String("a", h.ProducerGroup)
	return w
}

// PullHeader is the header of PULL_MESSAGE.
type PullHeader struct {
	ConsumerGroup        string
	Topic                string
	QueueID              int32
	QueueOffset          int64
	MaxMsgNums           int32
	SysFlag              int32
	CommitOffset         int64
	SuspendTimeoutMillis int64
	Subscription         string
	SubVersion           int64
	ExpressionType       string
	// BrokerName is written when not empty ("bname").
	BrokerName string
}

// AppendFields implements Header.
func (h *PullHeader) AppendFields(w FieldWriter) FieldWriter {
	w.String("consumerGroup", h.ConsumerGroup)
	w.String("topic", h.Topic)
	w.Int("queueId", int64(h.QueueID))
	w.Int("queueOffset", h.QueueOffset)
	w.Int("maxMsgNums", int64(h.MaxMsgNums))
	w.Int("sysFlag", int64(h.SysFlag))
	w.Int("commitOffset", h.CommitOffset)
	w.Int("suspendTimeoutMillis", h.SuspendTimeoutMillis)
	w.String("subscription", h.Subscription)
	w.Int("subVersion", h.SubVersion)
	w.String("expressionType", h.ExpressionType)
	if h.BrokerName != "" {
		w.String("bname", h.BrokerName)
	}
	return w
}

// SendResponseHeader is the header of a send's answer.
type SendResponseHeader struct {
	MsgID       string
	QueueID     int32
	QueueOffset int64
	// TransactionID is written when not empty.
	TransactionID string
	// MsgRegion and TraceOn are written when not empty (MSG_REGION,
	// TRACE_ON).
	MsgRegion string
	TraceOn   string
}

// AppendFields implements Header.
func (h *SendResponseHeader) AppendFields(w FieldWriter) FieldWriter {
	w.String("msgId", h.MsgID)
	w.Int("queueId", int64(h.QueueID))
	w.Int("queueOffset", h.QueueOffset)
	if h.TransactionID != "" {
		w.String("transactionId", h.TransactionID)
	}
	if h.MsgRegion != "" {
		w.String("MSG_REGION", h.MsgRegion)
	}
	if h.TraceOn != "" {
		w.String("TRACE_ON", h.TraceOn)
	}
	return w
}

// PullResponseHeader is the header of PULL_MESSAGE's answer.
type PullResponseHeader struct {
	NextBeginOffset      int64
	MinOffset            int64
	MaxOffset            int64
	SuggestWhichBrokerID int64
}

// AppendFields implements Header.
func (h *PullResponseHeader) AppendFields(w FieldWriter) FieldWriter {
	w.Int("nextBeginOffset", h.NextBeginOffset)
	w.Int("minOffset", h.MinOffset)
	w.Int("maxOffset", h.MaxOffset)
	w.Int("suggestWhichBrokerId", h.SuggestWhichBrokerID)
	return w
}
