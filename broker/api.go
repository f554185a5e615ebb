package broker

// The HTTP API: JSON over fasthttp under /v1, described route by route in
// docs/openapi.yaml. This file holds the router and the error catalogue;
// the handlers live in api_<resource>.go.
//
// Errors are application/problem+json (RFC 9457):
//
//	{"type": "urn:ferry:problem:<slug>", "title", "status", "detail", "code"}
//
// "code" is stable: a RocketMQ response code where one fits (13 message
// illegal, 14 service not available, 16 no permission, 17 topic not
// exist, 18 topic exists, 22 message not found, 26 group not exist, 1
// system error, 2 busy), Ferry's own in the 1000 range otherwise (the
// apiErr table below). One function, problemOf, maps every error.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// apiHandler serves one route; p holds the path parameters.
type apiHandler func(b *Broker, ctx *fasthttp.RequestCtx, p apiParams)

type apiRoute struct {
	method string
	path   string // OpenAPI form, e.g. /v1/topics/{topic}
	segs   []string
	handle apiHandler
}

// apiParams are a request's path parameters, in path order.
type apiParams struct {
	names, values []string
}

func (p apiParams) get(name string) string {
	for i, n := range p.names {
		if n == name {
			return p.values[i]
		}
	}
	return ""
}

// apiRoutes is the route table: the one list the router serves and the
// OpenAPI test checks docs/openapi.yaml against.
var apiRoutes = buildRoutes([]apiRoute{
	{method: "GET", path: "/v1/broker", handle: (*Broker).apiRuntime},
	{method: "GET", path: "/v1/producers", handle: (*Broker).apiProducers}, // idempotent.go
	{method: "GET", path: "/v1/broker/config", handle: (*Broker).apiGetConfig},
	{method: "PUT", path: "/v1/broker/config", handle: (*Broker).apiSetConfig},
	{method: "POST", path: "/v1/broker/drain", handle: (*Broker).apiDrain},
	{method: "POST", path: "/v1/broker/undrain", handle: (*Broker).apiUndrain},

	{method: "GET", path: "/v1/topics", handle: (*Broker).apiListTopics},
	{method: "POST", path: "/v1/topics", handle: (*Broker).apiCreateTopic},
	{method: "GET", path: "/v1/topics/{topic}", handle: (*Broker).apiGetTopic},
	{method: "PUT", path: "/v1/topics/{topic}", handle: (*Broker).apiUpdateTopic},
	{method: "DELETE", path: "/v1/topics/{topic}", handle: (*Broker).apiDeleteTopic},
	{method: "POST", path: "/v1/topics/{topic}/messages", handle: (*Broker).apiProduce},
	{method: "GET", path: "/v1/topics/{topic}/messages", handle: (*Broker).apiMessagesByKey},
	{method: "GET", path: "/v1/topics/{topic}/queues/{queue}/messages", handle: (*Broker).apiReadQueue},
	{method: "GET", path: "/v1/messages/{msgId}", handle: (*Broker).apiMessageByID},

	{method: "GET", path: "/v1/groups", handle: (*Broker).apiListGroups},
	{method: "POST", path: "/v1/groups", handle: (*Broker).apiCreateGroup},
	{method: "GET", path: "/v1/groups/{group}", handle: (*Broker).apiGetGroup},
	{method: "PUT", path: "/v1/groups/{group}", handle: (*Broker).apiUpdateGroup},
	{method: "DELETE", path: "/v1/groups/{group}", handle: (*Broker).apiDeleteGroup},
	{method: "GET", path: "/v1/groups/{group}/lag", handle: (*Broker).apiGroupLag},
	{method: "GET", path: "/v1/groups/{group}/clients", handle: (*Broker).apiGroupClients},
	{method: "GET", path: "/v1/groups/{group}/offsets", handle: (*Broker).apiGetOffsets},
	{method: "PUT", path: "/v1/groups/{group}/offsets", handle: (*Broker).apiCommitOffsets},
	{method: "POST", path: "/v1/groups/{group}/offsets/reset", handle: (*Broker).apiResetOffsets},
	{method: "POST", path: "/v1/groups/{group}/receive", handle: (*Broker).apiReceive},
	{method: "POST", path: "/v1/groups/{group}/ack", handle: (*Broker).apiAck},
	{method: "POST", path: "/v1/groups/{group}/nack", handle: (*Broker).apiNack},
	{method: "GET", path: "/v1/groups/{group}/dlq", handle: (*Broker).apiDLQList},
	{method: "POST", path: "/v1/groups/{group}/dlq/resend", handle: (*Broker).apiDLQResend},

	{method: "GET", path: "/v1/broker/stats", handle: (*Broker).apiBrokerStats},
	{method: "GET", path: "/v1/stats/topics", handle: (*Broker).apiTopicStats},
	{method: "GET", path: "/v1/stats/groups", handle: (*Broker).apiGroupStats},
	{method: "GET", path: "/v1/delayed", handle: (*Broker).apiDelayed},
	{method: "GET", path: "/v1/messages/{msgId}/trace", handle: (*Broker).apiMessageTrace},
	{method: "POST", path: "/v1/messages/{msgId}/resend", handle: (*Broker).apiMessageResend},

	{method: "GET", path: "/v1/cluster", handle: (*Broker).apiCluster}, // api_cluster.go
	{method: "GET", path: "/v1/cluster/groups", handle: (*Broker).apiClusterGroups},
	{method: "GET", path: "/v1/transactions", handle: (*Broker).apiTransactions},            // api_transactions.go
	{method: "POST", path: "/v1/topics/{topic}/transactions", handle: (*Broker).apiTxBegin}, // api_txhttp.go
	{method: "POST", path: "/v1/topics/{topic}/transactions/{id}/messages", handle: (*Broker).apiTxSend},
	{method: "POST", path: "/v1/topics/{topic}/transactions/{id}/commit", handle: (*Broker).apiTxCommit},
	{method: "POST", path: "/v1/topics/{topic}/transactions/{id}/abort", handle: (*Broker).apiTxAbort},
})

