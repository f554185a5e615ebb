package remoting

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// AppendHeader appends c's header in c.SerializeType.
func AppendHeader(dst []byte, c *Command) ([]byte, error) {
	switch c.SerializeType {
	case SerializeJSON:
		return AppendJSONHeader(dst, c), nil
	case SerializeRocketMQ:
		return AppendBinaryHeader(dst, c)
	}
	return dst, fmt.Errorf("%w: %d", ErrUnknownSerializeType, c.SerializeType)
}

// DecodeHeader decodes a header of the given serialize type.
func DecodeHeader(t SerializeType, b []byte) (*Command, error) { return decodeHeader(t, b, false) }

func decodeHeader(t SerializeType, b []byte, respWire bool) (*Command, error) {
	switch t {
	case SerializeJSON:
		return decodeJSONHeader(b, respWire)
	case SerializeRocketMQ:
		return decodeBinaryHeader(b, respWire)
	}
	return nil, fmt.Errorf("%w: %d", ErrUnknownSerializeType, t)
}

// AppendFrameHead appends everything of c's frame except the body: the
// length word, the header word and the header. The caller writes c.Body
// right after it (Conn does so with writev, without copying the body).
func AppendFrameHead(dst []byte, c *Command) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst, err := AppendHeader(dst, c)
	if err != nil {
		return dst[:start], err
	}
	hdrLen := len(dst) - start - 8
	if hdrLen > maxHeaderLen {
		return dst[:start], fmt.Errorf("%w: %d bytes", ErrHeaderTooLarge, hdrLen)
	}
	total := 4 + int64(hdrLen) + int64(len(c.Body))
	if total > math.MaxInt32 {
		return dst[:start], fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, total)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(total))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(c.SerializeType)<<24|uint32(hdrLen))
	return dst, nil
}

// AppendFrame appends c's whole frame (length word included) to dst.
func AppendFrame(dst []byte, c *Command) ([]byte, error) {
	dst, err := AppendFrameHead(dst, c)
	if err != nil {
		return dst, err
	}
	return append(dst, c.Body...), nil
}

// DecodePayload decodes a frame without its length word: headerWord,
// header, body. The returned Command's Body aliases p.
func DecodePayload(p []byte) (*Command, error) { return decodePayload(p, false) }

// decodePayload is DecodePayload; respWire decodes a response's extFields
// into wire fields (see ClientConfig.WireResponses).
func decodePayload(p []byte, respWire bool) (*Command, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("%w: payload of %d bytes has no header word", ErrMalformedFrame, len(p))
	}
	word := binary.BigEndian.Uint32(p)
	st := SerializeType(word >> 24)
	hdrLen := int(word & maxHeaderLen)
	if hdrLen > len(p)-4 {
		return nil, fmt.Errorf("%w: header length %d exceeds frame (%d bytes)", ErrMalformedFrame, hdrLen, len(p)-4)
	}
	c, err := decodeHeader(st, p[4:4+hdrLen], respWire)
	if err != nil {
		return nil, err
	}
	if body := p[4+hdrLen:]; len(body) > 0 {
		c.Body = body
	}
	return c, nil
}

// checkLength validates a frame's length word against maxFrame (<= 0 means
// DefaultMaxFrameSize).
func checkLength(n int32, maxFrame int) error {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	if n < 4 {
		return fmt.Errorf("%w: length word %d", ErrMalformedFrame, n)
	}
	if int64(n) > int64(maxFrame) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxFrame)
	}
	return nil
}

// DecodeFrame decodes the frame at the start of b and returns it with the
// number of bytes it occupies. An incomplete frame gives ErrShortFrame. The
// Command's Body aliases b.
func DecodeFrame(b []byte, maxFrame int) (*Command, int, error) {
	if len(b) < 4 {
		return nil, 0, ErrShortFrame
	}
	n := int32(binary.BigEndian.Uint32(b))
	if err := checkLength(n, maxFrame); err != nil {
		return nil, 0, err
	}
	if int64(len(b)-4) < int64(n) {
		return nil, 0, ErrShortFrame
	}
	c, err := DecodePayload(b[4 : 4+int(n)])
	if err != nil {
		return nil, 0, err
	}
	return c, 4 + int(n), nil
}

// ReadFrame reads one frame from r and returns its payload (everything
// after the length word) in a freshly allocated slice. io.EOF is returned
// only when r ends cleanly between frames.
func ReadFrame(r io.Reader, maxFrame int) ([]byte, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(lenBuf[:]))
	if err := checkLength(n, maxFrame); err != nil {
		return nil, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return p, nil
}
