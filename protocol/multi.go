package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformedMulti reports a FERRY_SEND_MULTI body or result body that
// does not follow the layout in the package doc.
var ErrMalformedMulti = errors.New("protocol: malformed multi-queue batch")

// MultiEntry is one message of a FERRY_SEND_MULTI request. Decoded
// entries alias the body they came from.
type MultiEntry struct {
	Topic         string
	QueueID       int32
	Flag          int32
	BornTimestamp int64
	Body          []byte
	Properties    []byte
}

// multiEntryFixed is the size of an entry without its topic, body and
// properties: topic length, queue id, flag, born timestamp, body length,
// properties length.
const multiEntryFixed = 2 + 4 + 4 + 8 + 4 + 2

// AppendMultiEntry appends e to a FERRY_SEND_MULTI body. It fails only
// for fields too long for the layout.
func AppendMultiEntry(dst []byte, e *MultiEntry) ([]byte, error) {
	if len(e.Topic) == 0 || len(e.Topic) > math.MaxUint16 {
		return dst, fmt.Errorf("%w: topic of %d bytes", ErrMalformedMulti, len(e.Topic))
	}
	if len(e.Body) > math.MaxInt32 || len(e.Properties) > math.MaxInt16 {
		return dst, fmt.Errorf("%w: body of %d or properties of %d bytes", ErrMalformedMulti, len(e.Body), len(e.Properties))
	}
	be := binary.BigEndian
	dst = be.AppendUint16(dst, uint16(len(e.Topic)))
	dst = append(dst, e.Topic...)
	dst = be.AppendUint32(dst, uint32(e.QueueID))
	dst = be.AppendUint32(dst, uint32(e.Flag))
	dst = be.AppendUint64(dst, uint64(e.BornTimestamp))
	dst = be.AppendUint32(dst, uint32(len(e.Body)))
	dst = append(dst, e.Body...)
	dst = be.AppendUint16(dst, uint16(len(e.Properties)))
	return append(dst, e.Properties...), nil
}

// DecodeMulti appends the entries of a FERRY_SEND_MULTI body to dst. An
// empty body, a truncated entry or trailing bytes are errors; the fields'
// values (topic names, queue ids) are the broker's to check.
func DecodeMulti(body []byte, dst []MultiEntry) ([]MultiEntry, error) {
	be := binary.BigEndian
	first := len(dst)
	bad := func(p int, what string) ([]MultiEntry, error) {
		clear(dst[first:])
		return dst[:first], fmt.Errorf("%w: entry at byte %d: %s", ErrMalformedMulti, p, what)
	}
	if len(body) == 0 {
		return dst, fmt.Errorf("%w: empty body", ErrMalformedMulti)
	}
	for p := 0; p < len(body); {
		rest := body[p:]
		if len(rest) < multiEntryFixed {
			return bad(p, "truncated")
		}
		tl := int(be.Uint16(rest))
		if tl == 0 {
			return bad(p, "empty topic")
		}
		if len(rest) < multiEntryFixed+tl {
			return bad(p, "truncated topic")
		}
		e := MultiEntry{Topic: string(rest[2 : 2+tl])}
		q := rest[2+tl:]
		e.QueueID = int32(be.Uint32(q))
		e.Flag = int32(be.Uint32(q[4:]))
		e.BornTimestamp = int64(be.Uint64(q[8:]))
		bl := uint64(be.Uint32(q[16:]))
		if bl > math.MaxInt32 || uint64(len(q)) < 20+bl+2 {
			return bad(p, fmt.Sprintf("body length %d beyond the entry", bl))
		}
		e.Body = q[20 : 20+bl : 20+bl]
		pl := int(int16(be.Uint16(q[20+bl:])))
		if pl < 0 || len(q) < 22+int(bl)+pl {
			return bad(p, fmt.Sprintf("properties length %d beyond the entry", pl))
		}
		e.Properties = q[22+bl : 22+int(bl)+pl : 22+int(bl)+pl]
		dst = append(dst, e)
		p += 2 + tl + 22 + int(bl) + pl
	}
	return dst, nil
}

// MultiResult is the outcome of one message of a FERRY_SEND_MULTI request.
type MultiResult struct {
	Code        int16 // RespSuccess, RespFlushDiskTimeout (stored, not yet on disk) or an error code
	QueueID     int32
	QueueOffset int64
	// Text is the broker's message id (OffsetMsgID) for a stored message,
	// the error's remark otherwise.
	Text string
}

// AppendMultiResult appends r to a FERRY_SEND_MULTI response body; a text
// longer than the layout allows is cut.
func AppendMultiResult(dst []byte, r *MultiResult) []byte {
	be := binary.BigEndian
	text := r.Text
	if len(text) > math.MaxUint16 {
		text = text[:math.MaxUint16]
	}
	dst = be.AppendUint16(dst, uint16(r.Code))
	dst = be.AppendUint32(dst, uint32(r.QueueID))
	dst = be.AppendUint64(dst, uint64(r.QueueOffset))
	dst = be.AppendUint16(dst, uint16(len(text)))
	return append(dst, text...)
}

// DecodeMultiResults appends the results of a FERRY_SEND_MULTI response
// body to dst.
func DecodeMultiResults(body []byte, dst []MultiResult) ([]MultiResult, error) {
	be := binary.BigEndian
	for p := 0; p < len(body); {
		rest := body[p:]
		if len(rest) < 16 {
			return dst, fmt.Errorf("%w: result at byte %d truncated", ErrMalformedMulti, p)
		}
		tl := int(be.Uint16(rest[14:]))
		if len(rest) < 16+tl {
			return dst, fmt.Errorf("%w: result at byte %d: text beyond the body", ErrMalformedMulti, p)
		}
		dst = append(dst, MultiResult{
			Code: int16(be.Uint16(rest)), QueueID: int32(be.Uint32(rest[2:])),
			QueueOffset: int64(be.Uint64(rest[6:])), Text: string(rest[16 : 16+tl]),
		})
		p += 16 + tl
	}
	return dst, nil
}