// healthRoutes are served by http.go itself, outside the API router.
var healthRoutes = [][2]string{{"GET", "/livez"}, {"GET", "/readyz"}, {"GET", "/metrics"}}

func buildRoutes(rs []apiRoute) []apiRoute {
	for i := range rs {
		rs[i].segs = strings.Split(strings.Trim(rs[i].path, "/"), "/")
	}
	return rs
}

// serveAPI routes a request under /v1.
func (b *Broker) serveAPI(ctx *fasthttp.RequestCtx) {
	segs := strings.Split(strings.Trim(string(ctx.Path()), "/"), "/")
	method := string(ctx.Method())
	var allow []string
	for i := range apiRoutes {
		r := &apiRoutes[i]
		p, ok := matchRoute(r.segs, segs)
		if !ok {
			continue
		}
		if r.method != method && !(method == "HEAD" && r.method == "GET") {
			allow = append(allow, r.method)
			continue
		}
		if b.apiAllowed(ctx, r, p) {
			r.handle(b, ctx, p)
		}
		return
	}
	if len(allow) > 0 {
		ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
		writeProblem(ctx, fmt.Errorf("%w: %s %s; allowed: %s", errMethodNotAllowed, method, ctx.Path(), strings.Join(allow, ", ")))
		return
	}
	writeProblem(ctx, fmt.Errorf("%w: %s", errRouteNotFound, ctx.Path()))
}

func matchRoute(pattern, segs []string) (apiParams, bool) {
	if len(pattern) != len(segs) {
		return apiParams{}, false
	}
	var p apiParams
	for i, s := range pattern {
		if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' {
			if segs[i] == "" {
				return apiParams{}, false
			}
			p.names = append(p.names, s[1:len(s)-1])
			p.values = append(p.values, segs[i])
			continue
		}
		if s != segs[i] {
			return apiParams{}, false
		}
	}
	return p, true
}

// apiErr is an error class of the HTTP API with its status and code.
type apiErr struct {
	status int
	code   int
	slug   string
	title  string
}

func (e *apiErr) Error() string { return "broker: " + e.title }

