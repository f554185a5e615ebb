package httpapi

import (
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/broker"
)

// Host is the broker hosting the server: its configuration, log,
// listener (TLS when the broker has a certificate), readiness and
// metrics.
type Host interface {
	Config() broker.Config
	Logger() zerolog.Logger
	Listen(addr string) (net.Listener, error)
	// Readiness says whether the broker is ready, with the readiness
	// probe's text; forSend asks about sends too.
	Readiness(forSend bool) (ready bool, text string)
	Gatherer() prometheus.Gatherer
	// Pprof says whether the profiler is served (it can change at run
	// time).
	Pprof() bool
}

// Auth is the broker's access control: its rules (nil without an ACL)
// and the audit log of refusals and admin actions.
type Auth interface {
	Rules() *acl.Rules
	Audit() *acl.Audit
}

// Backend is what the server needs of a broker.
type Backend struct {
	Host     Host
	Auth     Auth
	Admin    Admin    // admin.go
	Topics   Topics   // topics.go
	Groups   Groups   // groups.go
	Messages Messages // messages.go
	Offsets  Offsets  // offsets.go
	Stats    Stats    // stats.go
	Cluster  Cluster  // cluster.go
	Consume  Consume  // consume.go
	Tx       Tx       // tx.go
}

// Mount returns the broker option's mount function: it starts a Server
// over the broker's views.
func Mount() broker.HTTPMount {
	return func(v broker.HTTPViews) (broker.HTTPServer, error) {
		s, err := Start(Backend{Host: v.Host, Auth: v.Auth, Admin: v.Admin, Topics: v.Topics, Groups: v.Groups,
			Messages: v.Messages, Offsets: v.Offsets, Stats: v.Stats, Cluster: v.Cluster, Consume: v.Consume,
			Tx: v.Tx})
		if err != nil {
			return nil, err // not a nil *Server in the interface
		}
		return s, nil
	}
}

// complete checks that every view is there.
func (be *Backend) complete() error {
	for name, v := range map[string]any{"host": be.Host, "auth": be.Auth, "admin": be.Admin, "topics": be.Topics,
		"groups": be.Groups, "messages": be.Messages, "offsets": be.Offsets, "stats": be.Stats, "cluster": be.Cluster,
		"consume": be.Consume, "tx": be.Tx} {
		if v == nil {
			return fmt.Errorf("httpapi: the backend has no %s view", name)
		}
	}
	return nil
}
