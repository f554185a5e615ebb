package remoting

import (
	"reflect"
	"testing"
)

func seedFrames(f *testing.F) {
	for _, h := range capturedHeaders {
		c, err := DecodeJSONHeader([]byte(h.json))
		if err != nil {
			f.Fatal(err)
		}
		c.Body = []byte("body")
		b, _ := AppendFrame(nil, c)
		f.Add(b)
		c.SerializeType = SerializeRocketMQ
		b, _ = AppendFrame(nil, c)
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
}

// FuzzDecodeFrame: never panics; whatever decodes re-encodes to a frame
// that decodes to the same command.
func FuzzDecodeFrame(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, n, err := DecodeFrame(b, 1<<20)
		if err != nil {
			return
		}
		if n < 8 || n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		out, err := AppendFrame(nil, c)
		if err != nil {
			return // e.g. a binary key that cannot be re-encoded
		}
		c2, n2, err := DecodeFrame(out, 0)
		if err != nil || n2 != len(out) {
			t.Fatalf("re-decode: %v (n=%d/%d)", err, n2, len(out))
		}
		assertSameCommand(t, c, c2)
	})
}

// FuzzDecodeJSONHeader: never panics; decode → encode → decode is stable.
func FuzzDecodeJSONHeader(f *testing.F) {
	for _, h := range capturedHeaders {
		f.Add([]byte(h.json))
	}
	f.Add([]byte(`{"code":1,"extFields":{"a":1,"b":true,"c":null,"d":"\u0000\ud800"},"remark":"\xff"}`))
	f.Add([]byte(`{"language":9}`))
	f.Add([]byte(` { "code" : -1 , "flag":2147483647,"extFields" : { "a" : "é" , "a":"b"} , "serializeTypeCurrentRPC":"JSON" } `))
	f.Add([]byte(`{"code":01}`))
	f.Add([]byte(`{"remark":"\ud83d\ude00 \ud800 \ud800\u0041 \udc00x","extFields":{"p":"a\u0001b\u0002"}}`))
	f.Add([]byte(`{"code":1.0,"extFields":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The fast path, where it succeeds, agrees with encoding/json.
		if fast, ok := decodeJSONHeaderFast(b, false); ok {
			slow, err := decodeJSONHeaderSlow(b)
			if err != nil {
				t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, b)
			}
			if !reflect.DeepEqual(normalized(fast), normalized(slow)) {
				t.Fatalf("fast and slow paths differ on %q:\n%+v\n%+v", b, fast, slow)
			}
		}
		c, err := DecodeJSONHeader(b)
		if err != nil {
			return
		}
		enc := AppendJSONHeader(nil, c)
		c2, err := DecodeJSONHeader(enc)
		if err != nil {
			t.Fatalf("re-decode %q: %v", enc, err)
		}
		assertSameCommand(t, c, c2)
		if enc2 := AppendJSONHeader(nil, c2); string(enc2) != string(enc) {
			t.Fatalf("encoding not stable:\n%q\n%q", enc, enc2)
		}
	})
}

// FuzzDecodeBinaryHeader: never panics; decode → encode → decode is stable.
func FuzzDecodeBinaryHeader(f *testing.F) {
	for _, h := range capturedHeaders {
		c, _ := DecodeJSONHeader([]byte(h.json))
		b, _ := AppendBinaryHeader(nil, c)
		f.Add(b)
	}
	f.Add(make([]byte, binaryFixedLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeBinaryHeader(b)
		if err != nil {
			return
		}
		enc, err := AppendBinaryHeader(nil, c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := DecodeBinaryHeader(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		assertSameCommand(t, c, c2)
	})
}

// normalized is a copy of c with its extFields in the map form.
func normalized(c *Command) *Command {
	d := c.Clone()
	d.ExtFieldMap()
	return d
}

func assertSameCommand(t *testing.T, a, b *Command) {
	t.Helper()
	a, b = normalized(a), normalized(b)
	if len(a.ExtFields) == 0 && len(b.ExtFields) == 0 {
		a, b = a.Clone(), b.Clone()
		a.ExtFields, b.ExtFields = nil, nil
	}
	if len(a.Body) == 0 && len(b.Body) == 0 {
		a, b = a.Clone(), b.Clone()
		a.Body, b.Body = nil, nil
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("commands differ:\n%+v\n%+v", a, b)
	}
}
