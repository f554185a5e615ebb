package remoting

import (
	"errors"
	"fmt"

	"github.com/ferrymq/ferry/protocol"
)

// Package sentinels. Wrapped with %w; test with errors.Is.
var (
	// ErrFrameTooLarge: the length word exceeds the configured maximum.
	ErrFrameTooLarge = errors.New("remoting: frame too large")
	// ErrMalformedFrame: the frame cannot be delimited or its header word
	// does not fit the frame.
	ErrMalformedFrame = errors.New("remoting: malformed frame")
	// ErrMalformedHeader: the header bytes cannot be decoded.
	ErrMalformedHeader = errors.New("remoting: malformed header")
	// ErrUnknownSerializeType: the header word names a serialize type other
	// than JSON or ROCKETMQ.
	ErrUnknownSerializeType = errors.New("remoting: unknown serialize type")
	// ErrHeaderTooLarge: an encoded header does not fit in 24 bits.
	ErrHeaderTooLarge = errors.New("remoting: header too large")
	// ErrShortFrame: DecodeFrame was given fewer bytes than the frame needs.
	ErrShortFrame = errors.New("remoting: short frame")
	// ErrMissingField: a required extFields key is absent.
	ErrMissingField = errors.New("remoting: missing field")
	// ErrBadField: an extFields value does not parse as the expected type.
	ErrBadField = errors.New("remoting: malformed field")
	// ErrConnClosed: the connection is closed (or closed while waiting).
	ErrConnClosed = errors.New("remoting: connection closed")
	// ErrServerClosed: Serve was called after, or returned because of,
	// Shutdown.
	ErrServerClosed = errors.New("remoting: server closed")
	// ErrClientClosed: the Client was closed.
	ErrClientClosed = errors.New("remoting: client closed")
	// ErrIdleTimeout: a server connection received nothing for its idle
	// timeout while none of its requests was being served.
	ErrIdleTimeout = errors.New("remoting: connection idle")
	// ErrReadTimeout: a frame's first byte arrived but not the rest of it
	// within the read timeout (a client too slow, or stalled).
	ErrReadTimeout = errors.New("remoting: frame not received in time")
	// ErrBadBody: a JSON body does not decode into the expected type.
	ErrBadBody = errors.New("remoting: malformed body")
)

// ResponseError is a response whose code is not RespSuccess, as an error.
type ResponseError struct {
	Code   int16
	Remark string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("remoting: response %s (%d): %s", protocol.ResponseName(e.Code), e.Code, e.Remark)
}
