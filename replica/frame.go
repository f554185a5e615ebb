package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Format constants (part of the format).
const (
	// Version is the protocol version a HELLO carries.
	Version uint16 = 1
	// MaxFrameLength bounds LENGTH.
	MaxFrameLength = 64 << 20

	frameHeaderLen = 5  // LENGTH + TYPE
	dataHeaderLen  = 21 // LENGTH + TYPE + epoch + start
	commitFrameLen = 21 // LENGTH + TYPE + epoch + offset
)

// FrameType is a frame's TYPE.
type FrameType uint8

// Frame types (part of the format).
const (
	FrameHello    FrameType = 1
	FrameEpochEnd FrameType = 2
	FrameFetch    FrameType = 3
	FrameData     FrameType = 4
	FrameAck      FrameType = 5
	FrameError    FrameType = 6
	FrameCommit   FrameType = 7
)

func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "HELLO"
	case FrameEpochEnd:
		return "EPOCH_END"
	case FrameFetch:
		return "FETCH"
	case FrameData:
		return "DATA"
	case FrameAck:
		return "ACK"
	case FrameError:
		return "ERROR"
	case FrameCommit:
		return "COMMIT"
	}
	return "FrameType(" + strconv.Itoa(int(t)) + ")"
}

// ErrorCode is the code of an ERROR frame.
type ErrorCode uint16

// Error codes (part of the format).
const (
	CodeStaleEpoch  ErrorCode = 1 // the epochs of the two sides differ
	CodeOutOfRange  ErrorCode = 2 // FETCH outside the master's kept log
	CodeProtocol    ErrorCode = 3 // an unexpected or malformed frame
	CodeWrongGroup  ErrorCode = 4 // HELLO names another cluster or broker name
	CodeMasterError ErrorCode = 5 // the master cannot read its log
)

// Errors. A received ERROR frame is a *RemoteError. ErrStaleEpoch is
// wrapped by the errors that end a stream because the two sides are not in
// the same epoch (either side may be the stale one).
var (
	ErrMalformed  = errors.New("replica: malformed frame")
	ErrProtocol   = errors.New("replica: protocol violation")
	ErrStaleEpoch = errors.New("replica: stale epoch")
)

// RemoteError is an ERROR frame received from the other side.
type RemoteError struct {
	Code   ErrorCode
	Reason string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("replica: peer ended the stream (code %d): %s", e.Code, e.Reason)
}

// Frame is any frame; the fields its Type does not use are zero.
type Frame struct {
	Type FrameType
	// HELLO
	Version    uint16
	LastEpoch  int64
	ReplicaID  int64
	Cluster    string
	BrokerName string
	// HELLO, EPOCH_END, DATA, ACK, COMMIT
	Epoch int64
	// EPOCH_END: end offset; FETCH: from; DATA: start offset; COMMIT: the
	// commit offset.
	Offset int64
	// EPOCH_END: the master's oldest kept offset.
	Start int64
	// DATA: the bytes (aliases the read buffer when decoded).
	Data []byte
	// ACK
	Written int64
	Flushed int64
	// ERROR
	Code   ErrorCode
	Reason string
}

// AppendFrame appends f's encoding to dst.
func AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(f.Type))
	switch f.Type {
	case FrameHello:
		if len(f.Cluster) > 255 || len(f.BrokerName) > 255 {
			return dst[:start], fmt.Errorf("%w: cluster or broker name longer than 255 bytes", ErrMalformed)
		}
		dst = binary.BigEndian.AppendUint16(dst, f.Version)
		dst = appendInt64s(dst, f.Epoch, f.LastEpoch, f.ReplicaID)
		dst = append(append(dst, byte(len(f.Cluster))), f.Cluster...)
		dst = append(append(dst, byte(len(f.BrokerName))), f.BrokerName...)
	case FrameEpochEnd:
		dst = appendInt64s(dst, f.Epoch, f.Offset, f.Start)
	case FrameFetch:
		dst = appendInt64s(dst, f.Offset)
	case FrameData:
		dst = appendInt64s(dst, f.Epoch, f.Offset)
		dst = append(dst, f.Data...)
	case FrameAck:
		dst = appendInt64s(dst, f.Epoch, f.Written, f.Flushed)
	case FrameCommit:
		dst = appendInt64s(dst, f.Epoch, f.Offset)
	case FrameError:
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.Code))
		dst = append(dst, f.Reason...)
	default:
		return dst[:start], fmt.Errorf("%w: unknown frame type %d", ErrMalformed, f.Type)
	}
	n := len(dst) - start - 4
	if n > MaxFrameLength {
		return dst[:start], fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrMalformed, n, MaxFrameLength)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// dataHeader appends the header of a DATA frame carrying n bytes to dst, so the bytes
