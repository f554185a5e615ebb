package acl

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// recorder answers every request SUCCESS and keeps the last request's
// extension fields.
type recorder struct {
	mu   sync.Mutex
	last map[string]string
	n    atomic.Int64
}

func (h *recorder) ServeRemoting(c *remoting.Conn, req *remoting.Command) {
	h.mu.Lock()
	h.last = req.ExtFieldMap()
	h.mu.Unlock()
	h.n.Add(1)
	_ = c.Reply(remoting.NewResponse(req, protocol.RespSuccess, ""))
}

func (h *recorder) ServeBatch(c *remoting.Conn, reqs []*remoting.Command) {
	for _, req := range reqs {
		h.ServeRemoting(c, req)
	}
}

func (h *recorder) lastField(k string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.last[k]
	return v, ok
}

// authServer is a remoting server on 127.0.0.1 behind handler; it is
// stopped at the end of the test.
func authServer(t *testing.T, handler remoting.Handler) string {
	t.Helper()
	srv := remoting.NewServer(handler, remoting.ServerConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// guarded is a server with a Guard over rules that the test may swap (an
// ACL reload), serving sends and one admin code with rec.
func guarded(t *testing.T, rules *atomic.Pointer[Rules], rec *recorder) string {
	mux := remoting.NewMux()
	mux.HandleBatch(protocol.ReqSendMessageV2, rec)
	mux.Handle(protocol.ReqDeleteTopicInBroker, rec)
	return authServer(t, NewGuard(mux, GuardConfig{Rules: rules.Load}))
}

func rulesOf(t *testing.T, s string) *atomic.Pointer[Rules] {
	var p atomic.Pointer[Rules]
	p.Store(mustParse(t, s))
	return &p
}

// rawConn is a connection that neither signs nor authenticates.
func rawConn(t *testing.T, addr string) *remoting.Conn {
	t.Helper()
	cl := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { _ = cl.Close() })
	c, err := cl.Conn(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func invoke(t *testing.T, c *remoting.Conn, req *remoting.Command) *remoting.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func sendReq(topic string) *remoting.Command {
	return remoting.NewRequest(protocol.ReqSendMessageV2, map[string]string{"a": "P", "b": topic}, []byte("x"))
}

func hello(accessKey, clientNonce string) *remoting.Command {
	return remoting.NewRequest(protocol.ReqFerryAuth, map[string]string{
		protocol.AuthFieldStep: "1", protocol.AuthFieldMech: protocol.AuthMechHMACSHA256,
		protocol.AuthFieldKey: accessKey, protocol.AuthFieldClientNonce: clientNonce}, nil)
}

func proofReq(proof []byte) *remoting.Command {
	return remoting.NewRequest(protocol.ReqFerryAuth, map[string]string{
		protocol.AuthFieldStep: "2", protocol.AuthFieldProof: base64.StdEncoding.EncodeToString(proof)}, nil)
}

// handshake runs FERRY_AUTH by hand on c and returns the step 2 request
// it sent (a captured proof) with the answer.
func handshake(t *testing.T, c *remoting.Conn, ak, sk string) (*remoting.Command, *remoting.Command) {
	t.Helper()
	cn := remoting.NewAuthNonce()
	resp := invoke(t, c, hello(ak, cn))
	if resp.Code != protocol.RespSuccess {
		t.Fatalf("step 1: %d %q", resp.Code, resp.Remark)
	}
	sn, err := protocol.DecodeAuthServerNonce(resp.ExtFields)
	if err != nil {
		t.Fatal(err)
	}
	p := proofReq(remoting.AuthProofMAC([]byte(sk), protocol.AuthClientLabel, ak, cn, sn))
	captured := remoting.NewRequest(p.Code, map[string]string{}, nil)
	for k, v := range p.ExtFields {
		captured.ExtFields[k] = v
	}
	return captured, invoke(t, c, p)
}

func wantRefused(t *testing.T, what string, resp *remoting.Command, remark string) {
	t.Helper()
	if resp.Code != protocol.RespNoPermission || !strings.Contains(resp.Remark, remark) {
		t.Fatalf("%s: got %d %q, want NO_PERMISSION with %q", what, resp.Code, resp.Remark, remark)
	}
}

func wantOK(t *testing.T, what string, resp *remoting.Command) {
	t.Helper()
	if resp.Code != protocol.RespSuccess {
		t.Fatalf("%s: got %d %q", what, resp.Code, resp.Remark)
	}
}

// TestConnAuth: a client with Authenticate proves its key once; its
// requests then go unsigned and are served as its account, with the
// account's permissions checked per request.
func TestConnAuth(t *testing.T) {
	rec := &recorder{}
	addr := guarded(t, rulesOf(t, tableFile), rec)
	cl := remoting.NewClient(remoting.ClientConfig{Authenticate: true,
		Credentials: remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}})
	defer cl.Close()
	c, err := cl.Conn(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "send to T", invoke(t, c, sendReq("T")))
	if sig, ok := rec.lastField(remoting.ExtSignature); ok {
		t.Fatalf("request on an authenticated connection carries a Signature %q", sig)
	}
	wantRefused(t, "send to Other", invoke(t, c, sendReq("Other")), "PUB on topic Other")
	wantRefused(t, "send to a SUB-only topic", invoke(t, c, sendReq("RO")), "PUB on topic RO")
	wantRefused(t, "admin code", invoke(t, c, remoting.NewRequest(protocol.ReqDeleteTopicInBroker, map[string]string{"topic": "T"}, nil)), "admin")
	// A request's own signature takes precedence: an admin's signed
	// request passes on a user's connection, a badly signed one does not.
	del := remoting.NewRequest(protocol.ReqDeleteTopicInBroker, map[string]string{"topic": "T"}, nil)
	remoting.Credentials{AccessKey: "admin-key", SecretKey: "admin-secret"}.Sign(del)
	wantOK(t, "admin-signed request on a user connection", invoke(t, c, del))
	bad := sendReq("T")
	remoting.Credentials{AccessKey: "user-key", SecretKey: "wrong-secret"}.Sign(bad)
	wantRefused(t, "badly signed request on an authenticated connection", invoke(t, c, bad), "signature check failed")
	if n := rec.n.Load(); n != 2 {
		t.Fatalf("handler served %d requests, want 2", n)
	}
}

// TestConnAuthRefusals: unknown key, wrong secret, a forged proof, a
// proof without step 1, a second proof for one nonce, a malformed step,
// and an unsigned request on a connection that did not authenticate.
func TestConnAuthRefusals(t *testing.T) {
	rec := &recorder{}
	addr := guarded(t, rulesOf(t, tableFile), rec)
	c := rawConn(t, addr)

	wantRefused(t, "unsigned request, no handshake", invoke(t, c, sendReq("T")), "not signed")

	err := remoting.Authenticate(context.Background(), c, remoting.Credentials{AccessKey: "user-key", SecretKey: "wrong-secret"})
	var refused *remoting.AuthRefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Remark, "proof does not match") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "user-secret") {
		t.Fatal("refusal shows the secret")
	}
	err = remoting.Authenticate(context.Background(), c, remoting.Credentials{AccessKey: "nobody-key", SecretKey: "user-secret"})
	if !errors.As(err, &refused) || !strings.Contains(refused.Remark, "unknown AccessKey") {
		t.Fatalf("unknown key: %v", err)
	}
	wantRefused(t, "unsigned request after failed handshakes", invoke(t, c, sendReq("T")), "not signed")

	// A forged proof, then the right one for the same nonce: one proof
	// per server nonce.
	cn := remoting.NewAuthNonce()
	resp := invoke(t, c, hello("user-key", cn))
	wantOK(t, "step 1", resp)
	sn, _ := protocol.DecodeAuthServerNonce(resp.ExtFields)
	forged := make([]byte, protocol.AuthProofLen)
	_, _ = rand.Read(forged)
	wantRefused(t, "forged proof", invoke(t, c, proofReq(forged)), "proof does not match")
	right := remoting.AuthProofMAC([]byte("user-secret"), protocol.AuthClientLabel, "user-key", cn, sn)
	wantRefused(t, "second proof for one nonce", invoke(t, c, proofReq(right)), "without a step 1")
	// A proof of the server's label (a reflected server proof) is not a client proof.
	resp = invoke(t, c, hello("user-key", cn))
	sn, _ = protocol.DecodeAuthServerNonce(resp.ExtFields)
	reflected := remoting.AuthProofMAC([]byte("user-secret"), protocol.AuthServerLabel, "user-key", cn, sn)
	wantRefused(t, "server-labelled proof", invoke(t, c, proofReq(reflected)), "proof does not match")

	for name, ext := range map[string]map[string]string{
		"no step":       {},
		"bad step":      {protocol.AuthFieldStep: "3"},
		"bad mech":      {protocol.AuthFieldStep: "1", protocol.AuthFieldMech: "MD5", protocol.AuthFieldKey: "user-key", protocol.AuthFieldClientNonce: cn},
		"short nonce":   {protocol.AuthFieldStep: "1", protocol.AuthFieldMech: protocol.AuthMechHMACSHA256, protocol.AuthFieldKey: "user-key", protocol.AuthFieldClientNonce: "AAAA"},
		"proof not b64": {protocol.AuthFieldStep: "2", protocol.AuthFieldProof: strings.Repeat("!", 44)},
	} {
		wantRefused(t, name, invoke(t, c, remoting.NewRequest(protocol.ReqFerryAuth, ext, nil)), "malformed FERRY_AUTH")
	}
	if n := rec.n.Load(); n != 0 {
		t.Fatalf("handler served %d requests, want 0", n)
	}
	// The connection still authenticates properly after all that.
	if err := remoting.Authenticate(context.Background(), c, remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, "send after a good handshake", invoke(t, c, sendReq("T")))
}

