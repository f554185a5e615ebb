package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/certs"
	ipoll "github.com/ferrymq/ferry/internal/poll"
)

const cmdACL = `
accounts:
  - accessKey: admin-key
    secretKey: admin-secret
    admin: true
  - accessKey: app-key1
    secretKey: app-secret
    topicPerms: [T=PUB|SUB]
`

const clusterSecret = "cluster-secret-0123456789"

// secureServer is a child `ferry server` with TLS, an ACL file and a
// cluster secret.
type secureServer struct {
	cmd               *exec.Cmd
	namesrv, httpAddr string
	cert, key         string
	mu                sync.Mutex
	log               bytes.Buffer
}

func startSecureServer(t *testing.T, extra ...string) *secureServer {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := certs.WriteDev(dir, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	aclPath := filepath.Join(dir, "plain_acl.yml")
	if err := os.WriteFile(aclPath, []byte(cmdACL), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &secureServer{cert: cert, key: key}
	for i, a := range extra {
		if a == "{cert}" { // the server's own (self-signed) certificate
			extra[i] = cert
		}
	}
	s.cmd = exec.Command(os.Args[0], append([]string{"server", "--data-dir", filepath.Join(dir, "data"), "--namesrv-port", "0",
		"--broker-port", "0", "--http-port", "0", "--host", "127.0.0.1", "--advertise-host", "127.0.0.1", "--log-format", "json",
		"--acl-file", aclPath, "--tls-cert", cert, "--tls-key", key}, extra...)...)
	s.cmd.Env = append(os.Environ(), childEnv+"=1", "FERRY_CLUSTER_SECRET="+clusterSecret)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		_ = s.cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			s.mu.Lock()
			s.log.Write(sc.Bytes())
			s.log.WriteByte('\n')
			s.mu.Unlock()
			var line map[string]any
			if sent || json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line["message"] {
			case "name server ready":
				s.namesrv = "127.0.0.1:" + fmt.Sprint(line["port"])
			case "broker ready":
				s.httpAddr, _ = line["http"].(string)
				sent = true
				ready <- nil
			}
		}
		if !sent {
			ready <- fmt.Errorf("server exited before it was ready")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready after 30s")
	}
	return s
}

func (s *secureServer) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// TestSecureServer runs a server with TLS, ACL and a cluster secret: the
// CLI works over TLS with credentials (flags, env or a profile), is
// refused without, fails cleanly in plain text; HTTPS with Basic works;
// no secret shows in the log or in --print-config.
func TestSecureServer(t *testing.T) {
	s := startSecureServer(t)
	base := []string{"--namesrv", s.namesrv, "--tls", "--ca", s.cert, "--timeout", "10s"}
	// The broker registered over TLS with the cluster secret.
	var out string
	if ipoll.Until(context.Background(), 20*time.Second, 50*time.Millisecond, func() bool {
		o, _, code := ferry(t, "", append([]string{"cluster", "list", "--access-key", "admin-key", "--secret-key", "admin-secret"}, base...)...)
		out = o
		return code == 0 && strings.Contains(out, "broker-a")
	}) != nil {
		t.Fatalf("cluster list over TLS never showed the broker: %s\n%s", out, s.logText())
	}
	// Env credentials.
	t.Setenv("FERRY_ACCESS_KEY", "admin-key")
	t.Setenv("FERRY_SECRET_KEY", "admin-secret")
	if _, stderr, code := ferry(t, "", append([]string{"topic", "create", "T", "--queues", "2"}, base...)...); code != 0 {
		t.Fatalf("topic create with env credentials: %s", stderr)
	}
	t.Setenv("FERRY_ACCESS_KEY", "")
	t.Setenv("FERRY_SECRET_KEY", "")
	// A profile file.
	credFile := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(credFile, []byte("[default]\naccess_key = \"app-key1\"\nsecret_key = \"app-secret\"\n\n[ops]\naccess_key = \"admin-key\"\nsecret_key = \"admin-secret\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withFile := append([]string{"--credentials-file", credFile}, base...)
	if _, stderr, code := ferry(t, "", append([]string{"topic", "list", "--profile", "ops"}, withFile...)...); code != 0 {
		t.Fatalf("topic list with the ops profile: %s", stderr)
	}
	if _, stderr, code := ferry(t, "", append([]string{"topic", "list"}, withFile...)...); code == 0 || !strings.Contains(stderr, "admin") {
		t.Fatalf("topic list with the default (non-admin) profile: exit %d %s", code, stderr)
	}
	if _, stderr, code := ferry(t, "", append([]string{"topic", "list", "--profile", "nope"}, withFile...)...); code != 2 || !strings.Contains(stderr, "no profile [nope]") {
		t.Fatalf("unknown profile: exit %d %s", code, stderr)
	}
	// No credentials: refused with the reason.
	if _, stderr, code := ferry(t, "", append([]string{"topic", "list"}, base...)...); code == 0 || !strings.Contains(stderr, "not signed") {
		t.Fatalf("topic list without credentials: exit %d %s", code, stderr)
	}
	// Plain text to the TLS port fails (and does not hang).
	if _, _, code := ferry(t, "", "topic", "list", "--namesrv", s.namesrv, "--timeout", "5s", "--access-key", "admin-key", "--secret-key", "admin-secret"); code == 0 {
		t.Fatal("plain-text CLI against a TLS server succeeded")
	}

	// HTTPS with Basic, as curl -u does.
	pem, _ := os.ReadFile(s.cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", "https://"+s.httpAddr+"/v1/topics/T", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("app-key1", "app-secret"); got != http.StatusOK {
		t.Fatalf("HTTPS with Basic: %d", got)
	}
	if got := get("", ""); got != http.StatusUnauthorized {
		t.Fatalf("HTTPS without credentials: %d", got)
	}

	// Nothing prints a secret.
	logText := s.logText()
	for _, secret := range []string{clusterSecret, "admin-secret", "app-secret"} {
		if strings.Contains(logText, secret) {
			t.Fatalf("the server log shows a secret %q", secret)
		}
	}
	out, _, code := ferry(t, "", "server", "--print-config", "--cluster-secret", clusterSecret)
	if code != 0 || strings.Contains(out, clusterSecret) || !strings.Contains(out, redacted) {
		t.Fatalf("print-config: exit %d\n%s", code, out)
	}
	if _, stderr, code := ferry(t, "", "server", "--print-config", "--cluster-secret", "short"); code != 2 || !strings.Contains(stderr, "too short") {
		t.Fatalf("short cluster secret: exit %d %s", code, stderr)
	}
}

func TestServerSharesACLFile(t *testing.T) {
	cfg := defaultFileConfig()
	cfg.Broker.ACLFile = "acl.yml"
	cfg.shareACL(true, true)
	if cfg.Namesrv.ACLFile != "acl.yml" {
		t.Fatalf("ferry server: name server ACL file %q", cfg.Namesrv.ACLFile)
	}
	cfg = defaultFileConfig()
	cfg.Broker.ACLFile, cfg.Namesrv.ACLFile = "b.yml", "n.yml"
	cfg.shareACL(true, true)
	if cfg.Namesrv.ACLFile != "n.yml" {
		t.Fatal("the name server's own file was replaced")
	}
	cfg = defaultFileConfig()
	cfg.Broker.ACLFile = "b.yml"
	cfg.shareACL(true, false)
	if cfg.Namesrv.ACLFile != "" {
		t.Fatal("ferry namesrv took a broker setting")
	}
}

// A broker trusts a name server certificate signed by [tls] ca_file.
func TestBrokerTrustsTLSCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	caPEM, caKey, err := certs.Generate(certs.Template{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(caPEM, caKey)
	if err != nil {
		t.Fatal(err)
	}
	nsPEM, _, err := certs.Generate(certs.Template{Hosts: []string{"127.0.0.1"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, &ca)
	if err != nil {
		t.Fatal(err)
	}
	own, _, err := certs.WriteDev(dir, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	block, _ := pemDecode(nsPEM)
	leaf, err := x509.ParseCertificate(block)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(cfg *tls.Config) error {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: "127.0.0.1"})
		return err
	}
	if err := verify(tlsConfig{CertFile: own, KeyFile: own}.client()); err == nil {
		t.Fatal("trusted a certificate of an unknown CA")
	}
	if err := verify(tlsConfig{CertFile: own, KeyFile: own, CAFile: caFile}.client()); err != nil {
		t.Fatalf("ca_file not trusted: %v", err)
	}
}

func pemDecode(b []byte) ([]byte, []byte) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, rest
	}
	return blk.Bytes, rest
}

// TestClientCertificateCLI: a server asking for client certificates
// (--tls-client-ca) serves the CLI with --cert/--key and refuses it
// without; its own broker registers with its certificate.
func TestClientCertificateCLI(t *testing.T) {
	// The server's dev certificate is self-signed: it is the client CA
	// too, so its own broker's certificate is a valid client certificate.
	s := startSecureServer(t, "--tls-client-ca", "{cert}")
	ca, err := tls.LoadX509KeyPair(s.cert, s.key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cPEM, kPEM, err := certs.Generate(certs.Template{Hosts: []string{"ops"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, &ca)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	clientCert, clientKey := filepath.Join(dir, "ops.crt"), filepath.Join(dir, "ops.key")
	if err := os.WriteFile(clientCert, cPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clientKey, kPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--namesrv", s.namesrv, "--tls", "--ca", s.cert, "--timeout", "10s", "--access-key", "admin-key", "--secret-key", "admin-secret"}
	var out, stderr string
	if ipoll.Until(context.Background(), 20*time.Second, 50*time.Millisecond, func() bool {
		o, e, code := ferry(t, "", append([]string{"cluster", "list", "--client-cert", clientCert, "--client-key", clientKey}, base...)...)
		out, stderr = o, e
		return code == 0 && strings.Contains(out, "broker-a")
	}) != nil {
		t.Fatalf("cluster list with a client certificate: %s %s\n%s", out, stderr, s.logText())
	}
	if _, _, code := ferry(t, "", append([]string{"cluster", "list", "--timeout", "3s"}, base...)...); code == 0 {
		t.Fatal("served a client without a certificate")
	}
	if _, stderr, code := ferry(t, "", append([]string{"cluster", "list", "--client-cert", clientCert}, base...)...); code != 2 || !strings.Contains(stderr, "go together") {
		t.Fatalf("--client-cert without --client-key: exit %d %s", code, stderr)
	}
}
