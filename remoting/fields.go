package remoting

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/ferrymq/ferry/protocol"
)

// A command's extFields live in one of three forms, at most one at a time:
//
//   - ExtFields, a map: what the generic path decodes and what callers build
//     with NewRequest and Set;
//   - Header, a typed header (SendHeader, PullHeader, ...) that writes its
//     fields in a fixed order: no map, no key sort, no per-field strings for
//     numbers;
//   - the decoded wire fields of a hot request (SEND_MESSAGE,
//     SEND_MESSAGE_V2, SEND_BATCH_MESSAGE, FERRY_SEND_MULTI, PULL_MESSAGE),
//     kept as the list of key/value pairs read off the wire, without
//     building a map (WireFields).
//
// The accessors (Lookup, String, Int64, ...) read any of them; ExtFieldMap
// turns the command into the map form for callers that need the whole set
// (signatures); Set does the same before it stores.

// Field is one extFields entry as read off the wire.
type Field struct{ Key, Value string }

// Header is a typed extFields header. AppendFields writes every field the
// header carries, always in the same order, through w and returns w (it is
// passed by value so that encoding allocates nothing).
type Header interface {
	AppendFields(w FieldWriter) FieldWriter
}

type fieldMode uint8

const (
	fieldsJSON fieldMode = iota
	fieldsBinary
	fieldsCollect
)

// FieldWriter writes the fields of a Header: as JSON object members, as
// ROCKETMQ binary entries, or into a list of Fields.
type FieldWriter struct {
	dst  []byte
	out  []Field
	n    int
	mode fieldMode
	err  error
}

// String writes a string field.
func (w *FieldWriter) String(key, value string) {
	switch w.mode {
	case fieldsJSON:
		w.jsonKey(key)
		w.dst = appendJSONString(w.dst, value)
	case fieldsBinary:
		if len(value) > maxHeaderLen {
			w.fail(fmt.Errorf("%w: extFields value of %d bytes", ErrHeaderTooLarge, len(value)))
			return
		}
		w.binaryKey(key)
		w.dst = binary.BigEndian.AppendUint32(w.dst, uint32(len(value)))
		w.dst = append(w.dst, value...)
	default:
		w.out = append(w.out, Field{key, value})
	}
	w.n++
}

// Int writes an integer field in decimal (as a JSON string, as Java does).
func (w *FieldWriter) Int(key string, v int64) {
	switch w.mode {
	case fieldsJSON:
		w.jsonKey(key)
		w.dst = append(w.dst, '"')
		w.dst = strconv.AppendInt(w.dst, v, 10)
		w.dst = append(w.dst, '"')
	case fieldsBinary:
		w.binaryKey(key)
		at := len(w.dst)
		w.dst = append(w.dst, 0, 0, 0, 0)
		w.dst = strconv.AppendInt(w.dst, v, 10)
		binary.BigEndian.PutUint32(w.dst[at:], uint32(len(w.dst)-at-4))
	default:
		w.out = append(w.out, Field{key, strconv.FormatInt(v, 10)})
	}
	w.n++
}

// Bool writes "true" or "false".
func (w *FieldWriter) Bool(key string, v bool) {
	if v {
		w.String(key, "true")
	} else {
		w.String(key, "false")
	}
}

func (w *FieldWriter) jsonKey(key string) {
	if w.n > 0 {
		w.dst = append(w.dst, ',')
	}
	w.dst = appendJSONString(w.dst, key)
	w.dst = append(w.dst, ':')
}

func (w *FieldWriter) binaryKey(key string) {
	if len(key) > math.MaxInt16 {
		w.fail(fmt.Errorf("%w: extFields key of %d bytes", ErrHeaderTooLarge, len(key)))
		return
	}
	w.dst = binary.BigEndian.AppendUint16(w.dst, uint16(len(key)))
	w.dst = append(w.dst, key...)
}

func (w *FieldWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// headerFields lists h's fields.
func headerFields(h Header) []Field {
	return h.AppendFields(FieldWriter{mode: fieldsCollect}).out
}

// wireDecoded reports whether a header of this code and flag is decoded into
// wire fields instead of a map: the requests on the produce and consume
// paths.
func wireDecoded(code int16, flag int32) bool {
	if flag&FlagResponse != 0 {
		return false
	}
	switch code {
	case protocol.ReqSendMessage, protocol.ReqSendMessageV2, protocol.ReqSendBatchMessage,
		protocol.ReqFerrySendMulti, protocol.ReqPullMessage:
		return true
	}
	return false
}

// wireCommand and smallWireCommand hold a decoded command and room for
// its wire fields, so a hot request or an answer costs one allocation for
// both (12–14 fields for a send or pull request, 4–6 for their answers).
type wireCommand struct {
	c   Command
	buf [16]Field
}

type smallWireCommand struct {
	c   Command
	buf [6]Field
}

// finishDecoded returns c (decoded, without extFields yet) as a new
// Command holding fs: as wire fields for a hot request (or any response
// when respWire is set: see ClientConfig.WireResponses), as a map
// otherwise. hasExt is false when the header had no extFields object (or
// null).
func finishDecoded(c *Command, fs []Field, hasExt, respWire bool) *Command {
	if !hasExt {
		out := new(Command)
		*out = *c
		return out
	}
	if wireDecoded(c.Code, c.Flag) || respWire && c.Flag&FlagResponse != 0 {
		switch {
		case len(fs) <= 6:
			w := new(smallWireCommand)
			w.c = *c
			w.c.wire = append(w.buf[:0], fs...)
			return &w.c
		case len(fs) <= 16:
			w := new(wireCommand)
			w.c = *c
			w.c.wire = append(w.buf[:0], fs...)
			return &w.c
		}
		out := new(Command)
		*out = *c
		out.wire = append(make([]Field, 0, len(fs)), fs...)
		return out
	}
	out := new(Command)
	*out = *c
	out.ExtFields = make(map[string]string, len(fs))
	for _, f := range fs {
		out.ExtFields[f.Key] = f.Value
	}
	return out
}

// WireFields returns the extFields of a decoded hot request in wire order
// (a key sent twice appears twice; the later one counts), or nil when the
// command holds them in another form.
func (c *Command) WireFields() []Field { return c.wire }

// Lookup returns an extFields value from whichever form the command holds.
func (c *Command) Lookup(key string) (string, bool) {
	if c.ExtFields != nil {
		v, ok := c.ExtFields[key]
		return v, ok
	}
	fs := c.wire
	if fs == nil && c.Header != nil {
		fs = headerFields(c.Header)
	}
	for i := len(fs) - 1; i >= 0; i-- {
		if fs[i].Key == key {
			return fs[i].Value, true
		}
	}
	return "", false
}

// ExtFieldMap turns the command's extFields into the map form and returns
// the map (nil when the command has no extFields at all).
func (c *Command) ExtFieldMap() map[string]string {
	if c.ExtFields != nil || (c.wire == nil && c.Header == nil) {
		return c.ExtFields
	}
	fs := c.wire
	if fs == nil {
		fs = headerFields(c.Header)
	}
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		m[f.Key] = f.Value
	}
	c.ExtFields, c.wire, c.Header = m, nil, nil
	return m
}

// appendWireJSON appends fs as JSON object members.
func appendWireJSON(dst []byte, fs []Field) []byte {
	w := FieldWriter{dst: dst, mode: fieldsJSON}
	for _, f := range fs {
		w.String(f.Key, f.Value)
	}
	return w.dst
}
