package client

import (
	"crypto/tls"
	"net/http"

	"github.com/ferrymq/ferry/client/internal/httpapi"
	"github.com/ferrymq/ferry/remoting"
)

// WithCredentials authenticates with an access key and its secret key, for
// brokers and name servers with an ACL file: each connection proves the
// key once (FERRY_AUTH) and its requests then go unsigned; against a
// server that does not authenticate connections every request is signed,
// as RocketMQ's ACL clients do. Over HTTP they are sent as Basic
// authentication (use TLS).
func WithCredentials(accessKey, secretKey string) CommonOpt {
	return CommonOpt(func(c *config) {
		if accessKey == "" || secretKey == "" {
			c.bad("WithCredentials: access key and secret key must both be set")
		}
		c.creds = remoting.Credentials{AccessKey: accessKey, SecretKey: secretKey}
	})
}

// WithRequestSigning signs every request with the credentials, as
// RocketMQ's ACL clients do, instead of authenticating each connection
// once: the server then checks every request's integrity, body included,
// also without TLS, at the cost of an HMAC over each request on both ends.
func WithRequestSigning() CommonOpt { return CommonOpt(func(c *config) { c.signEach = true }) }

// WithTLS connects with TLS, verifying the servers with cfg.
func WithTLS(cfg *tls.Config) CommonOpt {
	return CommonOpt(func(c *config) {
		if cfg == nil {
			c.bad("WithTLS: nil config")
		}
		c.tls = cfg
	})
}

// remotingConfig is the transport configuration of the binary protocol.
func (c *config) remotingConfig() remoting.ClientConfig {
	return remoting.ClientConfig{Credentials: c.creds, Authenticate: !c.signEach, TLS: c.tls, WireResponses: true}
}

func withHandler(rc remoting.ClientConfig, h remoting.Handler) remoting.ClientConfig {
	rc.Handler = h
	return rc
}

// withBasicAuth returns a copy of hc that sends creds as Basic
// authentication, or hc itself when there are none.
func withBasicAuth(hc *http.Client, creds remoting.Credentials) *http.Client {
	return httpapi.WithBasicAuth(hc, creds)
}
