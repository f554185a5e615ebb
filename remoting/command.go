package remoting

import (
	"fmt"
	"strconv"

	"github.com/ferrymq/ferry/protocol"
)

// Command is one request or response: the decoded header plus the body.
type Command struct {
	Code     int16
	Language LanguageCode
	Version  int16
	Opaque   int32
	Flag     int32
	Remark   string
	// ExtFields is the generic form of the header's extFields; see
	// fields.go for the typed Header and the wire fields of hot requests.
	ExtFields map[string]string
	// Header, when set, is the typed source of extFields (ExtFields is
	// then nil).
	Header Header
	Body   []byte
	// SerializeType is the header encoding the command arrived in, and the
	// one it will be written in.
	SerializeType SerializeType

	// noReply is set by NewResponse for the answer to a oneway request:
	// Conn.Reply drops it.
	noReply bool

	// wire holds the decoded extFields of a hot request (see WireFields).
	wire []Field
}

// IsResponse reports whether flag bit0 is set.
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether flag bit1 is set.
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// NewRequest builds a request in JSON with Ferry's language and version.
// ext may be nil; it is used as is (not copied).
func NewRequest(code int16, ext map[string]string, body []byte) *Command {
	if ext == nil {
		ext = map[string]string{}
	}
	return &Command{
		Code:      code,
		Language:  DefaultLanguage,
		Version:   CurrentVersion,
		ExtFields: ext,
		Body:      body,
	}
}

// NewTypedRequest builds a request like NewRequest whose extFields come
// from the typed header h, written in its fixed order.
func NewTypedRequest(code int16, h Header, body []byte) *Command {
	return &Command{
		Code:     code,
		Language: DefaultLanguage,
		Version:  CurrentVersion,
		Header:   h,
		Body:     body,
	}
}

// NewResponse builds the answer to req: same opaque, flag bit0 set, the
// request's serialize type. The answer to a oneway request is marked so that
// Conn.Reply drops it.
func NewResponse(req *Command, code int16, remark string) *Command {
	return &Command{
		Code:          code,
		Language:      DefaultLanguage,
		Version:       CurrentVersion,
		Opaque:        req.Opaque,
		Flag:          FlagResponse,
		Remark:        remark,
		SerializeType: req.SerializeType,
		noReply:       req.IsOneway(),
	}
}

// Err returns nil for a SUCCESS response and a *ResponseError otherwise.
func (c *Command) Err() error {
	if c.Code == protocol.RespSuccess {
		return nil
	}
	return &ResponseError{Code: c.Code, Remark: c.Remark}
}

// Set stores an extFields value, allocating the map if needed (a typed
// header or wire fields are turned into the map first).
func (c *Command) Set(key, value string) {
	if c.ExtFieldMap() == nil {
		c.ExtFields = map[string]string{}
	}
	c.ExtFields[key] = value
}

// SetInt64 stores an integer extFields value in decimal.
func (c *Command) SetInt64(key string, v int64) { c.Set(key, strconv.FormatInt(v, 10)) }

// SetBool stores a boolean extFields value as "true"/"false".
func (c *Command) SetBool(key string, v bool) { c.Set(key, strconv.FormatBool(v)) }

// Has reports whether key is present in extFields.
func (c *Command) Has(key string) bool {
	_, ok := c.Lookup(key)
	return ok
}

// String returns a required extFields value; a missing key is ErrMissingField.
func (c *Command) String(key string) (string, error) {
	v, ok := c.Lookup(key)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrMissingField, key)
	}
	return v, nil
}

// StringOr returns the extFields value or def when absent.
func (c *Command) StringOr(key, def string) string {
	if v, ok := c.Lookup(key); ok {
		return v
	}
	return def
}

// Int64 parses a required decimal extFields value.
func (c *Command) Int64(key string) (int64, error) {
	return c.parseInt(key, 64)
}

// Int32 parses a required decimal extFields value in int32 range.
func (c *Command) Int32(key string) (int32, error) {
	v, err := c.parseInt(key, 32)
	return int32(v), err
}

func (c *Command) parseInt(key string, bits int) (int64, error) {
	s, err := c.String(key)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: %q=%q is not an int%d", ErrBadField, key, s, bits)
	}
	return v, nil
}

// Int64Or parses an optional decimal value: absent or empty gives def,
// malformed is an error.
func (c *Command) Int64Or(key string, def int64) (int64, error) {
	if v, ok := c.Lookup(key); !ok || v == "" {
		return def, nil
	}
	return c.Int64(key)
}

// Int32Or parses an optional decimal value: absent or empty gives def,
// malformed is an error.
func (c *Command) Int32Or(key string, def int32) (int32, error) {
	if v, ok := c.Lookup(key); !ok || v == "" {
		return def, nil
	}
	return c.Int32(key)
}

// Bool parses a required boolean value ("true"/"false", any case, as Java's
// Boolean.parseBoolean accepts; "1"/"0" too).
func (c *Command) Bool(key string) (bool, error) {
	s, err := c.String(key)
	if err != nil {
		return false, err
	}
	switch s {
	case "true", "TRUE", "True", "1":
		return true, nil
	case "false", "FALSE", "False", "0":
		return false, nil
	}
	return false, fmt.Errorf("%w: %q=%q is not a bool", ErrBadField, key, s)
}

// BoolOr parses an optional boolean: absent or empty gives def.
func (c *Command) BoolOr(key string, def bool) (bool, error) {
	if v, ok := c.Lookup(key); !ok || v == "" {
		return def, nil
	}
	return c.Bool(key)
}

// Clone returns a deep copy (extFields and body copied; a typed Header is
// shared).
func (c *Command) Clone() *Command {
	d := *c
	if c.ExtFields != nil {
		d.ExtFields = make(map[string]string, len(c.ExtFields))
		for k, v := range c.ExtFields {
			d.ExtFields[k] = v
		}
	}
	if c.wire != nil {
		d.wire = append(c.wire[:0:0], c.wire...) // keeps an empty list non-nil
	}
	if c.Body != nil {
		d.Body = append([]byte(nil), c.Body...)
	}
	return &d
}
