package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Errors of the clients, and of the admin client. A broker's (or name
// server's) error answer is a *ServerError with the wire code, over the
// remoting protocol and the HTTP API alike; errors.Is matches it against
// the class sentinels below (protocol.ClassOf is the table), so
//
//	errors.Is(err, client.ErrTopicNotFound)
//
// holds for a send to an unknown topic over either transport, and for an
// admin lookup that no broker could answer.
var (
	ErrClosed          = errors.New("client: closed")
	ErrNotStarted      = errors.New("client: not started")
	ErrNoQueue         = errors.New("client: no writable queue")
	ErrMessageTooLarge = errors.New("client: message too large")
	ErrBufferFull      = errors.New("client: send buffer full")
	ErrNotSupported    = errors.New("client: not supported by this transport")

	// ErrTopicNotFound: the topic exists on no broker (TOPIC_NOT_EXIST,
	// HTTP problem 17).
	ErrTopicNotFound = errors.New("client: no such topic")
	// ErrTopicExists: create was asked for a topic that exists.
	ErrTopicExists = errors.New("client: topic already exists")
	// ErrGroupNotFound: the group exists on no broker.
	ErrGroupNotFound = errors.New("client: no such group")
	// ErrGroupExists: create was asked for a group that exists.
	ErrGroupExists = errors.New("client: group already exists")
	// ErrMessageNotFound: no broker holds the message.
	ErrMessageNotFound = errors.New("client: no such message")
	// ErrPermissionDenied: the credentials, the topic's or the group's
	// permission refuse the request (NO_PERMISSION, HTTP 401/403).
	ErrPermissionDenied = errors.New("client: permission denied")
	// ErrUnavailable: the broker does not accept the request now: drained
	// by an operator, disk full, shutting down or read-only
	// (SERVICE_NOT_AVAILABLE, HTTP 503). Another broker may.
	ErrUnavailable = errors.New("client: broker unavailable")
	// ErrThrottled: the broker is busy; try later (SYSTEM_BUSY,
	// FLOW_CONTROL, HTTP 429). ServerError.RetryAfter says when, over HTTP.
	ErrThrottled = errors.New("client: broker busy")
	// ErrInvalidMessage: the message was refused as it is (checked here,
	// or MESSAGE_ILLEGAL from the broker).
	ErrInvalidMessage = errors.New("client: invalid message")
)

// classErrs is the sentinel of each failure class.
var classErrs = map[protocol.Class]error{
	protocol.ClassTopicNotFound:      ErrTopicNotFound,
	protocol.ClassTopicExists:        ErrTopicExists,
	protocol.ClassGroupNotFound:      ErrGroupNotFound,
	protocol.ClassGroupExists:        ErrGroupExists,
	protocol.ClassMessageNotFound:    ErrMessageNotFound,
	protocol.ClassPermissionDenied:   ErrPermissionDenied,
	protocol.ClassUnavailable:        ErrUnavailable,
	protocol.ClassThrottled:          ErrThrottled,
	protocol.ClassMessageIllegal:     ErrInvalidMessage,
	protocol.ClassProducerFenced:     ErrProducerFenced,
	protocol.ClassOutOfOrderSequence: ErrOutOfOrderSequence,
}

// ServerError is a request a broker (or name server) answered with an
// error: a remoting response code, or an HTTP problem. errors.Is matches
// it against the sentinel of its code's class.
type ServerError struct {
	Broker string // address or URL
	Code   int    // remoting response code, or the HTTP problem's code (protocol.ClassOf gives the class of either)
	Remark string // the broker's message: the remoting remark, or the problem's detail
	// HTTP only.
	Method, Path string // the request
	Status       int
	Type         string
	RetryAfter   time.Duration
}

func (e *ServerError) Error() string {
	if e.Status != 0 {
		if e.Method != "" {
			return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Remark)
		}
		return fmt.Sprintf("client: %s answered HTTP %d: %s", e.Broker, e.Status, e.Remark)
	}
	return fmt.Sprintf("client: %s answered %s (%d): %s", e.Broker, protocol.ResponseName(int16(e.Code)), e.Code, e.Remark)
}

// Class is the failure class of the answer's code. An HTTP answer without
// a code is classed by its status.
func (e *ServerError) Class() protocol.Class {
	if c := protocol.ClassOf(e.Code); c != protocol.ClassOther && c != protocol.ClassNone {
		return c
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return protocol.ClassPermissionDenied
	case http.StatusTooManyRequests:
		return protocol.ClassThrottled
	case http.StatusServiceUnavailable:
		return protocol.ClassUnavailable
	}
	return protocol.ClassOther
}

// Is reports whether target is the sentinel of the answer's class (and,
// for HTTP 413, ErrMessageTooLarge).
func (e *ServerError) Is(target error) bool {
	if target == ErrMessageTooLarge {
		return e.Status == http.StatusRequestEntityTooLarge
	}
	s, ok := classErrs[e.Class()]
	return ok && s == target
}

// Retriable reports whether the same request may succeed on another broker
// or later: system error or busy, service not available, no permission
// (a read-only or draining broker), unknown topic (not created there yet),
// flow control; for HTTP 429, 503 and other 5xx answers.
func (e *ServerError) Retriable() bool {
	if e.Status != 0 {
		return e.Status == 429 || e.Status >= 500
	}
	switch e.Code {
	case protocol.RespSystemError, protocol.RespSystemBusy, protocol.RespServiceNotAvailable,
		protocol.RespNoPermission, protocol.RespTopicNotExist, protocol.RespFlowControl:
		return true
	}
	return false
}

func brokerErr(addr string, resp *remoting.Command) error {
	return &ServerError{Broker: addr, Code: int(resp.Code), Remark: resp.Remark}
}

// retriable reports whether a failed attempt may be repeated: a retriable
// broker answer, or a transport failure (dial, broken connection, the
// attempt's own timeout). Invalid messages, oversized bodies and topics
// the name servers do not route are final.
func retriable(err error) bool {
	var nr *noRouteError
	if errors.As(err, &nr) {
		return false
	}
	var be *ServerError
	if errors.As(err, &be) {
		return be.Retriable()
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrInvalidMessage) ||
		errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, remoting.ErrConnClosed) || errors.Is(err, context.DeadlineExceeded)
}
