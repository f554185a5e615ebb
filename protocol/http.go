package protocol

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
