package remoting

import (
	"github.com/ferrymq/ferry/protocol"
	"strings"
	"testing"
)

// TestSignKnownAnswer pins the signature of a fixed request: the values
// in key order ("AK1" "v-a" "v-b"), then the body, under HMAC-SHA1.
func TestSignKnownAnswer(t *testing.T) {
	req := NewRequest(protocol.ReqSendMessageV2, map[string]string{"b": "v-b", "a": "v-a", "Signature": "stale", "_UNIQUE_KEY_QUERY": "ignored"}, []byte("body"))
	Credentials{AccessKey: "AK1", SecretKey: "secret1"}.Sign(req)
	if got := string(AppendSignContent(nil, req.ExtFields, req.Body, "")); got != "AK1v-av-bbody" {
		t.Fatalf("content %q", got)
	}
	// echo -n AK1v-av-bbody | openssl dgst -sha1 -hmac secret1 -binary | base64
	if got := req.ExtFields[ExtSignature]; got != "jxTw9RpHzUf/hPwjyGVnwnNsZgI=" {
		t.Fatalf("signature %q", got)
	}
	if s := (Credentials{AccessKey: "AK1", SecretKey: "secret1"}).String(); strings.Contains(s, "secret1") {
		t.Fatalf("String leaks the secret: %s", s)
	}
}

// BenchmarkSign is a client signing a 32 KiB batch, as every request.
func BenchmarkSign(b *testing.B) {
	s := newSigner(Credentials{AccessKey: "AK1", SecretKey: "secret1"})
	req := NewRequest(protocol.ReqSendBatchMessage, map[string]string{"a": "g", "b": "T", "c": "TBW102", "d": "4", "e": "1", "f": "0", "g": "1", "h": "0", "i": "", "m": "true"}, make([]byte, 32<<10))
	b.ReportAllocs()
	b.SetBytes(int64(len(req.Body)))
	for b.Loop() {
		s.sign(req)
	}
}