// The API's error classes (codes: protocol.Problem*).
var (
	errRouteNotFound    = &apiErr{404, protocol.ProblemNotFound, "not-found", "no such resource"}
	errMethodNotAllowed = &apiErr{405, protocol.ProblemMethodNotAllowed, "method-not-allowed", "method not allowed"}
	errBadInput         = &apiErr{400, protocol.ProblemInvalidRequest, "invalid-request", "invalid request"}
	errRequestTooLarge  = &apiErr{413, protocol.ProblemRequestTooLarge, "request-too-large", "request body too large"}
	errUnsupportedMedia = &apiErr{415, protocol.ProblemUnsupportedMedia, "unsupported-media-type", "unsupported media type"}
	errReceiptInvalid   = &apiErr{400, protocol.ProblemReceiptInvalid, "receipt-handle-invalid", "invalid receipt handle"}
	errReceiptExpired   = &apiErr{409, protocol.ProblemReceiptExpired, "receipt-handle-expired", "receipt handle no longer valid"}
	errGroupExists      = &apiErr{409, protocol.ProblemGroupExists, "group-exists", "consumer group already exists"}
	errQueueInvalid     = &apiErr{400, protocol.ProblemQueueInvalid, "queue-invalid", "illegal queue id"}
	errNameInvalid      = &apiErr{400, protocol.ProblemNameInvalid, "name-invalid", "invalid topic or group name"}
	errTopicExists      = &apiErr{409, protocol.ProblemTopicExists, "topic-exists", "topic already exists"}
	errBusy             = &apiErr{429, protocol.ProblemBusy, "busy", "broker busy"}
	errMessageIllegal   = &apiErr{400, protocol.ProblemMessageIllegal, "message-illegal", "message illegal"}
	// errTxEnded: api_txhttp.go
)

// problem is an application/problem+json body and its Retry-After.
type problem struct {
	protocol.Problem
	retryAfter int // seconds; 0: no Retry-After header
}

// problemOf maps any error of the broker or the API to its problem: the
// one place that decides statuses and codes.
func problemOf(err error) problem {
	mk := func(status, code int, slug, title string) problem {
		return problem{Problem: protocol.Problem{Type: protocol.ProblemTypePrefix + slug, Title: title, Status: status, Detail: err.Error(), Code: code}}
	}
	var ae *apiErr
	switch {
	case errors.As(err, &ae):
		p := mk(ae.status, ae.code, ae.slug, ae.title)
		if ae == errBusy {
			p.retryAfter = 1
		}
		return p
	case errors.Is(err, ErrTopicNotFound):
		return mk(404, protocol.ProblemTopicNotFound, "topic-not-found", "topic does not exist")
	case errors.Is(err, ErrGroupNotFound):
		return mk(404, protocol.ProblemGroupNotFound, "group-not-found", "consumer group does not exist")
	case errors.Is(err, ErrMessageNotFound):
		return mk(404, protocol.ProblemMessageNotFound, "message-not-found", "message not found")
	case errors.Is(err, commitlog.ErrMessageTooLarge):
		return mk(413, protocol.ProblemMessageIllegal, "message-too-large", "message too large")
	case errors.Is(err, commitlog.ErrPropertiesTooLarge), errors.Is(err, commitlog.ErrTopicInvalid),
		errors.Is(err, ErrDelayInvalid):
		return mk(400, protocol.ProblemMessageIllegal, "message-illegal", "message illegal")
	case errors.Is(err, ErrTopicInvalid), errors.Is(err, ErrGroupInvalid):
		return mk(400, protocol.ProblemNameInvalid, "name-invalid", "invalid topic or group name")
	case errors.Is(err, errQueueIllegal):
		return mk(400, protocol.ProblemQueueInvalid, "queue-invalid", "illegal queue id")
	case errors.Is(err, ErrInvalidRequest):
		return mk(400, protocol.ProblemInvalidRequest, "invalid-request", "invalid request")
	case errors.Is(err, ErrTopicSystem), errors.Is(err, errNoPermission):
		return mk(403, protocol.ProblemNoPermission, "no-permission", "no permission")
	case errors.Is(err, errNotWritable):
		p := mk(503, protocol.ProblemServiceNotAvailable, "service-not-available", "service not available")
		p.retryAfter = 5
		if strings.Contains(err.Error(), "drained") {
			p.retryAfter = 30
		}
		return p
	case errors.Is(err, commitlog.ErrReadOnly), errors.Is(err, commitlog.ErrClosed):
		p := mk(503, protocol.ProblemServiceNotAvailable, "service-not-available", "service not available")
		p.retryAfter = 30
		return p
	case errors.Is(err, commitlog.ErrNoSpace), errors.Is(err, ErrDiskFull):
		p := mk(503, 14, "service-not-available", "service not available")
		p.retryAfter = 5
		return p
	case errors.Is(err, commitlog.ErrFlushTimeout):
		p := mk(503, protocol.ProblemFlushDiskTimeout, "flush-disk-timeout", "flush disk timeout")
		p.retryAfter = 1
		return p
	}
	return mk(500, protocol.ProblemSystemError, "system-error", "system error")
}

