package acl

import (
	"github.com/ferrymq/ferry/protocol"
	"net/netip"
	"testing"

	"github.com/ferrymq/ferry/remoting"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleFile))
	f.Add([]byte(tableFile))
	f.Add([]byte("globalWhiteRemoteAddresses: ['192.168.1.{1,2}', '10.*.*.*', '1.2.3.4-9']\n"))
	f.Add([]byte("accounts: [{accessKey: abcdefg, secretKey: abcdefg, topicPerms: ['a==b']}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parsed must answer without panicking.
		ext := map[string]string{"AccessKey": "abcdefg", "Signature": "0123456789012345678901234567"}
		for _, host := range []string{"127.0.0.1", "::1", "10.1.2.3"} {
			id, err := r.Authenticate(netip.MustParseAddr(host), ext, data)
			if err == nil && id.Account != nil {
				_ = Authorize(id, Need{Res: []Resource{TopicResource("a", Pub), GroupResource("b", Sub)}}, "fuzz")
			}
		}
	})
}

// FuzzCheck feeds arbitrary request fields and bodies to the guard: the
// signature parser and the body decoders must refuse, never panic, and
// never admit an unsigned request.
func FuzzCheck(f *testing.F) {
	f.Add(int16(protocol.ReqHeartBeat), "user-key", "abc", "T", []byte(`{"consumerDataSet":[{"groupName":"G"}]}`))
	f.Add(int16(protocol.ReqSendMessageV2), "user-key", "0123456789012345678901234567", "T", []byte("x"))
	f.Add(int16(protocol.ReqLockBatchMQ), "", "", "", []byte("{"))
	rules, err := Parse([]byte(tableFile))
	if err != nil {
		f.Fatal(err)
	}
	g := NewGuard(remoting.NewMux(), GuardConfig{Rules: func() *Rules { return rules }, ClusterSecret: "cluster-secret"})
	f.Fuzz(func(t *testing.T, code int16, ak, sig, topic string, body []byte) {
		req := remoting.NewRequest(code, map[string]string{"AccessKey": ak, "Signature": sig, "b": topic, "topic": topic}, body)
		if _, _, err := g.Check("127.0.0.1:1", req); err == nil {
			if r, known := table[code]; known && r.level == levelOpen {
				return // route lookups need nothing
			}
			t.Fatalf("request with a forged signature admitted: code %d ak %q sig %q", code, ak, sig)
		}
	})
}