// can be written from where they lie.
func dataHeader(dst []byte, epoch, start int64, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(dataHeaderLen-4+n))
	dst = append(dst, byte(FrameData))
	return appendInt64s(dst, epoch, start)
}

func appendInt64s(dst []byte, vs ...int64) []byte {
	for _, v := range vs {
		dst = binary.BigEndian.AppendUint64(dst, uint64(v))
	}
	return dst
}

// ReadFrame reads one frame into *buf (grown as needed; DATA's Data
// aliases it, valid until the next call).
func ReadFrame(r *bufio.Reader, buf *[]byte) (Frame, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 || n > MaxFrameLength {
		return Frame{}, fmt.Errorf("%w: length %d", ErrMalformed, n)
	}
	if cap(*buf) < int(n)-1 {
		*buf = make([]byte, n-1)
	}
	body := (*buf)[:n-1]
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return decodeFrame(FrameType(hdr[4]), body)
}

// decodeFrame decodes the fields after TYPE.
func decodeFrame(t FrameType, b []byte) (Frame, error) {
	f := Frame{Type: t}
	short := func() (Frame, error) {
		return Frame{}, fmt.Errorf("%w: %s of %d bytes", ErrMalformed, t, len(b))
	}
	i64 := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[i:])) }
	exact := func(n int) bool { return len(b) == n }
	switch t {
	case FrameHello:
		if len(b) < 2+24+2 {
			return short()
		}
		f.Version = binary.BigEndian.Uint16(b)
		f.Epoch, f.LastEpoch, f.ReplicaID = i64(2), i64(10), i64(18)
		rest := b[26:]
		var ok bool
		if f.Cluster, rest, ok = shortString(rest); !ok {
			return short()
		}
		if f.BrokerName, rest, ok = shortString(rest); !ok || len(rest) != 0 {
			return short()
		}
	case FrameEpochEnd:
		if !exact(24) {
			return short()
		}
		f.Epoch, f.Offset, f.Start = i64(0), i64(8), i64(16)
	case FrameFetch:
		if !exact(8) {
			return short()
		}
		f.Offset = i64(0)
	case FrameData:
		if len(b) < 16 {
			return short()
		}
		f.Epoch, f.Offset, f.Data = i64(0), i64(8), b[16:]
	case FrameAck:
		if !exact(24) {
			return short()
		}
		f.Epoch, f.Written, f.Flushed = i64(0), i64(8), i64(16)
	case FrameCommit:
		if !exact(16) {
			return short()
		}
		f.Epoch, f.Offset = i64(0), i64(8)
	case FrameError:
		if len(b) < 2 || !utf8.Valid(b[2:]) {
			return short()
		}
		f.Code, f.Reason = ErrorCode(binary.BigEndian.Uint16(b)), string(b[2:])
	default:
		return Frame{}, fmt.Errorf("%w: unknown frame type %d", ErrMalformed, t)
	}
	return f, nil
}

func shortString(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	return string(b[1 : 1+int(b[0])]), b[1+int(b[0]):], true
}

// frameWriter writes whole frames to a connection that two goroutines
// write to.
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration // of each write

	mu  sync.Mutex
	buf []byte
}

func (w *frameWriter) write(f *Frame) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := AppendFrame(w.buf[:0], f)
	if err != nil {
		return err
	}
	w.buf = b
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	_, err = w.conn.Write(b)
	return err
}

// fail sends an ERROR frame and returns it as an error.
func (w *frameWriter) fail(code ErrorCode, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	_ = w.write(&Frame{Type: FrameError, Code: code, Reason: reason})
	switch code {
	case CodeProtocol:
		return fmt.Errorf("%w: %s", ErrProtocol, reason)
	case CodeStaleEpoch:
		return fmt.Errorf("%w: %s", ErrStaleEpoch, reason)
	}
	return fmt.Errorf("replica: stream ended (code %d): %s", code, reason)
}
