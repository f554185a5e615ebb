package broker

import (
	"crypto/tls"
	"net"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/remoting"
)

// Security options: the ACL file (Config.ACLFile), the cluster secret and
// TLS are set up here, in front of the request handlers.

// WithClusterSecret sets the secret the broker signs its name-server
// traffic with (registration and unregistration).
func WithClusterSecret(secret string) Option { return func(b *Broker) { b.clusterSecret = secret } }

// WithTLS serves the remoting and HTTP ports with TLS (cfg usually comes
// from package certs, whose GetCertificate reloads the key pair).
func WithTLS(cfg *tls.Config) Option { return func(b *Broker) { b.tls = cfg } }

// WithNamesrvTLS makes the connections to the name servers TLS clients.
func WithNamesrvTLS(cfg *tls.Config) Option { return func(b *Broker) { b.nsTLS = cfg } }

// openACL starts watching the ACL file, when one is configured.
func (b *Broker) openACL() error {
	b.audit = acl.NewAudit(b.log, 0)
	if b.cfg.ACLFile == "" {
		return nil
	}
	w, err := acl.Watch(b.cfg.ACLFile, 0, b.log)
	if err != nil {
		return err
	}
	b.acl = w
	return nil
}

// aclRules returns the rules in force, nil when ACL is off.
func (b *Broker) aclRules() *acl.Rules {
	if b.acl == nil {
		return nil
	}
	return b.acl.Rules()
}

// remotingHandler is the mux, behind the ACL guard when ACL is on.
func (b *Broker) remotingHandler() remoting.Handler {
	if b.acl == nil {
		return b.mux
	}
	return acl.NewGuard(b.mux, acl.GuardConfig{Rules: b.aclRules, Audit: b.audit})
}

// listen opens a TCP listener, wrapped in TLS when configured.
func (b *Broker) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || b.tls == nil {
		return ln, err
	}
	return tls.NewListener(ln, b.tls), nil
}

// nsCredentials signs name-server traffic with the cluster secret.
func (b *Broker) nsCredentials() remoting.Credentials {
	if b.clusterSecret == "" {
		return remoting.Credentials{}
	}
	return acl.ClusterCredentials(b.clusterSecret)
}

func (b *Broker) closeACL() {
	if b.acl != nil {
		_ = b.acl.Close()
	}
}

// httpLog sends the HTTP server's own messages (a connection that failed,
// such as plain text on a TLS port) to the broker's log.
type httpLog struct{ log zerolog.Logger }

func (l httpLog) Printf(format string, args ...any) {
	l.log.Warn().Str("component", "http").Msgf(format, args...)
}
