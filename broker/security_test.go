package broker

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/internal/apitest"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TestEveryCodeHasAPermission: each request code the broker serves has a
// row in the permission table.
func TestEveryCodeHasAPermission(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	for _, code := range b.mux.Codes() {
		if !acl.Known(code) {
			t.Errorf("request code %d (%s) has no row in the acl permission table", code, protocol.RequestName(code))
		}
	}
}

// TestRemotingACL: unsigned, wrongly signed and unknown-key requests get
// NO_PERMISSION with a remark naming the check, and the same connection
// then serves a signed request.
func TestRemotingACL(t *testing.T) {
	path := apitest.ACLFile(t)
	b := testBroker(t, t.TempDir(), func(c *Config) { c.ACLFile = path })
	c := newClient(t, b)
	send := func(creds remoting.Credentials, topic string) *remoting.Command {
		req := remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
			"producerGroup": "P", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0", "properties": "",
		}, []byte("hello"))
		if !creds.IsZero() {
			creds.Sign(req)
		}
		return c.invoke(req)
	}
	for _, tc := range []struct {
		name   string
		creds  remoting.Credentials
		remark string
	}{
		{"unsigned", remoting.Credentials{}, "not signed"},
		{"unknown key", remoting.Credentials{AccessKey: "who-is-this", SecretKey: "user-secret"}, "unknown AccessKey"},
		{"wrong secret", remoting.Credentials{AccessKey: "user-key", SecretKey: "wrong-secret"}, "signature check failed"},
	} {
		resp := send(tc.creds, "T")
		if resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, tc.remark) {
			t.Fatalf("%s: %d %q", tc.name, resp.Code, resp.Remark)
		}
		if strings.Contains(resp.Remark, "secret") && strings.Contains(resp.Remark, "user-secret") {
			t.Fatalf("%s: remark leaks the secret", tc.name)
		}
	}
	user := remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}
	mustOK(t, send(user, "T"))
	if resp := send(user, "Other"); resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "PUB on topic Other") {
		t.Fatalf("send to a topic without permission: %d %q", resp.Code, resp.Remark)
	}
	// An admin code from a non-admin account.
	del := remoting.NewRequest(protocol.ReqDeleteTopicInBroker, map[string]string{"topic": "T"}, nil)
	user.Sign(del)
	if resp := c.invoke(del); resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "admin") {
		t.Fatalf("admin code: %d %q", resp.Code, resp.Remark)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAuditLog: a refused request and an admin action each leave one
// audit line with the account and the client address.
func TestAuditLog(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
	cfg.SegmentSize, cfg.MaxMessageSize = 16<<20, 1<<20
	cfg.ACLFile = apitest.ACLFile(t)
	var logs lockedBuf
	b, err := New(cfg, WithLogger(zerolog.New(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	c := newClient(t, b)
	bad := remoting.NewRequest(protocol.ReqDeleteTopicInBroker, map[string]string{"topic": "T"}, nil)
	remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}.Sign(bad)
	c.invoke(bad)
	good := remoting.NewRequest(protocol.ReqGetBrokerConfig, nil, nil)
	remoting.Credentials{AccessKey: "admin-key", SecretKey: "admin-secret"}.Sign(good)
	mustOK(t, c.invoke(good))
	var refused, admin map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["log"] != "audit" {
			continue
		}
		switch m["event"] {
		case "refused":
			refused = m
		case "admin":
			admin = m
		}
	}
	if refused == nil || refused["account"] != "user-key" || refused["check"] != "admin" || !strings.HasPrefix(refused["remote"].(string), "127.0.0.1:") {
		t.Fatalf("refusal line: %v\n%s", refused, logs.String())
	}
	if admin == nil || admin["account"] != "admin-key" || admin["action"] != "GET_BROKER_CONFIG" && admin["action"] != "26" {
		t.Fatalf("admin line: %v\n%s", admin, logs.String())
	}
	if strings.Contains(logs.String(), "user-secret") || strings.Contains(logs.String(), "admin-secret") {
		t.Fatal("a secret in the log")
	}
}

// TestRemotingConnAuthReload: a client that authenticated its connection
// (FERRY_AUTH) sends unsigned; when a reload of the ACL file removes its
// account, its next request is refused as revoked and the connection
// closed, and the new connection it dials is refused for the unknown key.
func TestRemotingConnAuthReload(t *testing.T) {
	path := apitest.ACLFile(t)
	b := testBroker(t, t.TempDir(), func(c *Config) { c.ACLFile = path })
	cl := remoting.NewClient(remoting.ClientConfig{Authenticate: true,
		Credentials: remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}})
	defer cl.Close()
	send := func(topic string) (*remoting.Command, *remoting.Conn) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := cl.Conn(ctx, b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		req := remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
			"producerGroup": "P", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0", "properties": "",
		}, []byte("hello"))
		resp, err := conn.Invoke(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, conn
	}
	resp, first := send("T")
	mustOK(t, resp)
	if resp, _ := send("Other"); resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "PUB on topic Other") {
		t.Fatalf("send without permission: %d %q", resp.Code, resp.Remark)
	}
	if err := os.WriteFile(path, []byte("accounts:\n  - accessKey: admin-key\n    secretKey: admin-secret\n    admin: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, conn := send("T")
		if conn != first {
			t.Fatal("connection replaced before the refusal")
		}
		if resp.Code != protocol.RespSuccess {
			if resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "revoked") {
				t.Fatalf("after the reload: %d %q", resp.Code, resp.Remark)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reload did not revoke the connection")
		}
	}
	select {
	case <-first.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("revoked connection not closed")
	}
	resp, conn := send("T")
	if conn == first || resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, "unknown AccessKey") {
		t.Fatalf("on a new connection after the revocation: %d %q", resp.Code, resp.Remark)
	}
}
