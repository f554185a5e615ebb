package acl

import (
	"encoding/json"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"sort"
	"testing"

	"github.com/ferrymq/ferry/remoting"
)

const tableFile = `
accounts:
  - accessKey: admin-key
    secretKey: admin-secret
    admin: true
  - accessKey: user-key
    secretKey: user-secret
    topicPerms: [T=PUB|SUB, RO=SUB]
    groupPerms: [G=SUB]
`

// sampleRequest builds a request of code touching topic and group in every
// field the table reads.
func sampleRequest(t *testing.T, code int16, topic, group string) *remoting.Command {
	ext := map[string]string{"topic": topic, "b": topic, "consumerGroup": group, "group": group, "originTopic": topic}
	var body []byte
	switch code {
	case protocol.ReqHeartBeat:
		hb := remoting.HeartbeatData{ClientID: "c", ConsumerDataSet: []remoting.ConsumerData{{
			GroupName: group, SubscriptionDataSet: []remoting.SubscriptionData{{Topic: topic}}}}}
		body, _ = json.Marshal(hb)
	case protocol.ReqLockBatchMQ, protocol.ReqUnlockBatchMQ:
		body, _ = json.Marshal(remoting.LockBatchRequestBody{ConsumerGroup: group, MQSet: []remoting.MessageQueue{{Topic: topic}}})
	case protocol.ReqFerrySendMulti:
		body = multiBody(t, topic)
	}
	return remoting.NewRequest(code, ext, body)
}

