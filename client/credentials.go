package client

import (
	"crypto/tls"
	"net/http"

	"github.com/ferrymq/ferry/client/internal/httpapi"
	"github.com/ferrymq/ferry/remoting"
)

// WithCredentials signs every request with an access key and its secret
// key, as RocketMQ's ACL clients do, for brokers and name servers with an
// ACL file; over HTTP they are sent as Basic authentication (use TLS).
func WithCredentials(accessKey, secretKey string) Opt {
	return Opt(func(c *config) {
		if accessKey == "" || secretKey == "" {
			c.bad("WithCredentials: access key and secret key must both be set")
		}
		c.creds = remoting.Credentials{AccessKey: accessKey, SecretKey: secretKey}
	})
}

// WithTLS connects with TLS, verifying the servers with cfg.
func WithTLS(cfg *tls.Config) Opt {
	return Opt(func(c *config) {
		if cfg == nil {
			c.bad("WithTLS: nil config")
		}
		c.tls = cfg
	})
}

// remotingConfig is the transport configuration of the binary protocol.
func (c *config) remotingConfig() remoting.ClientConfig {
	return remoting.ClientConfig{Credentials: c.creds, TLS: c.tls}
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
