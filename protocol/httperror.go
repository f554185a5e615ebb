package protocol

// HTTPError is an error class of the HTTP API: the status, code, type
// slug and title of the problem that answers it. Errors of the class wrap
// it (fmt.Errorf("%w: ...", ErrHTTPBadInput)).
type HTTPError struct {
	Status int
	Code   int
	Slug   string
	Title  string
	// RetryAfter, when positive, is sent as Retry-After (seconds).
	RetryAfter int
}

// Error is the class's title as the broker words it (a problem's detail
// starts with it).
func (e *HTTPError) Error() string { return "broker: " + e.Title }

// Problem is the body of an error of the class with detail.
func (e *HTTPError) Problem(detail string) Problem {
	return Problem{Type: ProblemTypePrefix + e.Slug, Title: e.Title, Status: e.Status, Detail: detail, Code: e.Code}
}

// The HTTP API's own error classes; the broker's other errors map to
// problems in the HTTP API's package.
var (
	ErrHTTPRouteNotFound    = &HTTPError{Status: 404, Code: ProblemNotFound, Slug: "not-found", Title: "no such resource"}
	ErrHTTPMethodNotAllowed = &HTTPError{Status: 405, Code: ProblemMethodNotAllowed, Slug: "method-not-allowed", Title: "method not allowed"}
	ErrHTTPBadInput         = &HTTPError{Status: 400, Code: ProblemInvalidRequest, Slug: "invalid-request", Title: "invalid request"}
	ErrHTTPRequestTooLarge  = &HTTPError{Status: 413, Code: ProblemRequestTooLarge, Slug: "request-too-large", Title: "request body too large"}
	ErrHTTPUnsupportedMedia = &HTTPError{Status: 415, Code: ProblemUnsupportedMedia, Slug: "unsupported-media-type", Title: "unsupported media type"}
	ErrHTTPReceiptInvalid   = &HTTPError{Status: 400, Code: ProblemReceiptInvalid, Slug: "receipt-handle-invalid", Title: "invalid receipt handle"}
	ErrHTTPReceiptExpired   = &HTTPError{Status: 409, Code: ProblemReceiptExpired, Slug: "receipt-handle-expired", Title: "receipt handle no longer valid"}
	ErrHTTPGroupExists      = &HTTPError{Status: 409, Code: ProblemGroupExists, Slug: "group-exists", Title: "consumer group already exists"}
	ErrHTTPQueueInvalid     = &HTTPError{Status: 400, Code: ProblemQueueInvalid, Slug: "queue-invalid", Title: "illegal queue id"}
	ErrHTTPNameInvalid      = &HTTPError{Status: 400, Code: ProblemNameInvalid, Slug: "name-invalid", Title: "invalid topic or group name"}
	ErrHTTPTopicExists      = &HTTPError{Status: 409, Code: ProblemTopicExists, Slug: "topic-exists", Title: "topic already exists"}
	ErrHTTPBusy             = &HTTPError{Status: 429, Code: ProblemBusy, Slug: "busy", Title: "broker busy", RetryAfter: 1}
	ErrHTTPMessageIllegal   = &HTTPError{Status: 400, Code: ProblemMessageIllegal, Slug: "message-illegal", Title: "message illegal"}
	ErrHTTPTxEnded          = &HTTPError{Status: 409, Code: ProblemTxEnded, Slug: "transaction-ended", Title: "transaction already ended"}
)