// multiBody is a FERRY_SEND_MULTI body with one message to each topic.
func multiBody(t *testing.T, topics ...string) []byte {
	var body []byte
	for _, topic := range topics {
		var err error
		if body, err = protocol.AppendMultiEntry(body, &protocol.MultiEntry{Topic: topic, QueueID: 0, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	return body
}

func signedBy(req *remoting.Command, ak, sk string) *remoting.Command {
	remoting.Credentials{AccessKey: ak, SecretKey: sk}.Sign(req)
	return req
}

// TestEveryRow checks every row of the permission table, allowed and
// refused.
func TestEveryRow(t *testing.T) {
	rules := mustParse(t, tableFile)
	g := NewGuard(remoting.NewMux(), GuardConfig{Rules: func() *Rules { return rules }, ClusterSecret: "cluster-secret-1"})
	codes := make([]int, 0, len(table))
	for c := range table {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	const remote = "10.0.0.1:5555"
	for _, c := range codes {
		code := int16(c)
		r := table[code]
		t.Run(fmt.Sprintf("%d-%s", code, protocol.RequestName(code)), func(t *testing.T) {
			allow := func(req *remoting.Command) {
				t.Helper()
				if _, _, err := g.Check(remote, req); err != nil {
					t.Fatalf("refused: %v", err)
				}
			}
			refuse := func(req *remoting.Command, check string) {
				t.Helper()
				_, _, err := g.Check(remote, req)
				if ref, ok := err.(*Refusal); !ok || ref.Check != check {
					t.Fatalf("got %v, want a %q refusal", err, check)
				}
			}
			switch r.level {
			case levelRes:
				allow(signedBy(sampleRequest(t, code, "T", "G"), "user-key", "user-secret"))
				allow(signedBy(sampleRequest(t, code, "other", "other"), "admin-key", "admin-secret"))
				switch {
				case r.res == nil:
					// No resource: any signed account, whatever it may not touch.
					allow(signedBy(sampleRequest(t, code, "other", "other"), "user-key", "user-secret"))
				case code == protocol.ReqUnregisterClient:
					// Only the consumer group is checked.
					refuse(signedBy(sampleRequest(t, code, "T", "other"), "user-key", "user-secret"), "permission")
				default:
					refuse(signedBy(sampleRequest(t, code, "other", "other"), "user-key", "user-secret"), "permission")
				}
				refuse(sampleRequest(t, code, "T", "G"), "unsigned")
				refuse(signedBy(sampleRequest(t, code, "T", "G"), "user-key", "wrong-secret"), "signature")
			case levelOpen:
				allow(signedBy(sampleRequest(t, code, "other", "other"), "user-key", "user-secret"))
				allow(sampleRequest(t, code, "T", "G"))
				allow(signedBy(sampleRequest(t, code, "T", "G"), "nobody-key", "user-secret"))
			case levelAdmin:
				allow(signedBy(sampleRequest(t, code, "T", "G"), "admin-key", "admin-secret"))
				refuse(signedBy(sampleRequest(t, code, "T", "G"), "user-key", "user-secret"), "admin")
				refuse(sampleRequest(t, code, "T", "G"), "unsigned")
			case levelCluster:
				req := sampleRequest(t, code, "T", "G")
				ClusterCredentials("cluster-secret-1").Sign(req)
				allow(req)
				req = sampleRequest(t, code, "T", "G")
				ClusterCredentials("not-the-secret").Sign(req)
				refuse(req, "cluster")
				refuse(signedBy(sampleRequest(t, code, "T", "G"), "admin-key", "admin-secret"), "cluster")
			default:
				t.Fatalf("unknown level %q", r.level)
			}
			// The same row for unsigned requests on connections
			// authenticated with FERRY_AUTH, as their accounts.
			user, admin := authedAs(t, rules, "user-key"), authedAs(t, rules, "admin-key")
			connCheck := func(ca *connAuth, req *remoting.Command, check string) {
				t.Helper()
				_, _, err := g.checkConn(remote, ca, req)
				if check == "" && err != nil {
					t.Fatalf("authenticated connection: refused: %v", err)
				}
				if ref, ok := err.(*Refusal); check != "" && (!ok || ref.Check != check) {
					t.Fatalf("authenticated connection: got %v, want a %q refusal", err, check)
				}
			}
			switch r.level {
			case levelRes:
				connCheck(user, sampleRequest(t, code, "T", "G"), "")
				connCheck(admin, sampleRequest(t, code, "other", "other"), "")
				switch {
				case r.res == nil:
					connCheck(user, sampleRequest(t, code, "other", "other"), "")
				case code == protocol.ReqUnregisterClient:
					connCheck(user, sampleRequest(t, code, "T", "other"), "permission")
				default:
					connCheck(user, sampleRequest(t, code, "other", "other"), "permission")
				}
			case levelOpen:
				connCheck(user, sampleRequest(t, code, "other", "other"), "")
			case levelAdmin:
				connCheck(admin, sampleRequest(t, code, "T", "G"), "")
				connCheck(user, sampleRequest(t, code, "T", "G"), "admin")
			case levelCluster:
				connCheck(admin, sampleRequest(t, code, "T", "G"), "cluster")
			}
		})
	}
}

// authedAs is the state of a connection authenticated as accessKey.
func authedAs(t *testing.T, rules *Rules, accessKey string) *connAuth {
	t.Helper()
	a, ok := rules.Account(accessKey)
	if !ok {
		t.Fatalf("no account %q", accessKey)
	}
	ca := &connAuth{}
	ca.state.Store(&authState{rules: rules, account: a})
	return ca
}

func TestPermissionDetails(t *testing.T) {
	rules := mustParse(t, tableFile)
	g := NewGuard(remoting.NewMux(), GuardConfig{Rules: func() *Rules { return rules }})
	check := func(req *remoting.Command) error {
		_, _, err := g.Check("127.0.0.1:1", signedBy(req, "user-key", "user-secret"))
		return err
	}
	// PUB on a read-only topic is refused, SUB allowed.
	if err := check(sampleRequest(t, protocol.ReqSendMessageV2, "RO", "G")); err == nil {
		t.Fatal("send to a SUB-only topic allowed")
	}
	if err := check(sampleRequest(t, protocol.ReqPullMessage, "RO", "G")); err != nil {
		t.Fatal(err)
	}
	// A send to a retry topic needs SUB on its group.
	if err := check(sampleRequest(t, protocol.ReqSendMessageV2, "%RETRY%G", "G")); err != nil {
		t.Fatal(err)
	}
	if err := check(sampleRequest(t, protocol.ReqSendMessageV2, "%RETRY%H", "G")); err == nil {
		t.Fatal("send to another group's retry topic allowed")
	}
	// END_TRANSACTION without a topic (the official clients') needs only a
	// signature; with one, PUB on it.
	endTx := sampleRequest(t, protocol.ReqEndTransaction, "", "G")
	delete(endTx.ExtFields, "topic")
	if err := check(endTx); err != nil {
		t.Fatal(err)
	}
	if err := check(sampleRequest(t, protocol.ReqEndTransaction, "RO", "G")); err == nil {
		t.Fatal("END_TRANSACTION naming a SUB-only topic allowed")
	}
	// A multi-queue batch needs PUB on every topic it carries; a body
	// that cannot be read is refused.
	if err := check(remoting.NewRequest(protocol.ReqFerrySendMulti, nil, multiBody(t, "T", "T"))); err != nil {
		t.Fatal(err)
	}
	if err := check(remoting.NewRequest(protocol.ReqFerrySendMulti, nil, multiBody(t, "T", "RO"))); err == nil {
		t.Fatal("multi-queue batch to a SUB-only topic allowed")
	}
	if err := check(remoting.NewRequest(protocol.ReqFerrySendMulti, nil, []byte{0, 5, 'T'})); err == nil {
		t.Fatal("malformed multi-queue batch allowed")
	}
	// Unknown codes need admin.
	if err := check(sampleRequest(t, 9999, "T", "G")); err == nil {
		t.Fatal("unknown code allowed for a non-admin")
	}
	// No rules: everything but the cluster codes passes.
	open := NewGuard(remoting.NewMux(), GuardConfig{})
	if _, _, err := open.Check("127.0.0.1:1", sampleRequest(t, 9999, "T", "G")); err != nil {
		t.Fatal(err)
	}
	// A malformed heartbeat body is refused, not a crash.
	hb := remoting.NewRequest(protocol.ReqHeartBeat, nil, []byte("{"))
	if _, _, err := g.Check("127.0.0.1:1", signedBy(hb, "user-key", "user-secret")); err == nil {
		t.Fatal("malformed heartbeat allowed")
	}
}

func TestKnown(t *testing.T) {
	if !Known(protocol.ReqSendMessage) || Known(9999) {
		t.Fatal("Known")
	}
}
