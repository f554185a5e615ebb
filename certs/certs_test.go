package certs

import (
	"context"
	"crypto/tls"
	"github.com/ferrymq/ferry/internal/zslog"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/remoting"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pki is a CA and files signed by it, written in a temp dir.
type pki struct {
	dir    string
	ca     tls.Certificate
	caFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	now := time.Now()
	certPEM, keyPEM, err := Generate(Template{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: t.TempDir(), ca: ca}
	p.caFile = filepath.Join(p.dir, "ca.crt")
	if err := os.WriteFile(p.caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue writes a certificate for 127.0.0.1 valid from nb to na, signed by
// the CA, as name.crt and name.key.
func (p *pki) issue(t *testing.T, name string, nb, na time.Time) (string, string) {
	t.Helper()
	certPEM, keyPEM, err := Generate(Template{Hosts: []string{"127.0.0.1"}, NotBefore: nb, NotAfter: na}, &p.ca)
	if err != nil {
		t.Fatal(err)
	}
	c, k := filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if err := os.WriteFile(c, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, k
}

// serve runs a remoting server answering SUCCESS behind TLS cfg.
func serve(t *testing.T, cfg *tls.Config, log zerolog.Logger) string {
	t.Helper()
	mux := remoting.NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, func(c *remoting.Conn, req *remoting.Command) {
		_ = c.Reply(remoting.NewResponse(req, protocol.RespSuccess, ""))
	})
	srv := remoting.NewServer(mux, remoting.ServerConfig{Logger: zslog.New(log)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

func call(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	cl := remoting.NewClient(remoting.ClientConfig{TLS: cfg, DialTimeout: 2 * time.Second})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, addr, remoting.NewRequest(protocol.ReqHeartBeat, nil, nil))
	if err != nil {
		return err
	}
	return resp.Err()
}

func TestTLSTrustExpiryAndPlainText(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	cert, key := p.issue(t, "server", now.Add(-time.Hour), now.Add(time.Hour))
	var logs syncBuf
	cfg, err := Server(cert, key, "", zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg, zerolog.New(&logs))

	trusting, err := Client(p.caFile, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, addr, trusting); err != nil {
		t.Fatalf("trusted call: %v", err)
	}
	if err := call(t, addr, &tls.Config{MinVersion: tls.VersionTLS12}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server certificate accepted: %v", err)
	}
	insecure, _ := Client("", true, "", "")
	if err := call(t, addr, insecure); err != nil {
		t.Fatalf("insecure-skip-verify: %v", err)
	}
	// Plain text to the TLS port fails, and the server says why.
	if err := call(t, addr, nil); err == nil {
		t.Fatal("plain text to a TLS port succeeded")
	}
	if err := poll.Until(context.Background(), 5*time.Second, 5*time.Millisecond, func() bool {
		return strings.Contains(logs.String(), "plain text on a TLS port")
	}); err != nil {
		t.Fatalf("no log line for the plain-text client: %s", logs.String())
	}

	// An expired server certificate is refused.
	ecert, ekey := p.issue(t, "expired", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	ecfg, err := Server(ecert, ekey, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	eaddr := serve(t, ecfg, zerolog.Nop())
	if err := call(t, eaddr, trusting); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired certificate: %v", err)
	}
}

func TestClientCertificates(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	cert, key := p.issue(t, "server", now.Add(-time.Hour), now.Add(time.Hour))
	cfg, err := Server(cert, key, p.caFile, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg, zerolog.Nop())
	noCert, _ := Client(p.caFile, false, "", "")
	if err := call(t, addr, noCert); err == nil {
		t.Fatal("client without a certificate accepted")
	}
	ccert, ckey := p.issue(t, "client", now.Add(-time.Hour), now.Add(time.Hour))
	withCert, err := Client(p.caFile, false, ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, addr, withCert); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
}

func TestReloaderReloads(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	cert, key := p.issue(t, "server", now.Add(-time.Hour), now.Add(time.Hour))
	var logs syncBuf
	r, err := NewReloader(cert, key, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.GetCertificate(nil)
	// A broken key file keeps the old pair.
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.checked = time.Time{}
	if got, _ := r.GetCertificate(nil); got != first || !strings.Contains(logs.String(), "previous one stays") {
		t.Fatalf("broken pair: got new cert or no log: %s", logs.String())
	}
	// A new pair is picked up.
	p.issue(t, "server", now.Add(-time.Hour), now.Add(2*time.Hour))
	r.checked = time.Time{}
	got, _ := r.GetCertificate(nil)
	if got == first || !strings.Contains(logs.String(), "key pair reloaded") {
		t.Fatalf("new pair not loaded: %s", logs.String())
	}
}

func TestWriteDev(t *testing.T) {
	dir := t.TempDir()
	c, k, err := WriteDev(dir, nil, 30)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf == nil || pair.Leaf.NotAfter.Before(time.Now().Add(29*24*time.Hour)) {
		t.Fatalf("leaf: %+v", pair.Leaf)
	}
	if fi, _ := os.Stat(k); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	if _, _, err := WriteDev(dir, nil, 30); err == nil {
		t.Fatal("overwrote existing files")
	}
	// It serves: a client trusting the dev certificate connects.
	cfg, err := Server(c, k, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg, zerolog.Nop())
	cl, _ := Client(c, false, "", "")
	if err := call(t, addr, cl); err != nil {
		t.Fatal(err)
	}
}
