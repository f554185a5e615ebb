package namesrv

import (
	"errors"
	"github.com/ferrymq/ferry/protocol"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/remoting"
)

func startSecure(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(ctxT(t)) })
	return s
}

// TestStrayBrokerRefused: with a cluster secret, a process registering as
// a broker without it (or with a wrong one) is refused and not routed; a
// broker with the secret registers.
func TestStrayBrokerRefused(t *testing.T) {
	s := startSecure(t, Config{ClusterSecret: "the-cluster-secret"})
	h := remoting.RegisterBrokerHeader{BrokerName: "evil", BrokerAddr: "127.0.0.1:1", ClusterName: "c", BrokerID: 0}
	for _, creds := range []remoting.Credentials{{}, acl.ClusterCredentials("guessed-secret")} {
		cl := remoting.NewClient(remoting.ClientConfig{Credentials: creds})
		_, err := remoting.RegisterBroker(ctxT(t), cl, s.Addr(), h, brokerBody(remoting.TopicConfig{TopicName: "T", ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}))
		cl.Close()
		var re *remoting.ResponseError
		if err == nil || !errors.As(err, &re) || re.Code != protocol.RespNoPermission || !strings.Contains(re.Remark, "cluster secret") {
			t.Fatalf("stray registration with %v: %v", creds, err)
		}
	}
	if _, ok := s.Registry().Route("T"); ok {
		t.Fatal("a refused broker got a route")
	}
	cl := remoting.NewClient(remoting.ClientConfig{Credentials: acl.ClusterCredentials("the-cluster-secret")})
	defer cl.Close()
	h.BrokerName = "good"
	if _, err := remoting.RegisterBroker(ctxT(t), cl, s.Addr(), h, brokerBody(remoting.TopicConfig{TopicName: "T", ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6})); err != nil {
		t.Fatal(err)
	}
	// Route lookups stay open without an ACL file.
	plain := remoting.NewClient(remoting.ClientConfig{})
	defer plain.Close()
	resp := invoke(t, plain, s.Addr(), remoting.NewRequest(protocol.ReqGetRouteInfoByTopic, map[string]string{"topic": "T"}, nil))
	if resp.Code != protocol.RespSuccess {
		t.Fatalf("route lookup: %d %s", resp.Code, resp.Remark)
	}
}

// TestNamesrvACL: with an ACL file, route lookups stay open (as on
// RocketMQ name servers) and deleting a topic needs admin.
func TestNamesrvACL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain_acl.yml")
	if err := os.WriteFile(path, []byte("accounts:\n - {accessKey: user-key, secretKey: user-secret}\n - {accessKey: admin-key, secretKey: admin-secret, admin: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSecure(t, Config{ACLFile: path})
	call := func(creds remoting.Credentials, code int16) *remoting.Command {
		cl := remoting.NewClient(remoting.ClientConfig{Credentials: creds})
		defer cl.Close()
		return invoke(t, cl, s.Addr(), remoting.NewRequest(code, map[string]string{"topic": "T"}, nil))
	}
	if r := call(remoting.Credentials{}, protocol.ReqGetRouteInfoByTopic); r.Code == protocol.RespNoPermission {
		t.Fatalf("unsigned route lookup refused: %s", r.Remark)
	}
	if r := call(remoting.Credentials{}, protocol.ReqDeleteTopicInNameServer); r.Code != protocol.RespNoPermission {
		t.Fatalf("unsigned delete: %d %s", r.Code, r.Remark)
	}
	if r := call(remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}, protocol.ReqGetRouteInfoByTopic); r.Code == protocol.RespNoPermission {
		t.Fatalf("signed route lookup refused: %s", r.Remark)
	}
	if r := call(remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}, protocol.ReqDeleteTopicInNameServer); r.Code != protocol.RespNoPermission {
		t.Fatalf("delete by a non-admin: %d %s", r.Code, r.Remark)
	}
	if r := call(remoting.Credentials{AccessKey: "admin-key", SecretKey: "admin-secret"}, protocol.ReqDeleteTopicInNameServer); r.Code != protocol.RespSuccess {
		t.Fatalf("delete by an admin: %d %s", r.Code, r.Remark)
	}
}