// TestConnAuthReplay: a proof captured from one connection's handshake is
// refused on another connection, after a step 1 of its own or without.
func TestConnAuthReplay(t *testing.T) {
	rec := &recorder{}
	addr := guarded(t, rulesOf(t, tableFile), rec)
	a := rawConn(t, addr)
	captured, resp := handshake(t, a, "user-key", "user-secret")
	wantOK(t, "original handshake", resp)
	wantOK(t, "send on the original connection", invoke(t, a, sendReq("T")))

	cl := remoting.NewClient(remoting.ClientConfig{})
	defer cl.Close()
	// A second client: a new connection to the same server.
	b, err := cl.Conn(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("same connection")
	}
	wantRefused(t, "replayed proof without step 1", invoke(t, b, captured), "without a step 1")
	// The attacker replays step 1 with the victim's client nonce too: the
	// server's nonce is new, so the old proof does not match.
	resp = invoke(t, b, hello("user-key", remoting.NewAuthNonce()))
	wantOK(t, "attacker's step 1", resp)
	wantRefused(t, "replayed proof after a new step 1", invoke(t, b, captured), "proof does not match")
	wantRefused(t, "unsigned send on the attacker's connection", invoke(t, b, sendReq("T")), "not signed")
}

// TestConnAuthReload: permission changes apply to authenticated
// connections at once; a removed account or a changed secret revokes
// them: the next request is refused and the connection closed.
func TestConnAuthReload(t *testing.T) {
	rec := &recorder{}
	rules := rulesOf(t, tableFile)
	addr := guarded(t, rules, rec)
	for _, tc := range []struct {
		name, file, remark string
	}{
		{"account removed", `
accounts:
  - accessKey: admin-key
    secretKey: admin-secret
    admin: true
`, "removed AccessKey \"user-key\""},
		{"secret changed", `
accounts:
  - accessKey: user-key
    secretKey: another-secret
    topicPerms: [T=PUB|SUB]
`, "changed the secret key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules.Store(mustParse(t, tableFile))
			c := rawConn(t, addr)
			if _, resp := handshake(t, c, "user-key", "user-secret"); resp.Code != protocol.RespSuccess {
				t.Fatalf("handshake: %q", resp.Remark)
			}
			wantOK(t, "send before the reload", invoke(t, c, sendReq("T")))
			// Same secret, fewer permissions: applies, connection stays.
			rules.Store(mustParse(t, strings.Replace(tableFile, "T=PUB|SUB", "T=SUB", 1)))
			wantRefused(t, "send after losing PUB", invoke(t, c, sendReq("T")), "PUB on topic T")
			rules.Store(mustParse(t, tableFile))
			wantOK(t, "send after getting PUB back", invoke(t, c, sendReq("T")))

			rules.Store(mustParse(t, tc.file))
			wantRefused(t, "send after the reload", invoke(t, c, sendReq("T")), tc.remark)
			select {
			case <-c.Closed():
			case <-time.After(10 * time.Second):
				t.Fatal("revoked connection not closed")
			}
		})
	}
}

