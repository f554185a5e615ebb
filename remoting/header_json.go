package remoting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSONHeader appends c's header in the JSON serialization:
//
//	{"code":C,"language":"L","version":V,"opaque":O,"flag":F,"remark":"R","extFields":{...}}
//
// Keys of an ExtFields map are written sorted, so the output is
// deterministic (the order is remembered per request shape, see
// orderedKeys); a typed Header writes its fields in its own fixed order,
// and wire fields are written in the order they were read.
// Every extFields value is a JSON string.
func AppendJSONHeader(dst []byte, c *Command) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, int64(c.Code), 10)
	dst = append(dst, `,"language":`...)
	dst = appendJSONString(dst, c.Language.String())
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(c.Version), 10)
	dst = append(dst, `,"opaque":`...)
	dst = strconv.AppendInt(dst, int64(c.Opaque), 10)
	dst = append(dst, `,"flag":`...)
	dst = strconv.AppendInt(dst, int64(c.Flag), 10)
	dst = append(dst, `,"remark":`...)
	dst = appendJSONString(dst, c.Remark)
	dst = append(dst, `,"extFields":{`...)
	switch {
	case c.ExtFields == nil && c.Header != nil:
		w := c.Header.AppendFields(FieldWriter{dst: dst, mode: fieldsJSON})
		return append(w.dst, "}}"...)
	case c.ExtFields == nil && c.wire != nil:
		return append(appendWireJSON(dst, c.wire), "}}"...)
	}
	var arr [24]string
	for i, k := range orderedKeys(arr[:0], c.Code, c.ExtFields) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, c.ExtFields[k])
	}
	return append(dst, "}}"...)
}

// appendSortedKeys appends m's keys to keys, sorted.
func appendSortedKeys(keys []string, m map[string]string) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Only '"', '\\' and control
// characters are escaped (no HTML escaping); invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonHeader is the decoding shape of a JSON header. Unknown keys (Java's
// serializeTypeCurrentRPC) are ignored.
type jsonHeader struct {
	Code      int16           `json:"code"`
	Language  json.RawMessage `json:"language"`
	Version   int16           `json:"version"`
	Opaque    int32           `json:"opaque"`
	Flag      int32           `json:"flag"`
	Remark    *string         `json:"remark"`
	ExtFields extFieldsJSON   `json:"extFields"`
}

// DecodeJSONHeader decodes a JSON header into a Command (without body).
// code and version must be numbers in int16 range, opaque and flag in int32
// range; extFields values may be strings (the norm), numbers or booleans
// (kept as their literal text); null values are dropped.
func DecodeJSONHeader(b []byte) (*Command, error) { return decodeJSONHeader(b, false) }

func decodeJSONHeader(b []byte, respWire bool) (*Command, error) {
	if c, ok := decodeJSONHeaderFast(b, respWire); ok {
		return c, nil
	}
	return decodeJSONHeaderSlow(b)
}

// decodeJSONHeaderSlow is the authoritative decoder, built on encoding/json.
func decodeJSONHeaderSlow(b []byte) (*Command, error) {
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: JSON header is not an object", ErrMalformedHeader)
	}
	var h jsonHeader
	if err := json.Unmarshal(trimmed, &h); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedHeader, err)
	}
	c := &Command{
		Code:          h.Code,
		Version:       h.Version,
		Opaque:        h.Opaque,
		Flag:          h.Flag,
		ExtFields:     map[string]string(h.ExtFields),
		SerializeType: SerializeJSON,
	}
	if h.Remark != nil {
		c.Remark = *h.Remark
	}
	lang, err := decodeLanguage(h.Language)
	if err != nil {
		return nil, err
	}
	c.Language = lang
	return c, nil
}

func decodeLanguage(raw json.RawMessage) (LanguageCode, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return LanguageJava, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%w: language: %w", ErrMalformedHeader, err)
		}
		return ParseLanguage(s), nil
	}
	var n uint8
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("%w: language %s", ErrMalformedHeader, raw)
	}
	return LanguageCode(n).normalize(), nil
}

// extFieldsJSON decodes a string→string object leniently.
type extFieldsJSON map[string]string

func (m *extFieldsJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*m = nil
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v[0] {
		case '"':
			inner := v[1 : len(v)-1]
			if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
				out[k] = string(inner)
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out[k] = s
		case 'n': // null: Java never sends null values; treat as absent
		case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			out[k] = string(v)
		default:
			return fmt.Errorf("extFields[%q] is not a scalar", k)
		}
	}
	*m = out
	return nil
}
