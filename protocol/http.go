package protocol

import (
	"encoding/base64"
	"fmt"
)

// The HTTP API's error answers are application/problem+json bodies. Their
// code reuses a RocketMQ response code where one fits; Ferry's own codes
// are in the 1000 range. Part of the API: never reuse a code.
const (
	ProblemSystemError         = RespSystemError
	ProblemBusy                = RespSystemBusy
	ProblemFlushDiskTimeout    = RespFlushDiskTimeout
	ProblemMessageIllegal      = RespMessageIllegal
	ProblemServiceNotAvailable = RespServiceNotAvailable
	ProblemNoPermission        = RespNoPermission
	ProblemTopicNotFound       = RespTopicNotExist
	ProblemTopicExists         = RespTopicExistAlready
	ProblemMessageNotFound     = RespQueryNotFound
	ProblemGroupNotFound       = RespSubscriptionGroupNotExist

	ProblemNotFound         = 1000
	ProblemMethodNotAllowed = 1001
	ProblemInvalidRequest   = 1002
	ProblemRequestTooLarge  = 1003
	ProblemUnsupportedMedia = 1004
	ProblemReceiptInvalid   = 1005
	ProblemReceiptExpired   = 1006
	ProblemGroupExists      = 1007
	ProblemQueueInvalid     = 1008
	ProblemNameInvalid      = 1009
	ProblemTxEnded          = 1010 // an HTTP transaction already committed, aborted or expired
)

// ProblemTypePrefix starts every problem's type URI; the slug follows.
const ProblemTypePrefix = "urn:ferry:problem:"

// Problem is an application/problem+json body of the HTTP API.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   int    `json:"code"`
}

// HTTPMessage is a stored message as the HTTP API shows it (pull, receive
// and lookups).
type HTTPMessage struct {
	Topic string `json:"topic"`
	// StoredTopic is set by receive when the message was read from the
	// group's retry topic (Topic is then the topic it was first sent to).
	StoredTopic      string            `json:"stored_topic,omitempty"`
	QueueID          int32             `json:"queue_id"`
	QueueOffset      int64             `json:"queue_offset"`
	CommitlogOffset  int64             `json:"commitlog_offset"`
	MsgID            string            `json:"msg_id"`
	OffsetMsgID      string            `json:"offset_msg_id"`
	Tags             string            `json:"tags"`
	Keys             []string          `json:"keys"`
	Properties       map[string]string `json:"properties"`
	SystemProperties map[string]string `json:"system_properties,omitempty"`
	Body             string            `json:"body"`
	BodyEncoding     string            `json:"body_encoding"` // "utf8" or "base64"
	BornAtMs         int64             `json:"born_at_ms"`
	StoredAtMs       int64             `json:"stored_at_ms"`
	ReconsumeTimes   int32             `json:"reconsume_times"`
	ReceiptHandle    string            `json:"receipt_handle,omitempty"`
}

// DecodedBody is the message's body, decoded from its encoding.
func (h *HTTPMessage) DecodedBody() ([]byte, error) {
	if h.BodyEncoding != "base64" {
		return []byte(h.Body), nil
	}
	b, err := base64.StdEncoding.DecodeString(h.Body)
	if err != nil {
		return nil, fmt.Errorf("protocol: message %s: malformed base64 body: %w", h.MsgID, err)
	}
	return b, nil
}

// HTTPProduceMessage is one message of a produce request.
type HTTPProduceMessage struct {
	Body         string            `json:"body"`
	BodyEncoding string            `json:"body_encoding,omitempty"` // "utf8" (the default) or "base64"
	Tags         string            `json:"tags,omitempty"`
	Keys         []string          `json:"keys,omitempty"`
	Properties   map[string]string `json:"properties,omitempty"`
	QueueID      *int32            `json:"queue_id,omitempty"` // nil: the broker picks one
	DelayLevel   int32             `json:"delay_level,omitempty"`
	DeliverAtMs  int64             `json:"deliver_at_ms,omitempty"`
}

// HTTPProduceRequest is the body of POST /v1/topics/{topic}/messages.
type HTTPProduceRequest struct {
	Messages []HTTPProduceMessage `json:"messages"`
}

// HTTPProduceResult is one message's outcome: where it went, or Error.
type HTTPProduceResult struct {
	MsgID       string   `json:"msg_id,omitempty"`
	OffsetMsgID string   `json:"offset_msg_id,omitempty"`
	QueueID     *int32   `json:"queue_id,omitempty"`
	QueueOffset *int64   `json:"queue_offset,omitempty"`
	Scheduled   bool     `json:"scheduled,omitempty"`    // stored for later delivery (delay level or delivery time)
	Duplicate   bool     `json:"duplicate,omitempty"`    // stored before, within the topic's dedup window
	FlushStatus string   `json:"flush_status,omitempty"` // "flush_disk_timeout": written, durability unconfirmed
	Error       *Problem `json:"error,omitempty"`
}

// HTTPProduceResponse is the answer to a produce request, one result per
// message in order.
type HTTPProduceResponse struct {
	Results []HTTPProduceResult `json:"results"`
}

// HTTPTopic is a topic's configuration as the HTTP API shows it.
type HTTPTopic struct {
	Name        string `json:"name"`
	ReadQueues  int32  `json:"read_queues"`
	WriteQueues int32  `json:"write_queues"`
	Perm        string `json:"perm"` // "rw", "r", "w" or "-"
	Order       bool   `json:"order"`
	DedupWindow string `json:"dedup_window,omitempty"` // a Go duration; absent when off
}