func writeProblem(ctx *fasthttp.RequestCtx, err error) {
	p := problemOf(err)
	if p.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	ctx.SetStatusCode(p.Status)
	ctx.SetContentType("application/problem+json")
	body, _ := json.Marshal(p)
	ctx.SetBody(body)
}

// apiReadError answers a request fasthttp could not read (the server's
// ErrorHandler): an oversized body is 413, anything else 400.
func apiReadError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		writeProblem(ctx, fmt.Errorf("%w: %v", errRequestTooLarge, err))
		return
	}
	writeProblem(ctx, fmt.Errorf("%w: %v", errBadInput, err))
}

// checkWritable refuses a write while the broker does not accept sends.
func (b *Broker) checkWritable() error {
	if why := b.writable(); why != "" {
		return fmt.Errorf("%w: %s", errNotWritable, why)
	}
	return nil
}

// decodeBody decodes a JSON request body into v, refusing unknown fields
// so that a misspelt field is an error rather than silently ignored, and
// invalid UTF-8, which encoding/json would silently replace with U+FFFD.
func decodeBody(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(body) == 0 {
		return fmt.Errorf("%w: a JSON body is required", errBadInput)
	}
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			r, n := utf8.DecodeRune(body[at:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			at += n
		}
		return fmt.Errorf("%w: the JSON body is not valid UTF-8 (byte %d); send binary bodies base64-encoded or as application/octet-stream", errBadInput, at)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed JSON body: %v", errBadInput, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON body", errBadInput)
	}
	return nil
}

// queryInt reads an integer query parameter, def when absent.
func queryInt(ctx *fasthttp.RequestCtx, name string, def int64) (int64, error) {
	v := ctx.QueryArgs().Peek(name)
	if len(v) == 0 {
		return def, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: query parameter %s=%q is not an integer", errBadInput, name, v)
	}
	return n, nil
}

// queryIntIn reads an integer query parameter that must lie in [lo, hi].
func queryIntIn(ctx *fasthttp.RequestCtx, name string, def, lo, hi int64) (int64, error) {
	n, err := queryInt(ctx, name, def)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s=%d must be %d to %d (absent: %d)", errBadInput, name, n, lo, hi, def)
	}
	return n, nil
}

// --- /v1/broker ---

func (b *Broker) apiRuntime(ctx *fasthttp.RequestCtx, _ apiParams) {
	writeJSON(ctx, fasthttp.StatusOK, b.Runtime())
}

func (b *Broker) apiGetConfig(ctx *fasthttp.RequestCtx, _ apiParams) {
	writeJSON(ctx, fasthttp.StatusOK, b.ConfigMap())
}

// apiSetConfig applies {"key": value, ...}; values may be JSON strings or
// bare numbers and booleans. Keys apply in sorted order and the first
// refused one stops the request (the ones before it stay applied).
func (b *Broker) apiSetConfig(ctx *fasthttp.RequestCtx, _ apiParams) {
	var kv map[string]json.RawMessage
	if err := decodeBody(ctx, &kv); err != nil {
		writeProblem(ctx, err)
		return
	}
	if len(kv) == 0 {
		writeProblem(ctx, fmt.Errorf("%w: no keys to set", errBadInput))
		return
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		raw := kv[k]
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			s = string(raw) // a number or a boolean, as written
		}
		if err := b.SetConfig(k, s); err != nil {
			if i > 0 {
				err = fmt.Errorf("%w (applied before it: %s)", err, strings.Join(keys[:i], ", "))
			}
			writeProblem(ctx, err)
			return
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, b.ConfigMap())
}

func (b *Broker) apiDrain(ctx *fasthttp.RequestCtx, _ apiParams) {
	b.Drain(true)
	writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"drained": true})
}

func (b *Broker) apiUndrain(ctx *fasthttp.RequestCtx, _ apiParams) {
	b.Drain(false)
	writeJSON(ctx, fasthttp.StatusOK, map[string]bool{"drained": false})
}
