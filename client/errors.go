package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Errors of the clients. Broker answers are *ServerError; use errors.Is
// with these sentinels and errors.As for ServerError.
var (
	ErrClosed          = errors.New("client: closed")
	ErrNotStarted      = errors.New("client: not started")
	ErrTopicNotFound   = errors.New("client: topic has no route")
	ErrNoQueue         = errors.New("client: no writable queue")
	ErrMessageTooLarge = errors.New("client: message too large")
	ErrInvalidMessage  = errors.New("client: invalid message")
	ErrBufferFull      = errors.New("client: send buffer full")
	ErrNotSupported    = errors.New("client: not supported by this transport")
)

// ServerError is a request a broker (or name server) answered with an
// error: a remoting response code, or an HTTP problem.
type ServerError struct {
	Broker string // address or URL
	Code   int    // remoting response code; for HTTP the problem's "code" if numeric, else 0
	Remark string // remoting remark, or the problem's title and detail
	// HTTP only.
	Status     int
	Type       string
	RetryAfter time.Duration
}

func (e *ServerError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("client: %s answered HTTP %d: %s", e.Broker, e.Status, e.Remark)
	}
	return fmt.Sprintf("client: %s answered %s (%d): %s", e.Broker, protocol.ResponseName(int16(e.Code)), e.Code, e.Remark)
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
// attempt's own timeout). Invalid messages and oversized bodies are final.
func retriable(err error) bool {
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
