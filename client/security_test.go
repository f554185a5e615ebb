package client

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/certs"
	"github.com/ferrymq/ferry/httpapi"
	"github.com/ferrymq/ferry/namesrv"
)

const sdkACL = `
accounts:
  - accessKey: app-key1
    secretKey: app-secret
    topicPerms: [Sec=PUB|SUB]
    groupPerms: [g-sec=SUB]
`

// secureCluster is a name server and a broker with an ACL file, a cluster
// secret and TLS on every port; it returns the name server endpoint, the
// broker's HTTPS endpoint and a client TLS config trusting them.
func secureCluster(t *testing.T) (string, string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, err := certs.WriteDev(dir, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	aclPath := filepath.Join(dir, "plain_acl.yml")
	if err := os.WriteFile(aclPath, []byte(sdkACL), 0o600); err != nil {
		t.Fatal(err)
	}
	srvTLS, err := certs.Server(certFile, keyFile, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cliTLS, err := certs.Client(certFile, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "sdk-cluster-secret-0123"
	ns, err := namesrv.New(namesrv.Config{ListenAddr: "127.0.0.1:0", ACLFile: aclPath, ClusterSecret: secret, TLS: srvTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Shutdown(context.Background()) })
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
	cfg.HTTPHost, cfg.HTTPPort = "127.0.0.1", 0
	cfg.SegmentSize, cfg.MaxMessageSize = 16<<20, 1<<20
	cfg.NamesrvAddrs = []string{ns.Addr()}
	cfg.ACLFile = aclPath
	b, err := broker.New(cfg, broker.WithHTTP(httpapi.Mount()), broker.WithTLS(srvTLS), broker.WithNamesrvTLS(cliTLS), broker.WithClusterSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	if err := b.Admin().CreateTopic(broker.TopicConfig{TopicName: "Sec", ReadQueueNums: 2, WriteQueueNums: 2}); err != nil {
		t.Fatal(err)
	}
	if ns.Registry().ClusterInfo() == nil || len(ns.Registry().ClusterInfo().BrokerAddrTable) == 0 {
		t.Fatal("the broker did not register over TLS with the cluster secret")
	}
	waitFor(t, 10*time.Second, "route of Sec", func() bool { _, ok := ns.Registry().Route("Sec"); return ok })
	return ns.Addr(), "https://" + b.HTTPAddr(), cliTLS
}

// TestSDKCredentialsAndTLS: the SDK with WithCredentials and WithTLS
// produces and pulls over remoting and HTTP; without credentials it is
// refused with the broker's reason.
func TestSDKCredentialsAndTLS(t *testing.T) {
	nsAddr, httpBase, cliTLS := secureCluster(t)
	good := Options(WithCredentials("app-key1", "app-secret"), WithTLS(cliTLS))
	ctx := ctxT(t)

	p := newTestProducer(t, nsAddr, good)
	if _, err := p.Send(ctx, &Message{Topic: "Sec", Body: []byte("over tls, signed")}); err != nil {
		t.Fatalf("signed send: %v", err)
	}
	hp := newTestProducer(t, httpBase, good)
	if _, err := hp.Send(ctx, &Message{Topic: "Sec", Body: []byte("over https, basic")}); err != nil {
		t.Fatalf("HTTPS send: %v", err)
	}
	pc, err := NewPullConsumer(nsAddr, good, WithGroup("g-sec"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	qs, err := pc.Queues(ctx, "Sec")
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	waitFor(t, 10*time.Second, "both messages", func() bool {
		got = 0
		for _, q := range qs {
			r, err := pc.Pull(ctx, q, 0, 16)
			if err != nil {
				t.Fatal(err)
			}
			got += len(r.Messages)
		}
		return got == 2
	})

	// Every request signed instead of the connection authenticated.
	sp := newTestProducer(t, nsAddr, good, WithRequestSigning())
	if _, err := sp.Send(ctx, &Message{Topic: "Sec", Body: []byte("signed per request")}); err != nil {
		t.Fatalf("send signed per request: %v", err)
	}

	// No credentials, and a wrong secret (connection authentication, and
	// per-request signing): refused with the reason.
	for _, opts := range [][]ProducerOption{{WithTLS(cliTLS), WithRetries(0)}, {WithTLS(cliTLS), WithRetries(0), WithCredentials("app-key1", "wrong-secret")},
		{WithTLS(cliTLS), WithRetries(0), WithCredentials("app-key1", "wrong-secret"), WithRequestSigning()}} {
		bad, err := NewProducer(nsAddr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Send(ctx, &Message{Topic: "Sec", Body: []byte("x")})
		bad.Close()
		if err == nil || !(strings.Contains(err.Error(), "not signed") || strings.Contains(err.Error(), "signature")) {
			t.Fatalf("refused send: %v", err)
		}
	}
	// A plain-text client to the TLS name server fails.
	plain, err := NewProducer(nsAddr, WithCredentials("app-key1", "app-secret"), WithRetries(0), WithSendTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Send(ctx, &Message{Topic: "Sec", Body: []byte("x")}); err == nil {
		t.Fatal("plain text to a TLS port succeeded")
	}
}
