package acl

import (
	"crypto/hmac"
	"encoding/base64"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Connection authentication: the server side of FERRY_AUTH (protocol's
// auth.go documents the exchange). A connection that completed it is
// authenticated as its account; its requests without an AccessKey field
// are then checked against that account's permissions, as if signed.
// A request with an AccessKey is checked by its own signature, whatever
// the connection.
//
// After an ACL reload, the next request of an authenticated connection
// looks its account up again: a removed account or a changed secret key
// revokes the connection (the request is refused with check "revoked" and
// the connection closed, so that the client dials and authenticates
// anew); changed permissions simply apply.

// connAuth is what a Guard keeps about one connection (Conn.LoadOrStoreAuth).
type connAuth struct {
	mu      sync.Mutex
	pending *authPending // step 1 answered, step 2 awaited

	state atomic.Pointer[authState] // nil: not authenticated
}

type authPending struct {
	accessKey, clientNonce, serverNonce string
}

// authState is an authenticated connection's account under the rules it
// was last checked with; revoked, when set, says why it no longer is.
type authState struct {
	rules   *Rules
	account *Account
	revoked string
}

func connAuthOf(c *remoting.Conn) *connAuth {
	ca, _ := c.Auth().(*connAuth)
	return ca
}

// authed is the connection's authentication state, nil when it has none
// (ca may be nil).
func (ca *connAuth) authed() *authState {
	if ca == nil {
		return nil
	}
	return ca.state.Load()
}

// handshake serves a FERRY_AUTH request.
func (g *Guard) handshake(c *remoting.Conn, req *remoting.Command) {
	if req.IsOneway() {
		return
	}
	rules := g.rules()
	if rules == nil {
		_ = c.Reply(remoting.NewResponse(req, protocol.RespRequestCodeNotSupported,
			"connection authentication needs an ACL file; this server has none"))
		return
	}
	ca := c.LoadOrStoreAuth(&connAuth{}).(*connAuth)
	hello, proof, err := protocol.DecodeAuthRequest(req.ExtFieldMap())
	if err != nil {
		g.refuseAuth(c, req, "", "malformed", err.Error())
		return
	}
	if hello != nil {
		// An unknown key is told at step 2, like a wrong secret.
		sn := remoting.NewAuthNonce()
		ca.mu.Lock()
		ca.pending = &authPending{accessKey: hello.AccessKey, clientNonce: hello.ClientNonce, serverNonce: sn}
		ca.state.Store(nil)
		ca.mu.Unlock()
		resp := remoting.NewResponse(req, protocol.RespSuccess, "")
		resp.Set(protocol.AuthFieldServerNonce, sn)
		_ = c.Reply(resp)
		return
	}
	ca.mu.Lock()
	p := ca.pending
	ca.pending = nil // one proof per server nonce
	ca.mu.Unlock()
	if p == nil {
		g.refuseAuth(c, req, "", "handshake", "FERRY_AUTH step 2 without a step 1 on this connection (each server nonce takes one proof)")
		return
	}
	a, ok := rules.accounts[p.accessKey]
	if !ok {
		g.refuseAuth(c, req, p.accessKey, "unknown-key", "unknown AccessKey "+quote(p.accessKey))
		return
	}
	want := remoting.AuthProofMAC(a.secret, protocol.AuthClientLabel, p.accessKey, p.clientNonce, p.serverNonce)
	if !hmac.Equal(proof.Proof, want) {
		g.refuseAuth(c, req, p.accessKey, "signature", "connection authentication failed for AccessKey "+quote(p.accessKey)+": the proof does not match its secret key")
		return
	}
	ca.state.Store(&authState{rules: rules, account: a})
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Set(protocol.AuthFieldServerProof, base64.StdEncoding.EncodeToString(
		remoting.AuthProofMAC(a.secret, protocol.AuthServerLabel, p.accessKey, p.clientNonce, p.serverNonce)))
	_ = c.Reply(resp)
}

func (g *Guard) refuseAuth(c *remoting.Conn, req *remoting.Command, accessKey, check, reason string) {
	g.audit.Refused(accessKey, c.RemoteAddr(), "remoting", protocol.RequestName(req.Code), check, reason)
	_ = c.Reply(remoting.NewResponse(req, protocol.RespNoPermission, reason))
}

// identity is the identity of an authenticated connection's request under
// rules, from host: a globally white-listed address is trusted, as in
// Authenticate; after a reload the account is looked up again.
func (ca *connAuth) identity(st *authState, rules *Rules, host netip.Addr) (Identity, error) {
	if st.revoked != "" {
		return Identity{}, refuse("revoked", st.revoked)
	}
	host = host.Unmap()
	for _, m := range rules.global {
		if m.match(host) {
			return Identity{Trusted: true}, nil
		}
	}
	a := st.account
	if st.rules != rules {
		ak := st.account.AccessKey
		cur, ok := rules.accounts[ak]
		var why string
		switch {
		case !ok:
			why = "the ACL reload removed AccessKey " + quote(ak)
		case !hmac.Equal(cur.secret, st.account.secret):
			why = "the ACL reload changed the secret key of AccessKey " + quote(ak)
		}
		if why != "" {
			why = "connection authentication revoked: " + why + "; the connection is closed, reconnect with valid credentials"
			ca.state.CompareAndSwap(st, &authState{revoked: why})
			return Identity{}, refuse("revoked", why)
		}
		ca.state.CompareAndSwap(st, &authState{rules: rules, account: cur})
		a = cur
	}
	if a.white.match(host) {
		return Identity{Account: a, Trusted: true}, nil
	}
	return Identity{Account: a}, nil
}
