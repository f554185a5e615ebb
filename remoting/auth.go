package remoting

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ferrymq/ferry/protocol"
)

// Connection authentication (FERRY_AUTH; protocol/auth.go documents the
// exchange). A Client with ClientConfig.Authenticate runs it on every
// connection it dials; the server side is package acl's Guard.

// ErrAuthNotSupported: the server answered FERRY_AUTH's first step with
// something other than SUCCESS (a server that does not know the code, or
// an older ACL check that refuses it unsigned). The client then signs
// every request.
var ErrAuthNotSupported = errors.New("remoting: server does not authenticate connections")

// ErrAuthServerProof: the server accepted the client's proof but could not
// prove that it knows the secret key: it is not the server it claims to
// be. The connection is closed.
var ErrAuthServerProof = errors.New("remoting: the server failed to prove it knows the secret key")

// AuthRefusedError is a refused FERRY_AUTH step 2: the server's remark
// says which check failed (unknown key, wrong proof).
type AuthRefusedError struct {
	Code   int16
	Remark string
}

func (e *AuthRefusedError) Error() string {
	return fmt.Sprintf("remoting: connection authentication refused (%s): %s", protocol.ResponseName(e.Code), e.Remark)
}

// AuthProofMAC computes a FERRY_AUTH proof: label is
// protocol.AuthClientLabel or protocol.AuthServerLabel.
func AuthProofMAC(secret []byte, label, accessKey, clientNonce, serverNonce string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write([]byte(accessKey))
	m.Write([]byte{'\n'})
	m.Write([]byte(clientNonce))
	m.Write([]byte{'\n'})
	m.Write([]byte(serverNonce))
	return m.Sum(nil)
}

// NewAuthNonce returns a fresh random nonce as its base64 text.
func NewAuthNonce() string {
	var b [protocol.AuthNonceLen]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.StdEncoding.EncodeToString(b[:])
}

// Authenticate runs FERRY_AUTH on c with creds. It returns nil once both
// sides proved they know the secret key; ErrAuthNotSupported when step 1
// is not answered SUCCESS; an *AuthRefusedError when step 2 is refused;
// ErrAuthServerProof when the server's proof is wrong. Requests sent on c
// meanwhile by others are not affected; c's own signing is not changed.
func Authenticate(ctx context.Context, c *Conn, creds Credentials) error {
	cn := NewAuthNonce()
	hello := NewRequest(protocol.ReqFerryAuth, nil, nil)
	hello.Set(protocol.AuthFieldStep, "1")
	hello.Set(protocol.AuthFieldMech, protocol.AuthMechHMACSHA256)
	hello.Set(protocol.AuthFieldKey, creds.AccessKey)
	hello.Set(protocol.AuthFieldClientNonce, cn)
	resp, err := c.invokeUnsigned(ctx, hello, 0)
	if err != nil {
		return err
	}
	if resp.Code != protocol.RespSuccess {
		return fmt.Errorf("%w (%s: %s)", ErrAuthNotSupported, protocol.ResponseName(resp.Code), resp.Remark)
	}
	sn, err := protocol.DecodeAuthServerNonce(resp.ExtFieldMap())
	if err != nil {
		return fmt.Errorf("remoting: connection authentication: %w", err)
	}
	secret := []byte(creds.SecretKey)
	proof := NewRequest(protocol.ReqFerryAuth, nil, nil)
	proof.Set(protocol.AuthFieldStep, "2")
	proof.Set(protocol.AuthFieldProof, base64.StdEncoding.EncodeToString(
		AuthProofMAC(secret, protocol.AuthClientLabel, creds.AccessKey, cn, sn)))
	resp, err = c.invokeUnsigned(ctx, proof, 0)
	if err != nil {
		return err
	}
	if resp.Code != protocol.RespSuccess {
		return &AuthRefusedError{Code: resp.Code, Remark: resp.Remark}
	}
	got, err := protocol.DecodeAuthServerProof(resp.ExtFieldMap())
	if err != nil || !hmac.Equal(got, AuthProofMAC(secret, protocol.AuthServerLabel, creds.AccessKey, cn, sn)) {
		return ErrAuthServerProof
	}
	return nil
}
