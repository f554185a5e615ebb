package acl

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/ferrymq/ferry/remoting"
)

// Refusal is why a request was refused. Its text names the failed check
// and never a secret; it is the remark of the NO_PERMISSION answer.
type Refusal struct {
	// Check is a short name of the failed check, for logs and metrics:
	// "unsigned", "unknown-key", "signature", "admin", "permission",
	// "cluster" or "malformed".
	Check  string
	Detail string
}

func (e *Refusal) Error() string { return e.Detail }

func refuse(check, detail string) *Refusal { return &Refusal{Check: check, Detail: detail} }

// Identity is who a request comes from once authenticated.
type Identity struct {
	// Account is nil for a request from a globally white-listed address.
	Account *Account
	// Trusted is set when a white list admitted the request: RocketMQ then
	// checks neither the signature nor the permissions.
	Trusted bool
}

// Name is the access key, or "white-list" for a trusted address without
// one.
func (id Identity) Name() string {
	if id.Account != nil {
		return id.Account.AccessKey
	}
	return "white-list"
}

var contentPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Authenticate finds who sent a request with extension fields ext and body
// from host, with RocketMQ's order of checks: a globally white-listed
// address passes; otherwise the AccessKey must name an account; the
// account's own white-listed addresses pass; otherwise the Signature must
// be the HMAC-SHA1 of the request under the account's secret key.
func (r *Rules) Authenticate(host netip.Addr, ext map[string]string, body []byte) (Identity, error) {
	host = host.Unmap()
	for _, m := range r.global {
		if m.match(host) {
			return Identity{Trusted: true}, nil
		}
	}
	ak, ok := ext[remoting.ExtAccessKey]
	if !ok || ak == "" {
		return Identity{}, refuse("unsigned", "request not signed: no AccessKey, and the connection is not authenticated (FERRY_AUTH) (configure credentials: an access key and a secret key of the ACL file)")
	}
	a, ok := r.accounts[ak]
	if !ok {
		return Identity{}, refuse("unknown-key", "unknown AccessKey "+quote(ak))
	}
	if a.white.match(host) {
		return Identity{Account: a, Trusted: true}, nil
	}
	sig, ok := ext[remoting.ExtSignature]
	if !ok {
		return Identity{}, refuse("unsigned", "request not signed: AccessKey "+quote(ak)+" without a Signature")
	}
	if !a.verify(sig, ext, body, "") {
		// The Go client leaves SecurityToken out of what it signs; Java
		// clients put it in.
		if _, tok := ext[remoting.ExtSecurityToken]; !tok || !a.verify(sig, ext, body, remoting.ExtSecurityToken) {
			return Identity{}, refuse("signature", "signature check failed for AccessKey "+quote(ak)+": the secret key differs or the request was altered")
		}
	}
	return Identity{Account: a}, nil
}

// verify compares sig with the signature of the request in constant time.
func (a *Account) verify(sig string, ext map[string]string, body []byte, skip string) bool {
	if len(sig) != remoting.SignatureLen {
		return false
	}
	bp := contentPool.Get().(*[]byte)
	content := remoting.AppendSignContent((*bp)[:0], ext, nil, skip)
	h := a.mac()
	h.Write(content)
	h.Write(body) // the body is MACed in place, never copied
	// The sum goes after the content, in the pooled buffer's spare room.
	content = slices.Grow(content, sha1.Size)
	sum := h.Sum(content[len(content):])
	var want [remoting.SignatureLen]byte
	base64.StdEncoding.Encode(want[:], sum)
	a.macs.Put(h)
	if cap(content) <= 1<<20 {
		*bp = content[:0]
		contentPool.Put(bp)
	}
	var diff byte
	for i := range want {
		diff |= want[i] ^ sig[i]
	}
	return diff == 0
}

// Authorize checks need against the identity's account, as RocketMQ's
// checkPerm does: admin codes need an admin account; an admin account with
// no topicPerms and no groupPerms may use every resource; otherwise each
// resource's own permission, or the account's default for its kind, must
// allow what is needed. Trusted identities pass. action names the request
// in refusals.
func Authorize(id Identity, need Need, action string) error {
	if id.Trusted {
		return nil
	}
	a := id.Account
	if need.Cluster {
		return refuse("cluster", action+" needs the cluster secret")
	}
	if need.Admin && !a.Admin {
		return refuse("admin", action+" needs an admin account; AccessKey "+quote(a.AccessKey)+" is not admin")
	}
	if a.Admin && len(a.topics) == 0 && len(a.groups) == 0 {
		return nil
	}
	for _, res := range need.Res {
		owned, ok := a.perm(res)
		if !owned.Allows(res.Perm) {
			why := "no permission"
			if !ok {
				why = "no default permission"
			}
			return refuse("permission", why+" for "+res.String()+" (AccessKey "+quote(a.AccessKey)+")")
		}
	}
	return nil
}

// perm is the account's permission on res and whether it is listed
// (false: the default for its kind).
func (a *Account) perm(res Resource) (Perm, bool) {
	if res.Group {
		if p, ok := a.groups[res.Name]; ok {
			return p, true
		}
		return a.DefaultGroupPerm, false
	}
	if p, ok := a.topics[res.Name]; ok {
		return p, true
	}
	return a.DefaultTopicPerm, false
}

// quote quotes s for a remark, shortened so a hostile key cannot flood
// logs.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// Basic authenticates an HTTP Basic access key and secret key pair from
// host, with the same white lists as Authenticate.
func (r *Rules) Basic(host netip.Addr, accessKey, secretKey string, present bool) (Identity, error) {
	host = host.Unmap()
	for _, m := range r.global {
		if m.match(host) {
			return Identity{Trusted: true}, nil
		}
	}
	if !present || accessKey == "" {
		return Identity{}, refuse("unsigned", "no credentials: send HTTP Basic authorization with an access key and its secret key")
	}
	a, ok := r.accounts[accessKey]
	if !ok {
		return Identity{}, refuse("unknown-key", "unknown AccessKey "+quote(accessKey))
	}
	if a.white.match(host) {
		return Identity{Account: a, Trusted: true}, nil
	}
	if subtle.ConstantTimeCompare(a.secret, []byte(secretKey)) != 1 {
		return Identity{}, refuse("signature", "wrong secret key for AccessKey "+quote(accessKey))
	}
	return Identity{Account: a}, nil
}
