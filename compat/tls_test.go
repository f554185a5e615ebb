package compat

import (
	"context"
	"github.com/ferrymq/ferry/protocol"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/ferrymq/ferry/certs"
	"github.com/ferrymq/ferry/remoting"
)

// tlsChildEnv carries the name server address to the child process that
// runs the official client with TLS: its WithTls option changes a
// process-wide default, so it must not run beside the other tests.
const tlsChildEnv = "FERRY_COMPAT_TLS_NAMESRV"

// TestOfficialClientTLS: the official Go client with WithTls(true) and
// credentials produces and consumes through a Ferry server with TLS and
// an ACL file on every port.
func TestOfficialClientTLS(t *testing.T) {
	if ns := os.Getenv(tlsChildEnv); ns != "" {
		officialClientOverTLS(t, ns)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	cert, key, err := certs.WriteDev(dir, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	aclPath := filepath.Join(dir, "plain_acl.yml")
	if err := os.WriteFile(aclPath, []byte(compatACL), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "ferry server (tls)", "server", "--data-dir", filepath.Join(dir, "data"),
		"--namesrv-port", "0", "--broker-port", "0", "--http-port", "0", "--host", "127.0.0.1",
		"--advertise-host", "127.0.0.1", "--log-format", "json",
		"--acl-file", aclPath, "--tls-cert", cert, "--tls-key", key)
	ns := p.waitLog(t, "name server ready", startTimeout)
	br := p.waitLog(t, "broker ready", startTimeout)
	port, err := strconv.Atoi(fieldString(t, ns, "port"))
	if err != nil {
		t.Fatal(err)
	}
	nameSrv, brokerAddr := "127.0.0.1:"+strconv.Itoa(port), fieldString(t, br, "addr")
	// Create the topic with Ferry's own client (the official admin does
	// not sign topic creation) and wait for its route, over TLS.
	cliTLS, err := certs.Client(cert, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cl := remoting.NewClient(remoting.ClientConfig{TLS: cliTLS, Credentials: remoting.Credentials{AccessKey: "admin-key", SecretKey: "admin-secret"}})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, brokerAddr, remoting.NewRequest(protocol.ReqUpdateAndCreateTopic, map[string]string{
		"topic": "Secure", "defaultTopic": "TBW102", "readQueueNums": "2", "writeQueueNums": "2", "perm": "6", "topicFilterType": "SINGLE_TAG"}, nil))
	if err != nil || resp.Code != protocol.RespSuccess {
		t.Fatalf("create topic over TLS: %v %v", err, resp)
	}
	waitFor(t, startTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := remoting.GetRouteInfo(ctx, cl, nameSrv, "Secure")
		return err == nil
	}, "no route for Secure")
	child := exec.Command(os.Args[0], "-test.run", "^TestOfficialClientTLS$", "-test.count=1")
	child.Env = append(os.Environ(), tlsChildEnv+"="+nameSrv)
	out, err := child.CombinedOutput()
	if err != nil {
		t.Fatalf("official client over TLS: %v\n%s", err, out)
	}
}

func officialClientOverTLS(t *testing.T, nameSrv string) {
	creds := primitive.Credentials{AccessKey: "admin-key", SecretKey: "admin-secret"}
	const topic = "Secure"
	pr := newProducer(t, nameSrv, producer.WithTls(true), producer.WithCredentials(creds))
	sendSync(t, pr, primitive.NewMessage(topic, []byte("over tls")))
	rec := &recorder{}
	startPushConsumer(t, nameSrv, "cg-tls", topic, "*", rec.handle, consumer.WithTls(true), consumer.WithCredentials(creds))
	waitFor(t, 30*time.Second, func() bool { return len(rec.all()) >= 1 }, "nothing consumed over TLS")
}
