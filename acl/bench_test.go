package acl

import (
	"github.com/ferrymq/ferry/protocol"
	"testing"

	"github.com/ferrymq/ferry/remoting"
)

// BenchmarkCheckSend is the guard's work for one signed send: the need,
// the account, the signature and the permission.
func BenchmarkCheckSend(b *testing.B) {
	rules, err := Parse([]byte(tableFile))
	if err != nil {
		b.Fatal(err)
	}
	g := NewGuard(remoting.NewMux(), GuardConfig{Rules: func() *Rules { return rules }})
	req := remoting.NewRequest(protocol.ReqSendMessageV2, map[string]string{
		"a": "producer-group", "b": "T", "c": "TBW102", "d": "4", "e": "3", "f": "0", "g": "1700000000000",
		"h": "0", "i": "UNIQ_KEY\x01ABCDEF0123456789\x02TAGS\x01tag\x02", "j": "0", "k": "false", "m": "false",
	}, make([]byte, 1024))
	remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}.Sign(req)
	b.ReportAllocs()
	b.SetBytes(int64(len(req.Body)))
	for b.Loop() {
		if _, _, err := g.Check("127.0.0.1:40000", req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckSendConnAuth is the guard's work for one unsigned send on
// a connection authenticated with FERRY_AUTH: the need, the connection's
// account and the permission.
func BenchmarkCheckSendConnAuth(b *testing.B) {
	rules, err := Parse([]byte(tableFile))
	if err != nil {
		b.Fatal(err)
	}
	g := NewGuard(remoting.NewMux(), GuardConfig{Rules: func() *Rules { return rules }})
	a, _ := rules.Account("user-key")
	ca := &connAuth{}
	ca.state.Store(&authState{rules: rules, account: a})
	req := remoting.NewRequest(protocol.ReqSendMessageV2, map[string]string{
		"a": "producer-group", "b": "T", "c": "TBW102", "d": "4", "e": "3", "f": "0", "g": "1700000000000",
		"h": "0", "i": "UNIQ_KEY\x01ABCDEF0123456789\x02TAGS\x01tag\x02", "j": "0", "k": "false", "m": "false",
	}, make([]byte, 1024))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := g.checkConn("127.0.0.1:40000", ca, req); err != nil {
			b.Fatal(err)
		}
	}
}
