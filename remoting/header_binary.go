package remoting

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendBinaryHeader appends c's header in the ROCKETMQ binary
// serialization (see the package doc). extFields are written in sorted key
// order. A key longer than 32767 bytes is an error.
func AppendBinaryHeader(dst []byte, c *Command) ([]byte, error) {
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Code))
	dst = append(dst, byte(c.Language))
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Version))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Opaque))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Flag))
	if len(c.Remark) > maxHeaderLen {
		return dst, fmt.Errorf("%w: remark of %d bytes", ErrHeaderTooLarge, len(c.Remark))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.Remark)))
	dst = append(dst, c.Remark...)
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	switch {
	case c.ExtFields == nil && c.Header != nil:
		w := c.Header.AppendFields(FieldWriter{dst: dst, mode: fieldsBinary})
		if w.err != nil {
			return w.dst, w.err
		}
		return finishBinaryExt(w.dst, lenAt)
	case c.ExtFields == nil && c.wire != nil:
		w := FieldWriter{dst: dst, mode: fieldsBinary}
		for _, f := range c.wire {
			w.String(f.Key, f.Value)
		}
		if w.err != nil {
			return w.dst, w.err
		}
		return finishBinaryExt(w.dst, lenAt)
	}
	var arr [24]string
	for _, k := range orderedKeys(arr[:0], c.Code, c.ExtFields) {
		v := c.ExtFields[k]
		if len(k) > math.MaxInt16 {
			return dst, fmt.Errorf("%w: extFields key of %d bytes", ErrHeaderTooLarge, len(k))
		}
		if len(v) > maxHeaderLen {
			return dst, fmt.Errorf("%w: extFields value of %d bytes", ErrHeaderTooLarge, len(v))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return finishBinaryExt(dst, lenAt)
}

// finishBinaryExt fills in the length word of the extFields block that
// starts at lenAt.
func finishBinaryExt(dst []byte, lenAt int) ([]byte, error) {
	extLen := len(dst) - lenAt - 4
	if extLen > maxHeaderLen {
		return dst, fmt.Errorf("%w: extFields of %d bytes", ErrHeaderTooLarge, extLen)
	}
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(extLen))
	return dst, nil
}

// DecodeBinaryHeader decodes a ROCKETMQ binary header into a Command
// (without body). Bytes after the extFields block are ignored, as Java does.
func DecodeBinaryHeader(b []byte) (*Command, error) { return decodeBinaryHeader(b, false) }

func decodeBinaryHeader(b []byte, respWire bool) (*Command, error) {
	if len(b) < binaryFixedLen {
		return nil, fmt.Errorf("%w: binary header of %d bytes, need at least %d", ErrMalformedHeader, len(b), binaryFixedLen)
	}
	c := Command{
		Code:          int16(binary.BigEndian.Uint16(b[0:])),
		Language:      LanguageCode(b[2]).normalize(),
		Version:       int16(binary.BigEndian.Uint16(b[3:])),
		Opaque:        int32(binary.BigEndian.Uint32(b[5:])),
		Flag:          int32(binary.BigEndian.Uint32(b[9:])),
		SerializeType: SerializeRocketMQ,
	}
	p := b[13:]
	remark, p, err := takeLen32(p, "remark")
	if err != nil {
		return nil, err
	}
	c.Remark = string(remark)
	ext, _, err := takeLen32(p, "extFields")
	if err != nil {
		return nil, err
	}
	// One copy of the block; keys and values are slices of it.
	all := string(ext)
	at := func(b []byte) int { return len(all) - len(b) }
	var arr [16]Field
	fs := arr[:0]
	for len(ext) > 0 {
		if len(ext) < 2 {
			return nil, fmt.Errorf("%w: truncated extFields key length", ErrMalformedHeader)
		}
		kl := int16(binary.BigEndian.Uint16(ext))
		ext = ext[2:]
		if kl < 0 || int(kl) > len(ext) {
			return nil, fmt.Errorf("%w: extFields key length %d", ErrMalformedHeader, kl)
		}
		k := at(ext)
		key := all[k : k+int(kl)]
		var val []byte
		val, ext, err = takeLen32(ext[kl:], "extFields value")
		if err != nil {
			return nil, err
		}
		v := at(ext) - len(val)
		fs = append(fs, Field{key, all[v : v+len(val)]})
	}
	return finishDecoded(&c, fs, len(fs) > 0, respWire), nil
}

// takeLen32 splits an int32-length-prefixed field off p.
func takeLen32(p []byte, what string) (field, rest []byte, err error) {
	if len(p) < 4 {
		return nil, nil, fmt.Errorf("%w: truncated %s length", ErrMalformedHeader, what)
	}
	n := int32(binary.BigEndian.Uint32(p))
	p = p[4:]
	if n < 0 || int64(n) > int64(len(p)) {
		return nil, nil, fmt.Errorf("%w: %s length %d with %d bytes left", ErrMalformedHeader, what, n, len(p))
	}
	return p[:n], p[n:], nil
}
