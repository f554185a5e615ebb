package acl

import (
	"github.com/ferrymq/ferry/protocol"
	"net/netip"
	"sync"

	"github.com/ferrymq/ferry/remoting"
)

// ClusterAccessKey is the access key brokers sign name-server (and later
// replication) traffic with; its secret key is the cluster secret.
const ClusterAccessKey = "ferry-cluster"

// ClusterCredentials are the credentials of the cluster secret.
func ClusterCredentials(secret string) remoting.Credentials {
	return remoting.Credentials{AccessKey: ClusterAccessKey, SecretKey: secret}
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Rules returns the rules in force; nil (or a nil result) leaves
	// account checks off.
	Rules func() *Rules
	// ClusterSecret, when set, is required (as ClusterCredentials
	// signatures) on the codes of the "cluster" level; when empty those
	// codes are open.
	ClusterSecret string
	// Audit receives refusals and admin actions; nil: not logged.
	Audit *Audit
}

// Guard is a remoting.Handler that checks each request before passing it
// to the next handler. A refused request is answered NO_PERMISSION with a
// remark naming the failed check; the connection stays open.
type Guard struct {
	next    remoting.Handler
	batch   remoting.Batcher // next as a Batcher, or nil
	inline  remoting.Inliner // next as an Inliner, or nil
	rules   func() *Rules
	cluster *Account // nil: cluster codes open
	audit   *Audit
}

// NewGuard wraps next. If next is a remoting.Batcher, so is the Guard;
// if next is a remoting.Inliner, the requests it serves on the read
// goroutine are checked and served there too (the checks do not block).
func NewGuard(next remoting.Handler, cfg GuardConfig) *Guard {
	g := &Guard{next: next, rules: cfg.Rules, audit: cfg.Audit}
	if g.rules == nil {
		g.rules = func() *Rules { return nil }
	}
	g.batch, _ = next.(remoting.Batcher)
	g.inline, _ = next.(remoting.Inliner)
	if cfg.ClusterSecret != "" {
		g.cluster = newAccount(ClusterAccessKey, cfg.ClusterSecret)
	}
	return g
}

// ServeRemoting checks req and serves it or refuses it.
func (g *Guard) ServeRemoting(c *remoting.Conn, req *remoting.Command) {
	if req.Code == protocol.ReqFerryAuth {
		g.handshake(c, req)
		return
	}
	if g.admit(c, req) {
		g.next.ServeRemoting(c, req)
	}
}

// Batchable delegates to the next handler.
func (g *Guard) Batchable(req *remoting.Command) bool {
	return g.batch != nil && g.batch.Batchable(req)
}

// Inlinable delegates to the next handler. FERRY_AUTH, which the Guard
// serves itself, is not inlined.
func (g *Guard) Inlinable(req *remoting.Command) bool {
	return g.inline != nil && req.Code != protocol.ReqFerryAuth && g.inline.Inlinable(req)
}

// ServeBatch refuses the requests that fail their check and serves the
// rest together. reqs is not modified (its owner may look at it after).
func (g *Guard) ServeBatch(c *remoting.Conn, reqs []*remoting.Command) {
	ok, copied := reqs, false
	for i, req := range reqs {
		admitted := g.admit(c, req)
		switch {
		case admitted && copied:
			ok = append(ok, req)
		case !admitted && !copied:
			ok = append(make([]*remoting.Command, 0, len(reqs)), reqs[:i]...)
			copied = true
		}
	}
	if len(ok) > 0 {
		g.batch.ServeBatch(c, ok)
	}
}

// admit checks req, answering and auditing a refusal.
func (g *Guard) admit(c *remoting.Conn, req *remoting.Command) bool {
	if req.Code == protocol.ReqFerryAuth {
		// Only ServeRemoting serves it (the mux does not batch it).
		g.handshake(c, req)
		return false
	}
	ca := connAuthOf(c)
	id, admin, err := g.checkConn(c.RemoteAddr(), ca, req)
	if err != nil {
		ref, _ := err.(*Refusal)
		check := "malformed"
		if ref != nil {
			check = ref.Check
		}
		name := req.StringOr(remoting.ExtAccessKey, "")
		if st := ca.authed(); name == "" && st != nil && st.account != nil {
			name = st.account.AccessKey
		}
		g.audit.Refused(name, c.RemoteAddr(), "remoting", protocol.RequestName(req.Code), check, err.Error())
		_ = c.Reply(remoting.NewResponse(req, protocol.RespNoPermission, err.Error()))
		if check == "revoked" {
			_ = c.Close() // the answer is flushed first
		}
		return false
	}
	if admin {
		g.audit.Admin(id.Name(), c.RemoteAddr(), "remoting", protocol.RequestName(req.Code))
	}
	return true
}

// resPool holds the resource buffers of Check (the table's functions make
// a stack buffer escape).
var resPool = sync.Pool{New: func() any { b := make([]Resource, 0, 8); return &b }}

// Check decides a request from remote ("ip:port") and reports whether it
// was an admin request. It is the pure part of the Guard.
func (g *Guard) Check(remote string, req *remoting.Command) (Identity, bool, error) {
	return g.checkConn(remote, nil, req)
}

// checkConn is Check for a request of a connection with FERRY_AUTH state
// ca (nil: none).
func (g *Guard) checkConn(remote string, ca *connAuth, req *remoting.Command) (Identity, bool, error) {
	bp := resPool.Get().(*[]Resource)
	id, need, err := g.check(remote, ca, req, (*bp)[:0])
	if cap(need.Res) <= 64 {
		clear(need.Res)
		*bp = need.Res[:0]
	}
	resPool.Put(bp)
	return id, need.Admin, err
}

func (g *Guard) check(remote string, ca *connAuth, req *remoting.Command, buf []Resource) (Identity, Need, error) {
	need, err := NeedOf(req, buf)
	if err != nil {
		return Identity{}, need, refuse("malformed", err.Error())
	}
	if need.Open {
		return Identity{Trusted: true}, need, nil
	}
	if need.Cluster {
		if g.cluster == nil {
			return Identity{Trusted: true}, need, nil
		}
		if req.StringOr(remoting.ExtAccessKey, "") != ClusterAccessKey {
			return Identity{}, need, refuse("cluster", "request "+protocol.RequestName(req.Code)+" needs the cluster secret: it is not signed with it")
		}
		sig := req.StringOr(remoting.ExtSignature, "")
		if !g.cluster.verify(sig, req.ExtFieldMap(), req.Body, "") {
			return Identity{}, need, refuse("cluster", "request "+protocol.RequestName(req.Code)+": cluster secret signature check failed")
		}
		return Identity{Account: g.cluster, Trusted: true}, need, nil
	}
	rules := g.rules()
	if rules == nil {
		return Identity{Trusted: true}, need, nil
	}
	// A request's own signature takes precedence over the connection's
	// authentication.
	if st := ca.authed(); st != nil && req.StringOr(remoting.ExtAccessKey, "") == "" {
		id, err := ca.identity(st, rules, hostOf(remote))
		if err != nil {
			return id, need, err
		}
		return id, need, Authorize(id, need, "request "+protocol.RequestName(req.Code))
	}
	id, err := rules.Authenticate(hostOf(remote), req.ExtFieldMap(), req.Body)
	if err != nil {
		return id, need, err
	}
	return id, need, Authorize(id, need, "request "+protocol.RequestName(req.Code))
}

// hostOf is the IP of "ip:port"; the zero Addr (which matches no pattern
// but "*") when it is not one.
func hostOf(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr()
	}
	a, _ := netip.ParseAddr(remote)
	return a
}
