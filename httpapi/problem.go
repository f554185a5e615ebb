package httpapi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Errors are application/problem+json bodies (package httpjson). Their
// "code" is a RocketMQ response code where one fits (13 message illegal,
// 14 service not available, 16 no permission, 17 topic not exist, 18
// topic exists, 22 message not found, 26 group not exist, 1 system error,
// 2 busy), Ferry's own in the 1000 range otherwise (protocol.HTTPError's classes).
// One function, problemOf, maps every error.

// problemOf maps any error of the broker or the API to its problem: the
// one place that decides statuses and codes.
func problemOf(err error) httpjson.Problem {
	mk := func(status, code int, slug, title string) httpjson.Problem {
		return httpjson.Problem{Problem: protocol.Problem{Type: protocol.ProblemTypePrefix + slug, Title: title, Status: status, Detail: err.Error(), Code: code}}
	}
	var c *protocol.HTTPError
	switch {
	case errors.As(err, &c):
		return httpjson.Problem{Problem: c.Problem(err.Error()), RetryAfter: c.RetryAfter}
	case errors.Is(err, broker.ErrTopicNotFound):
		return mk(404, protocol.ProblemTopicNotFound, "topic-not-found", "topic does not exist")
	case errors.Is(err, broker.ErrGroupNotFound):
		return mk(404, protocol.ProblemGroupNotFound, "group-not-found", "consumer group does not exist")
	case errors.Is(err, broker.ErrMessageNotFound):
		return mk(404, protocol.ProblemMessageNotFound, "message-not-found", "message not found")
	case errors.Is(err, commitlog.ErrMessageTooLarge):
		return mk(413, protocol.ProblemMessageIllegal, "message-too-large", "message too large")
	case errors.Is(err, commitlog.ErrPropertiesTooLarge), errors.Is(err, commitlog.ErrTopicInvalid),
		errors.Is(err, broker.ErrDelayInvalid):
		return mk(400, protocol.ProblemMessageIllegal, "message-illegal", "message illegal")
	case errors.Is(err, broker.ErrTopicInvalid), errors.Is(err, broker.ErrGroupInvalid):
		return mk(400, protocol.ProblemNameInvalid, "name-invalid", "invalid topic or group name")
	case errors.Is(err, broker.ErrQueueIllegal):
		return mk(400, protocol.ProblemQueueInvalid, "queue-invalid", "illegal queue id")
	case errors.Is(err, broker.ErrInvalidRequest):
		return mk(400, protocol.ProblemInvalidRequest, "invalid-request", "invalid request")
	case errors.Is(err, broker.ErrTopicSystem), errors.Is(err, broker.ErrNoPermission):
		return mk(403, protocol.ProblemNoPermission, "no-permission", "no permission")
	case errors.Is(err, broker.ErrNotWritable):
		p := mk(503, protocol.ProblemServiceNotAvailable, "service-not-available", "service not available")
		p.RetryAfter = 5
		if strings.Contains(err.Error(), "drained") {
			p.RetryAfter = 30
		}
		return p
	case errors.Is(err, commitlog.ErrReadOnly), errors.Is(err, commitlog.ErrClosed):
		p := mk(503, protocol.ProblemServiceNotAvailable, "service-not-available", "service not available")
		p.RetryAfter = 30
		return p
	case errors.Is(err, commitlog.ErrNoSpace), errors.Is(err, broker.ErrDiskFull):
		p := mk(503, protocol.ProblemServiceNotAvailable, "service-not-available", "service not available")
		p.RetryAfter = 5
		return p
	case errors.Is(err, commitlog.ErrFlushTimeout):
		p := mk(503, protocol.ProblemFlushDiskTimeout, "flush-disk-timeout", "flush disk timeout")
		p.RetryAfter = 1
		return p
	}
	return mk(500, protocol.ProblemSystemError, "system-error", "system error")
}

func writeProblem(ctx *fasthttp.RequestCtx, err error) { httpjson.WriteProblem(ctx, problemOf(err)) }

// readError answers a request the server could not read (its
// ErrorHandler): an oversized body is 413, anything else 400.
func readError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		writeProblem(ctx, fmt.Errorf("%w: %v", protocol.ErrHTTPRequestTooLarge, err))
		return
	}
	writeProblem(ctx, fmt.Errorf("%w: %v", protocol.ErrHTTPBadInput, err))
}