// HTTPPermText is a topic's permission as the HTTP API writes it: "rw",
// "r", "w", or "-" for neither.
func HTTPPermText(perm int32) string {
	s := ""
	if PermReadable(perm) {
		s += "r"
	}
	if PermWritable(perm) {
		s += "w"
	}
	if s == "" {
		return "-"
	}
	return s
}

// HTTPTopicDetail adds the queues' offsets (GET /v1/topics/{topic}).
type HTTPTopicDetail struct {
	HTTPTopic
	Queues []QueueStat `json:"queues"`
}

// HTTPTopicInput is the body of POST /v1/topics and PUT /v1/topics/{topic}.
// Absent fields keep their current (or default) value.
type HTTPTopicInput struct {
	Name        string  `json:"name,omitempty"`
	ReadQueues  *int32  `json:"read_queues,omitempty"`
	WriteQueues *int32  `json:"write_queues,omitempty"`
	Perm        *string `json:"perm,omitempty"`
	Order       *bool   `json:"order,omitempty"`
	DedupWindow *string `json:"dedup_window,omitempty"` // a duration ("10m"); "0" turns it off
}

// HTTPGroup is a consumer group as the HTTP API shows it.
type HTTPGroup struct {
	Name                   string `json:"name"`
	ConsumeEnable          bool   `json:"consume_enable"`
	ConsumeBroadcastEnable bool   `json:"consume_broadcast_enable"`
	RetryMaxTimes          int32  `json:"retry_max_times"`
	OnlineClients          int    `json:"online_clients"`
	Broadcast              bool   `json:"broadcast"`
}

// HTTPGroupInput is the body of POST /v1/groups and PUT /v1/groups/{group};
// absent fields keep their current (or default) value.
type HTTPGroupInput struct {
	Name                   string `json:"name,omitempty"`
	RetryMaxTimes          *int32 `json:"retry_max_times,omitempty"`
	ConsumeEnable          *bool  `json:"consume_enable,omitempty"`
	ConsumeBroadcastEnable *bool  `json:"consume_broadcast_enable,omitempty"`
}

// HTTPOffset is one queue's committed offset of a group.
type HTTPOffset struct {
	Topic   string `json:"topic"`
	QueueID int32  `json:"queue_id"`
	Offset  int64  `json:"offset"`
}

// HTTPOffsets is the answer of GET /v1/groups/{group}/offsets (Group set)
// and the body of PUT /v1/groups/{group}/offsets.
type HTTPOffsets struct {
	Group   string       `json:"group,omitempty"`
	Offsets []HTTPOffset `json:"offsets"`
}

// HTTPLagRow is one queue of GET /v1/groups/{group}/lag: the group's lag
// and how many of its messages are leased out (received, not yet acked).
type HTTPLagRow struct {
	QueueLag
	Inflight int `json:"inflight"`
}

// HTTPLag is the answer of GET /v1/groups/{group}/lag.
type HTTPLag struct {
	Rows  []HTTPLagRow `json:"rows"`
	Total int64        `json:"total"`
}

// HTTPOffsetReset is the body of POST /v1/groups/{group}/offsets/reset.
type HTTPOffsetReset struct {
	Topic   string `json:"topic"`
	To      string `json:"to"` // earliest, latest, timestamp or offset
	Value   int64  `json:"value"`
	Execute bool   `json:"execute"`
}

// HTTPOffsetChange is one queue's offset before and after a reset.
type HTTPOffsetChange struct {
	QueueID int32 `json:"queue_id"`
	Old     int64 `json:"old"` // -1: nothing committed
	New     int64 `json:"new"`
}

// HTTPOffsetResetResult is the answer of an offset reset.
type HTTPOffsetResetResult struct {
	Offsets  []HTTPOffsetChange `json:"offsets"`
	Executed bool               `json:"executed"`
}

// HTTPDLQResend is the body of POST /v1/groups/{group}/dlq/resend: the dead
// letters at Offsets, or All of them, to Target ("topic" or "retry").
type HTTPDLQResend struct {
	Offsets []int64 `json:"offsets,omitempty"`
	All     bool    `json:"all,omitempty"`
	Target  string  `json:"target"`
}

// DLQResendResult is the answer of a resend (POST
// /v1/groups/{group}/dlq/resend, and FERRY_DLQ_RESEND with Group set).
type DLQResendResult struct {
	Group  string `json:"group,omitempty"`
	Resent int    `json:"resent"`
	// Skipped counts dead letters left alone because they were resent
	// before (each is resent once).
	Skipped int `json:"skipped"`
}

// HTTPMessages is a list of messages: the answer of a receive and of a
// lookup by key.
type HTTPMessages struct {
	Messages []HTTPMessage `json:"messages"`
}

// HTTPQueueRead is the answer of GET /v1/topics/{topic}/queues/{q}/messages.
type HTTPQueueRead struct {
	Messages   []HTTPMessage `json:"messages"`
	NextOffset int64         `json:"next_offset"`
	MinOffset  int64         `json:"min_offset"`
	MaxOffset  int64         `json:"max_offset"`
}

// HTTPReceive is the body of POST /v1/groups/{group}/receive.
type HTTPReceive struct {
	Topic        string `json:"topic"`
	Max          *int   `json:"max,omitempty"` // absent: the broker's default; 0 is refused, as on queue reads
	VisibilityMs int64  `json:"visibility_ms"`
	WaitMs       int64  `json:"wait_ms"`
	Tag          string `json:"tag"`
}

// HTTPReceiptHandles is the body of POST /v1/groups/{group}/ack and /nack.
type HTTPReceiptHandles struct {
	ReceiptHandles []string `json:"receipt_handles"`
}
