package compat

import (
	"context"
	"github.com/ferrymq/ferry/protocol"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/ferrymq/ferry/remoting"
)

const compatACL = `
accounts:
  - accessKey: admin-key
    secretKey: admin-secret
    admin: true
  - accessKey: app-key1
    secretKey: app-secret
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms: [Secure=PUB|SUB]
    groupPerms: [cg-secure=SUB]
`

// TestACLWithOfficialClient: with an ACL file, the official Go client with
// the right credentials produces and consumes; with a wrong secret, an
// unknown key or none it is refused NO_PERMISSION, for sends, pulls,
// heartbeats and admin codes.
func TestACLWithOfficialClient(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "plain_acl.yml")
	if err := os.WriteFile(path, []byte(compatACL), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{name: "ferry server (acl)", dataDir: t.TempDir(), flush: "async", extra: []string{"--acl-file", path}}
	s.start(t)
	const topic, group = "Secure", "cg-secure"
	good := primitive.Credentials{AccessKey: "app-key1", SecretKey: "app-secret"}

	// The official admin client does not sign topic creation (its
	// credentials option only reaches route lookups), so the topic is
	// created with a signed request of Ferry's own.
	create := func(creds remoting.Credentials, name string) *remoting.Command {
		c := remoting.NewClient(remoting.ClientConfig{Credentials: creds})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Invoke(ctx, s.Broker, remoting.NewRequest(protocol.ReqUpdateAndCreateTopic, map[string]string{
			"topic": name, "defaultTopic": "TBW102", "readQueueNums": "2", "writeQueueNums": "2", "perm": "6", "topicFilterType": "SINGLE_TAG"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := create(remoting.Credentials{AccessKey: "admin-key", SecretKey: "admin-secret"}, topic); r.Code != protocol.RespSuccess {
		t.Fatalf("create topic as admin: %d %s", r.Code, r.Remark)
	}
	if r := create(remoting.Credentials{AccessKey: good.AccessKey, SecretKey: good.SecretKey}, "Other"); r.Code != protocol.RespNoPermission || !strings.Contains(r.Remark, "admin") {
		t.Fatalf("create topic as a non-admin: %d %s", r.Code, r.Remark)
	}
	cl := remoting.NewClient(remoting.ClientConfig{Credentials: remoting.Credentials{AccessKey: good.AccessKey, SecretKey: good.SecretKey}})
	defer cl.Close()
	waitFor(t, startTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r, err := remoting.GetRouteInfo(ctx, cl, s.NameSrv, topic)
		return err == nil && len(r.QueueDatas) > 0
	}, "no route for %s", topic)

	p := newProducer(t, s.NameSrv, producer.WithCredentials(good))
	sendSync(t, p, primitive.NewMessage(topic, []byte("signed")))

	rec := &recorder{}
	startPushConsumer(t, s.NameSrv, group, topic, "*", rec.handle, consumer.WithCredentials(good))
	waitFor(t, 30*time.Second, func() bool { return len(rec.all()) >= 1 }, "the signed consumer got nothing")

	// Refused clients, straight at the broker so each check is visible.
	for _, tc := range []struct {
		name  string
		creds remoting.Credentials
		want  string
	}{
		{"no credentials", remoting.Credentials{}, "not signed"},
		{"unknown key", remoting.Credentials{AccessKey: "nobody-key", SecretKey: "app-secret"}, "unknown AccessKey"},
		{"wrong secret", remoting.Credentials{AccessKey: "app-key1", SecretKey: "wrong-secret"}, "signature check failed"},
	} {
		bad := remoting.NewClient(remoting.ClientConfig{Credentials: tc.creds})
		for _, req := range []*remoting.Command{
			remoting.NewRequest(protocol.ReqSendMessageV2, map[string]string{"a": "pg", "b": topic, "c": "TBW102", "d": "4", "e": "0", "f": "0", "g": "0", "h": "0", "i": ""}, []byte("x")),
			remoting.NewRequest(protocol.ReqPullMessage, map[string]string{"consumerGroup": group, "topic": topic, "queueId": "0", "queueOffset": "0", "maxMsgNums": "1", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0", "subVersion": "0"}, nil),
			remoting.NewRequest(protocol.ReqHeartBeat, nil, []byte(`{"clientID":"x","consumerDataSet":[{"groupName":"cg-secure","subscriptionDataSet":[{"topic":"Secure"}]}],"producerDataSet":[]}`)),
			remoting.NewRequest(protocol.ReqDeleteTopicInBroker, map[string]string{"topic": topic}, nil),
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := bad.Invoke(ctx, s.Broker, req)
			cancel()
			if err != nil {
				t.Fatalf("%s %s: %v", tc.name, protocol.RequestName(req.Code), err)
			}
			if resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, tc.want) {
				t.Errorf("%s %s: %d %q", tc.name, protocol.RequestName(req.Code), resp.Code, resp.Remark)
			}
		}
		bad.Close()
	}

	// The official client itself: its sends fail with the broker's reason.
	for _, tc := range []struct {
		name string
		opts []producer.Option
		want string
	}{
		{"wrong secret", []producer.Option{producer.WithCredentials(primitive.Credentials{AccessKey: "app-key1", SecretKey: "wrong-secret"})}, "signature check failed"},
		{"unknown key", []producer.Option{producer.WithCredentials(primitive.Credentials{AccessKey: "nobody-key", SecretKey: "app-secret"})}, "unknown AccessKey"},
		{"no credentials", nil, "not signed"},
	} {
		pr, err := producerNoFatal(s.NameSrv, tc.opts...)
		if err == nil {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = pr.SendSync(sctx, primitive.NewMessage(topic, []byte("refused")))
			scancel()
			_ = pr.Shutdown()
		}
		if err == nil || !strings.Contains(err.Error(), "CODE: 16") || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("official client, %s: %v", tc.name, err)
		}
		t.Logf("official client, %s: %v", tc.name, err)
	}
}

func producerNoFatal(nameSrv string, opts ...producer.Option) (interface {
	SendSync(context.Context, ...*primitive.Message) (*primitive.SendResult, error)
	Shutdown() error
}, error) {
	p, err := rocketmq.NewProducer(append([]producer.Option{producer.WithNameServer([]string{nameSrv}),
		producer.WithGroupName(unique("pg")), producer.WithInstanceName(unique("p")), producer.WithRetry(0)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}
