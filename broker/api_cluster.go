package broker

// The cluster as one broker's HTTP API sees it (package httpapi serves
// GET /v1/cluster and /v1/cluster/groups): the brokers the name servers
// know, each with the HTTP address it registered (the field
// "ferryHttpAddr", see remoting RegisterBrokerHeader).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// peerTimeout bounds one call to a name server on behalf of a
// /v1/cluster request.
const peerTimeout = 2 * time.Second

// HTTPClusterView is what the cluster view needs of this broker.
type HTTPClusterView struct{ b *Broker }

// Members lists every broker the name servers know (members).
func (v HTTPClusterView) Members(ctx context.Context) ([]ClusterMember, error) {
	return v.members(ctx)
}

// Self is this broker's remoting address, as Members lists it.
func (v HTTPClusterView) Self() string { return v.b.addr }

// Points is this broker's rate history (GET /v1/broker/stats).
func (v HTTPClusterView) Points() []protocol.HTTPStatsPoint { return v.b.stats.statsPoints() }

// GroupLags is every group's total lag on this broker.
func (v HTTPClusterView) GroupLags() map[string]int64 { return v.b.stats.groupLags() }

// PeerTLS says whether the brokers of the cluster serve HTTPS (they share
// this broker's setup), and what to trust then: what the name-server
// connections trust (nil: the system's roots).
func (v HTTPClusterView) PeerTLS() (bool, *tls.Config) {
	if v.b.tls == nil {
		return false, nil
	}
	if v.b.nsTLS == nil {
		return true, nil
	}
	return true, v.b.nsTLS.Clone()
}

// ClusterMember is a broker as the name servers list it.
type ClusterMember struct {
	Cluster, Name string
	ID            int64
	Addr          string // remoting address
	HTTP          string // HTTP address; "" when it registered none
}

// members lists every broker the name servers know, sorted by
// cluster, name and id, this broker included even before it is
// registered. Without name servers it is this broker alone; when none
// answers, too, with the error.
func (v HTTPClusterView) members(ctx context.Context) ([]ClusterMember, error) {
	b := v.b
	self := ClusterMember{Cluster: b.cfg.ClusterName, Name: b.cfg.BrokerName, ID: b.cfg.BrokerID, Addr: b.addr, HTTP: b.httpAdvertised()}
	if len(b.cfg.NamesrvAddrs) == 0 {
		return []ClusterMember{self}, nil
	}
	ci, err := v.namesrvClusterInfo(ctx)
	if err != nil {
		return []ClusterMember{self}, err
	}
	var out []ClusterMember
	seenSelf := false
	for name, bd := range ci.BrokerAddrTable {
		for id, addr := range bd.BrokerAddrs {
			if addr == b.addr {
				seenSelf = true
			}
			out = append(out, ClusterMember{Cluster: bd.Cluster, Name: name, ID: id, Addr: addr, HTTP: ci.HTTPAddrs[addr]})
		}
	}
	if !seenSelf {
		out = append(out, self)
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Cluster != y.Cluster {
			return x.Cluster < y.Cluster
		}
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		return x.ID < y.ID
	})
	return out, nil
}

// namesrvClusterInfo asks the name servers in turn for the cluster info;
// the first answer wins.
func (v HTTPClusterView) namesrvClusterInfo(ctx context.Context) (*remoting.ClusterInfo, error) {
	b := v.b
	var errs []error
	for _, ns := range b.cfg.NamesrvAddrs {
		c, cancel := context.WithTimeout(ctx, peerTimeout)
		resp, err := b.nsClient.Invoke(c, ns, remoting.NewRequest(protocol.ReqGetBrokerClusterInfo, nil, nil))
		cancel()
		if err == nil {
			err = resp.Err()
		}
		if err == nil {
			var ci remoting.ClusterInfo
			if err = remoting.DecodeBody(resp.Body, &ci); err == nil {
				return &ci, nil
			}
		}
		errs = append(errs, fmt.Errorf("name server %s: %w", ns, err))
	}
	return nil, errors.Join(errs...)
}

// httpAdvertised is the HTTP address this broker registers: the bound
// port on the HTTP host, or on the advertised IP when HTTP listens on
// every address; "" without HTTP.
func (b *Broker) httpAdvertised() string {
	if b.http == nil {
		return ""
	}
	ap, err := netip.ParseAddrPort(b.http.Addr())
	if err != nil {
		return b.http.Addr()
	}
	host := ap.Addr().Unmap()
	if host.IsUnspecified() {
		host = b.storeHost.Addr()
	}
	return netip.AddrPortFrom(host, ap.Port()).String()
}