// TestConnAuthFallback: against a server without FERRY_AUTH (a plain mux,
// or a guard without an ACL file) the client signs every request.
func TestConnAuthFallback(t *testing.T) {
	creds := remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}
	for name, wrap := range map[string]func(remoting.Handler) remoting.Handler{
		"no code":        func(h remoting.Handler) remoting.Handler { return h },
		"guard, no file": func(h remoting.Handler) remoting.Handler { return NewGuard(h, GuardConfig{}) },
	} {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			mux := remoting.NewMux()
			mux.Handle(protocol.ReqSendMessageV2, rec)
			addr := authServer(t, wrap(mux))
			cl := remoting.NewClient(remoting.ClientConfig{Authenticate: true, Credentials: creds})
			defer cl.Close()
			c, err := cl.Conn(context.Background(), addr)
			if err != nil {
				t.Fatal(err)
			}
			wantOK(t, "send", invoke(t, c, sendReq("T")))
			sig, _ := rec.lastField(remoting.ExtSignature)
			ak, _ := rec.lastField(remoting.ExtAccessKey)
			if len(sig) != remoting.SignatureLen || ak != "user-key" {
				t.Fatalf("request not signed: AccessKey %q Signature %q", ak, sig)
			}
		})
	}
	// A guard with an ACL file and a wrong secret: the handshake is
	// refused, the client signs, and the server refuses each request
	// saying why.
	addr := guarded(t, rulesOf(t, tableFile), &recorder{})
	cl := remoting.NewClient(remoting.ClientConfig{Authenticate: true, Credentials: remoting.Credentials{AccessKey: "user-key", SecretKey: "wrong-secret"}})
	defer cl.Close()
	c, err := cl.Conn(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "send with a wrong secret", invoke(t, c, sendReq("T")), "signature check failed")
}

// TestConnAuthServerProof: a server that accepts any proof but does not
// know the secret key fails the dial.
func TestConnAuthServerProof(t *testing.T) {
	fake := remoting.HandlerFunc(func(c *remoting.Conn, req *remoting.Command) {
		resp := remoting.NewResponse(req, protocol.RespSuccess, "")
		resp.Set(protocol.AuthFieldServerNonce, remoting.NewAuthNonce())
		resp.Set(protocol.AuthFieldServerProof, remoting.NewAuthNonce()) // 32 random bytes
		_ = c.Reply(resp)
	})
	addr := authServer(t, fake)
	cl := remoting.NewClient(remoting.ClientConfig{Authenticate: true, Credentials: remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}})
	defer cl.Close()
	if _, err := cl.Conn(context.Background(), addr); !errors.Is(err, remoting.ErrAuthServerProof) {
		t.Fatalf("dial to an impostor: %v", err)
	}
}
