package broker

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/protocol"
)

// The HTTP port is served by package httpapi, which this package does not
// import: a broker built with WithHTTP hands the mount function its
// HTTPViews at Start and shuts the server it returns down at Shutdown.

// HTTPServer is a running HTTP server.
type HTTPServer interface {
	// Addr is the bound address.
	Addr() string
	// Shutdown stops the server and returns once its goroutines are gone.
	Shutdown()
}

// HTTPMount starts an HTTP server over a broker's views.
type HTTPMount func(HTTPViews) (HTTPServer, error)

// WithHTTP serves the HTTP port (http_host, http_port; none when
// http_port is -1) with the server mount starts. Without it the broker
// serves no HTTP port.
func WithHTTP(mount HTTPMount) Option { return func(b *Broker) { b.httpMount = mount } }

// HTTPViews is the broker as an HTTP server sees it: one small view per
// concern.
type HTTPViews struct {
	Host     HTTPHostView
	Auth     HTTPAuthView
	Admin    HTTPAdminView
	Topics   HTTPTopicsView   // api_topics.go
	Groups   HTTPGroupsView   // api_groups.go
	Messages HTTPMessagesView // api_messages.go, api_trace.go
	Offsets  HTTPOffsetsView  // api_offsets.go
	Stats    HTTPStatsView    // api_stats.go
	Cluster  HTTPClusterView  // api_cluster.go
	Consume  HTTPConsumeView  // api_consume.go
	Tx       HTTPTxView       // api_txhttp.go
}

func (b *Broker) httpViews() HTTPViews {
	return HTTPViews{Host: HTTPHostView{b}, Auth: HTTPAuthView{b}, Admin: HTTPAdminView{b}, Topics: HTTPTopicsView{b},
		Groups: HTTPGroupsView{b}, Messages: HTTPMessagesView{b, b.messages, b.holds}, Offsets: HTTPOffsetsView{b}, Stats: HTTPStatsView{b},
		Cluster: HTTPClusterView{b}, Consume: HTTPConsumeView{b.leases}, Tx: HTTPTxView{b}}
}

// HTTPHostView is the broker hosting an HTTP server.
type HTTPHostView struct{ b *Broker }

// Config is the configuration in force.
func (v HTTPHostView) Config() Config { return *v.b.c() }

// Logger is the broker's logger.
func (v HTTPHostView) Logger() zerolog.Logger { return v.b.log }

// Listen listens on addr, with the broker's TLS configuration if it has
// one.
func (v HTTPHostView) Listen(addr string) (net.Listener, error) { return v.b.listen(addr) }

// Readiness says whether the broker is ready, with the readiness probe's
// text (health.go).
func (v HTTPHostView) Readiness(forSend bool) (bool, string) { return v.b.readiness(forSend) }

// Gatherer is the broker's metrics registry.
func (v HTTPHostView) Gatherer() prometheus.Gatherer { return v.b.metrics.reg }

// Pprof says whether /debug/pprof is served now.
func (v HTTPHostView) Pprof() bool { return v.b.c().Pprof }

// HTTPAuthView is the broker's access control.
type HTTPAuthView struct{ b *Broker }

// Rules are the ACL rules in force; nil without an ACL file.
func (v HTTPAuthView) Rules() *acl.Rules { return v.b.aclRules() }

// Audit is the audit log of refusals and admin actions.
func (v HTTPAuthView) Audit() *acl.Audit { return v.b.audit }

// HTTPAdminView is the broker's run-time administration.
type HTTPAdminView struct{ b *Broker }

// Runtime describes the running broker.
func (v HTTPAdminView) Runtime() RuntimeInfo { return v.b.Admin().Runtime() }

// ConfigMap is the configuration in force, key by key.
func (v HTTPAdminView) ConfigMap() map[string]string { return v.b.Admin().ConfigMap() }

// SetConfig changes one key of the configuration at run time.
func (v HTTPAdminView) SetConfig(key, value string) error { return v.b.Admin().SetConfig(key, value) }

// Drain stops (on) or resumes accepting sends.
func (v HTTPAdminView) Drain(on bool) { v.b.Admin().Drain(on) }

// Producers lists the idempotent producers.
func (v HTTPAdminView) Producers() []protocol.ProducerState { return v.b.idem.states() }

// Transactions lists the open transactions, oldest first.
func (v HTTPAdminView) Transactions() ([]protocol.OpenTransaction, error) { return v.b.Transactions() }
