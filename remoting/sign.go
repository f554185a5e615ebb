package remoting

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"hash"
	"slices"
	"sync"
)

// Request signing, as RocketMQ's ACL clients do it (Java AclClientRPCHook,
// the Go client's ACLInterceptor). Part of the format:
//
//	content   = the values of every extFields key except Signature and
//	            _UNIQUE_KEY_QUERY, in ascending key order, concatenated,
//	            followed by the body bytes
//	Signature = base64(HMAC-SHA1(secretKey, content))
//
// AccessKey (and SecurityToken, when used) are extFields themselves, so
// their values are part of the content.
const (
	ExtAccessKey     = "AccessKey"
	ExtSignature     = "Signature"
	ExtSecurityToken = "SecurityToken"
	// extUniqueKeyQuery is left out of the content by Java servers.
	extUniqueKeyQuery = "_UNIQUE_KEY_QUERY"
	// SignatureLen is the length of a base64 HMAC-SHA1 signature.
	SignatureLen = 28
)

// Credentials sign requests: an access key, its secret key and an optional
// security token.
type Credentials struct {
	AccessKey     string
	SecretKey     string
	SecurityToken string
}

// IsZero reports credentials that sign nothing (no access or secret key).
func (cr Credentials) IsZero() bool { return cr.AccessKey == "" || cr.SecretKey == "" }

// String names the access key and hides the secrets, so credentials can be
// logged.
func (cr Credentials) String() string {
	if cr.AccessKey == "" {
		return "(none)"
	}
	return "AccessKey=" + cr.AccessKey + " SecretKey=***"
}

// Sign sets req's AccessKey, SecurityToken (when set) and Signature fields.
func (cr Credentials) Sign(req *Command) { newSigner(cr).sign(req) }

// signer signs requests with one set of credentials, reusing its keyed
// MACs and content buffers (a client signs every request it sends).
type signer struct {
	creds Credentials
	pool  sync.Pool // of *signState
}

type signState struct {
	mac     hash.Hash
	content []byte
}

func newSigner(cr Credentials) *signer {
	s := &signer{creds: cr}
	s.pool.New = func() any { return &signState{mac: hmac.New(sha1.New, []byte(cr.SecretKey))} }
	return s
}

func (s *signer) sign(req *Command) {
	req.Set(ExtAccessKey, s.creds.AccessKey)
	if s.creds.SecurityToken != "" {
		req.Set(ExtSecurityToken, s.creds.SecurityToken)
	}
	delete(req.ExtFields, ExtSignature)
	st := s.pool.Get().(*signState)
	st.mac.Reset()
	st.content = appendSignContent(st.content[:0], req.Code, req.ExtFields, nil, "")
	st.mac.Write(st.content)
	st.mac.Write(req.Body) // no copy of the body: the MAC is over the concatenation
	var sum [sha1.Size]byte
	req.ExtFields[ExtSignature] = base64.StdEncoding.EncodeToString(st.mac.Sum(sum[:0]))
	s.pool.Put(st)
}

// AppendSignContent appends the signed content of a request to dst: the
// values of ext in key order (without Signature, _UNIQUE_KEY_QUERY and
// skip, when not empty) and then body.
func AppendSignContent(dst []byte, ext map[string]string, body []byte, skip string) []byte {
	var arr [24]string
	keys := arr[:0]
	for k := range ext {
		if k == ExtSignature || k == extUniqueKeyQuery || (skip != "" && k == skip) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = append(dst, ext[k]...)
	}
	return append(dst, body...)
}

// appendSignContent is AppendSignContent for a request of the given code,
// using the remembered key order of its shape instead of sorting each time.
func appendSignContent(dst []byte, code int16, ext map[string]string, body []byte, skip string) []byte {
	var arr [24]string
	for _, k := range orderedKeys(arr[:0], code, ext) {
		if k == ExtSignature || k == extUniqueKeyQuery || (skip != "" && k == skip) {
			continue
		}
		dst = append(dst, ext[k]...)
	}
	return append(dst, body...)
}
