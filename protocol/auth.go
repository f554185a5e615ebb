package protocol

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// FERRY_AUTH (ReqFerryAuth, Ferry's own code) authenticates a connection
// once, so that the requests after it need no per-request signature. It is
// a challenge-response in two requests on the same connection; every value
// travels in extFields, the body is empty:
//
//	step 1, client -> server   authStep=1  authMech=HMAC-SHA256
//	                           authKey=<access key>  clientNonce=<base64, 32 bytes>
//	        server -> client   SUCCESS  serverNonce=<base64, 32 bytes>
//	step 2, client -> server   authStep=2  proof=<base64 HMAC-SHA256, 32 bytes>
//	        server -> client   SUCCESS  serverProof=<base64 HMAC-SHA256, 32 bytes>
//
//	proof       = HMAC-SHA256(secretKey, "ferry-auth client\n" + accessKey + "\n" + clientNonce + "\n" + serverNonce)
//	serverProof = HMAC-SHA256(secretKey, "ferry-auth server\n" + accessKey + "\n" + clientNonce + "\n" + serverNonce)
//
// (the nonces in the MACs are their base64 texts as sent). The secret key
// never crosses the wire. The server draws a fresh server nonce for every
// step 1 and accepts one step 2 for it, so a proof captured on one
// connection is worthless on another; the server's proof shows the client
// that the server knows the secret key too. A refused step is answered
// NO_PERMISSION (16) with a remark naming the check; a server that does not
// serve the code answers REQUEST_CODE_NOT_SUPPORTED (3), and a client then
// signs every request instead (see remoting's sign.go).
//
// Once authenticated, a request without an AccessKey field is taken as
// the connection's account and checked against the permission table like
// a signed one; a request that does carry AccessKey and Signature is
// checked by its own signature, as before. Without TLS nothing protects
// the integrity of the requests after the handshake: that is TLS's work,
// as with Kafka's SASL without TLS.
const ReqFerryAuth = 1030

// Extension field names of FERRY_AUTH.
const (
	AuthFieldStep        = "authStep"
	AuthFieldMech        = "authMech"
	AuthFieldKey         = "authKey"
	AuthFieldClientNonce = "clientNonce"
	AuthFieldServerNonce = "serverNonce"
	AuthFieldProof       = "proof"
	AuthFieldServerProof = "serverProof"
)

// AuthMechHMACSHA256 is the one mechanism of FERRY_AUTH.
const AuthMechHMACSHA256 = "HMAC-SHA256"

// AuthNonceLen is the length of both nonces and AuthProofLen of both
// proofs, in bytes before base64.
const (
	AuthNonceLen = 32
	AuthProofLen = 32
)

// AuthMaxKeyLen bounds the access key of a FERRY_AUTH step 1.
const AuthMaxKeyLen = 256

// Labels of the two proofs.
const (
	AuthClientLabel = "ferry-auth client\n"
	AuthServerLabel = "ferry-auth server\n"
)

// AuthHello is a decoded step 1.
type AuthHello struct {
	AccessKey   string
	ClientNonce string // base64 text, AuthNonceLen bytes decoded
}

// AuthProof is a decoded step 2.
type AuthProof struct {
	Proof []byte // AuthProofLen bytes
}

// ErrAuthMalformed wraps every decoding error of FERRY_AUTH fields.
var ErrAuthMalformed = errors.New("malformed FERRY_AUTH")

// DecodeAuthRequest reads the extension fields of a FERRY_AUTH request:
// exactly one of the results is set when err is nil.
func DecodeAuthRequest(ext map[string]string) (*AuthHello, *AuthProof, error) {
	switch step := ext[AuthFieldStep]; step {
	case "1":
		if m := ext[AuthFieldMech]; m != AuthMechHMACSHA256 {
			return nil, nil, fmt.Errorf("%w: mechanism %q not supported (only %s)", ErrAuthMalformed, clip(m), AuthMechHMACSHA256)
		}
		ak := ext[AuthFieldKey]
		if ak == "" || len(ak) > AuthMaxKeyLen {
			return nil, nil, fmt.Errorf("%w: %s must hold 1 to %d bytes", ErrAuthMalformed, AuthFieldKey, AuthMaxKeyLen)
		}
		cn := ext[AuthFieldClientNonce]
		if err := checkB64(cn, AuthNonceLen, AuthFieldClientNonce); err != nil {
			return nil, nil, err
		}
		return &AuthHello{AccessKey: ak, ClientNonce: cn}, nil, nil
	case "2":
		p, err := decodeB64(ext[AuthFieldProof], AuthProofLen, AuthFieldProof)
		if err != nil {
			return nil, nil, err
		}
		return nil, &AuthProof{Proof: p}, nil
	default:
		return nil, nil, fmt.Errorf("%w: %s %q is neither 1 nor 2", ErrAuthMalformed, AuthFieldStep, clip(step))
	}
}

// DecodeAuthServerNonce reads the server nonce of a step 1 answer.
func DecodeAuthServerNonce(ext map[string]string) (string, error) {
	sn := ext[AuthFieldServerNonce]
	return sn, checkB64(sn, AuthNonceLen, AuthFieldServerNonce)
}

// DecodeAuthServerProof reads the server's proof of a step 2 answer.
func DecodeAuthServerProof(ext map[string]string) ([]byte, error) {
	return decodeB64(ext[AuthFieldServerProof], AuthProofLen, AuthFieldServerProof)
}

func checkB64(s string, n int, field string) error {
	if base64.StdEncoding.EncodedLen(n) != len(s) {
		return fmt.Errorf("%w: %s must be base64 of %d bytes", ErrAuthMalformed, field, n)
	}
	var buf [64]byte
	if k, err := base64.StdEncoding.Decode(buf[:], []byte(s)); err != nil || k != n {
		return fmt.Errorf("%w: %s must be base64 of %d bytes", ErrAuthMalformed, field, n)
	}
	return nil
}

func decodeB64(s string, n int, field string) ([]byte, error) {
	if err := checkB64(s, n, field); err != nil {
		return nil, err
	}
	b, _ := base64.StdEncoding.DecodeString(s)
	return b, nil
}

// clip shortens a hostile value quoted in an error.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
