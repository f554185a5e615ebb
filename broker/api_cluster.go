package broker

// The cluster as one broker's HTTP API sees it: GET /v1/cluster lists
// every broker the name servers know, each with its own status, and GET
// /v1/cluster/groups sums every group's lag over the masters. A broker
// learns the others' HTTP addresses from the name servers (each broker
// registers its own in the field "ferryHttpAddr", see remoting
// RegisterBrokerHeader) and asks each one's HTTP API — GET /v1/broker and
// GET /v1/broker/stats, GET /v1/stats/groups — with a short timeout, with
// the caller's Authorization header. A broker that does not answer is
// listed with "reachable": false and the error; it does not fail the
// request.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// peerTimeout bounds one call to another broker or to a name server on
// behalf of a /v1/cluster request.
const peerTimeout = 2 * time.Second

// peerBodyLimit bounds an answer read from another broker.
const peerBodyLimit = 8 << 20

// ClusterBroker is one broker of GET /v1/cluster.
type ClusterBroker struct {
	Cluster    string `json:"cluster"`
	BrokerName string `json:"broker_name"`
	BrokerID   int64  `json:"broker_id"`
	Addr       string `json:"addr"`
	// HTTPAddr is where the broker serves HTTP, as it registered it; empty
	// for a broker that serves none (or does not tell, as RocketMQ's).
	HTTPAddr string `json:"http_addr,omitempty"`
	// Self marks the broker that answered the request.
	Self bool `json:"self"`
	// Reachable is false when the broker's HTTP API did not answer; Error
	// says why and the fields below are left empty.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`

	Role              string  `json:"role"` // "master" or "slave"
	Version           string  `json:"version,omitempty"`
	Flush             string  `json:"flush,omitempty"`
	Writable          bool    `json:"writable"`
	NotWritableReason string  `json:"not_writable_reason,omitempty"`
	Drained           bool    `json:"drained"`
	DiskUsedRatio     float64 `json:"disk_used_ratio"`
	UptimeSeconds     float64 `json:"uptime_seconds"`
	Topics            int     `json:"topics"`
	Groups            int     `json:"groups"`
	Producers         int     `json:"producers"`
	Consumers         int     `json:"consumers"`
	CommitlogMin      int64   `json:"commitlog_min_offset"`
	CommitlogMax      int64   `json:"commitlog_max_offset"`
	MsgInTotal        float64 `json:"msg_in_total"`
	MsgOutTotal       float64 `json:"msg_out_total"`
	MsgInPerSec       float64 `json:"msg_in_per_s"`
	MsgOutPerSec      float64 `json:"msg_out_per_s"`
	BytesInPerSec     float64 `json:"bytes_in_per_s"`
	BytesOutPerSec    float64 `json:"bytes_out_per_s"`
	// Replication is the broker's own "replication" object of GET
	// /v1/broker, passed through as it is, when it reports one.
	Replication json.RawMessage `json:"replication,omitempty"`
	// Points is the broker's rate history, as GET /v1/broker/stats has it.
	Points json.RawMessage `json:"points,omitempty"`
}

// clusterAnswer is GET /v1/cluster.
type clusterAnswer struct {
	Brokers []ClusterBroker `json:"brokers"`
	// NamesrvError says why the name servers could not be asked; the list
	// then holds this broker alone.
	NamesrvError string `json:"namesrv_error,omitempty"`
}

// drainedReason is writable()'s reason for an operator's drain.
const drainedReason = "broker is drained by an operator"

// peerRuntime is what the cluster view reads of GET /v1/broker.
type peerRuntime struct {
	protocol.BrokerRuntime
	Replication json.RawMessage `json:"replication,omitempty"`
}

// peerStats is GET /v1/broker/stats.
type peerStats struct {
	Points json.RawMessage `json:"points"`
}

func (b *Broker) apiCluster(ctx *fasthttp.RequestCtx, _ apiParams) {
	c, cancel := context.WithTimeout(context.Background(), 2*peerTimeout+time.Second)
	defer cancel()
	members, nsErr := b.clusterMembers(c)
	out := clusterAnswer{Brokers: make([]ClusterBroker, len(members))}
	if nsErr != nil {
		out.NamesrvError = nsErr.Error()
	}
	authz := string(ctx.Request.Header.Peek("Authorization"))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Brokers[i] = b.clusterBroker(c, m, authz)
		}()
	}
	wg.Wait()
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// clusterMember is a broker as the name servers list it.
type clusterMember struct {
	cluster, name string
	id            int64
	addr, http    string
}

func (m clusterMember) role() string {
	if m.id == 0 {
		return "master"
	}
	return "slave"
}

// clusterMembers lists every broker the name servers know, sorted by
// cluster, name and id, this broker included even before it is
// registered. Without name servers it is this broker alone; when none
// answers, too, with the error.
func (b *Broker) clusterMembers(ctx context.Context) ([]clusterMember, error) {
	self := clusterMember{cluster: b.cfg.ClusterName, name: b.cfg.BrokerName, id: b.cfg.BrokerID, addr: b.addr, http: b.httpAdvertised()}
	if len(b.cfg.NamesrvAddrs) == 0 {
		return []clusterMember{self}, nil
	}
	ci, err := b.namesrvClusterInfo(ctx)
	if err != nil {
		return []clusterMember{self}, err
	}
	var out []clusterMember
	seenSelf := false
	for name, bd := range ci.BrokerAddrTable {
		for id, addr := range bd.BrokerAddrs {
			if addr == b.addr {
				seenSelf = true
			}
			out = append(out, clusterMember{cluster: bd.Cluster, name: name, id: id, addr: addr, http: ci.HTTPAddrs[addr]})
		}
	}
	if !seenSelf {
		out = append(out, self)
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.cluster != y.cluster {
			return x.cluster < y.cluster
		}
		if x.name != y.name {
			return x.name < y.name
		}
		return x.id < y.id
	})
	return out, nil
}

// namesrvClusterInfo asks the name servers in turn for the cluster info;
// the first answer wins.
func (b *Broker) namesrvClusterInfo(ctx context.Context) (*remoting.ClusterInfo, error) {
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

// clusterBroker is one member's entry: this broker's from its own state,
// another's from its HTTP API.
func (b *Broker) clusterBroker(ctx context.Context, m clusterMember, authz string) ClusterBroker {
	cb := ClusterBroker{Cluster: m.cluster, BrokerName: m.name, BrokerID: m.id, Addr: m.addr, HTTPAddr: m.http, Role: m.role()}
	var rt peerRuntime
	var st peerStats
	if m.addr == b.addr {
		cb.Self = true
		// Through JSON, as another broker's answer: what GET /v1/broker
		// reports beyond BrokerRuntime (replication) passes the same way.
		raw, err := json.Marshal(b.Runtime())
		if err == nil {
			err = json.Unmarshal(raw, &rt)
		}
		if err == nil {
			st.Points, err = json.Marshal(b.stats.statsPoints())
		}
		if err != nil {
			cb.Error = err.Error()
			return cb
		}
	} else {
		if m.http == "" {
			cb.Error = "the broker registered no HTTP address"
			return cb
		}
		var rtErr, stErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); rtErr = b.peerGet(ctx, m.http, "/v1/broker", authz, &rt) }()
		go func() { defer wg.Done(); stErr = b.peerGet(ctx, m.http, "/v1/broker/stats", authz, &st) }()
		wg.Wait()
		if err := errors.Join(rtErr, stErr); err != nil {
			cb.Error = err.Error()
			return cb
		}
	}
	cb.Reachable = true
	cb.Version, cb.Writable, cb.NotWritableReason = rt.Version, rt.Writable, rt.NotWritableWhy
	cb.Drained = rt.NotWritableWhy == drainedReason
	cb.DiskUsedRatio, cb.UptimeSeconds, cb.Topics, cb.Groups = rt.DiskUsedRatio, rt.UptimeSeconds, rt.Topics, rt.Groups
	cb.Producers, cb.Consumers, cb.Flush = rt.Producers, rt.Consumers, rt.Flush
	cb.CommitlogMin, cb.CommitlogMax, cb.MsgInTotal, cb.MsgOutTotal = rt.CommitlogMin, rt.CommitlogMax, rt.MsgInTotal, rt.MsgOutTotal
	cb.Replication = rt.Replication
	if len(cb.Replication) > 0 && string(cb.Replication) != "null" {
		var r struct {
			Role string `json:"role"`
		}
		switch err := json.Unmarshal(cb.Replication, &r); {
		case err == nil && r.Role == "standalone":
			// A broker without replicas: nothing to show beyond its role.
			cb.Replication = nil
		case err == nil && r.Role != "":
			cb.Role = r.Role
		}
	}
	if len(st.Points) > 0 && string(st.Points) != "null" {
		cb.Points = st.Points
		var pts []statsPoint
		if json.Unmarshal(st.Points, &pts) == nil && len(pts) > 0 {
			p := pts[len(pts)-1]
			cb.MsgInPerSec, cb.MsgOutPerSec, cb.BytesInPerSec, cb.BytesOutPerSec = p.MsgInRate, p.MsgOutRate, p.BytesInRate, p.BytesOutRate
		}
	}
	return cb
}

// peerClient is the HTTP client for other brokers' APIs: HTTPS when this
// broker serves TLS (the brokers of a cluster share their setup), trusting
// what the name-server connections trust (else the system's roots).
func (b *Broker) peerClient() *http.Client {
	b.peerOnce.Do(func() {
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: peerTimeout}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
			Proxy:               nil, // peers are dialled directly
		}
		if b.nsTLS != nil {
			tr.TLSClientConfig = b.nsTLS.Clone()
		}
		b.peerHC = &http.Client{Transport: tr, Timeout: peerTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	return b.peerHC
}

// peerGet reads path from the broker at httpAddr into out, with the
// caller's Authorization header.
func (b *Broker) peerGet(ctx context.Context, httpAddr, path, authz string, out any) error {
	scheme := "http"
	if b.tls != nil {
		scheme = "https"
	}
	u := (&url.URL{Scheme: scheme, Host: httpAddr}).String() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := b.peerClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, peerBodyLimit))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var p protocol.Problem
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, p.Detail)
		}
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// clusterGroup is one group of GET /v1/cluster/groups.
type clusterGroup struct {
	Name string `json:"name"`
	// Lag is the sum over the masters that have the group.
	Lag int64 `json:"lag"`
	// ByBroker is the lag on each master that has the group, by broker
	// name.
	ByBroker map[string]int64 `json:"by_broker"`
}

// clusterGroupsAnswer is GET /v1/cluster/groups.
type clusterGroupsAnswer struct {
	Groups []clusterGroup `json:"groups"`
	// Brokers are the masters asked; an unreachable one is marked, its
	// lag left out of the sums.
	Brokers      []ClusterBroker `json:"brokers"`
	NamesrvError string          `json:"namesrv_error,omitempty"`
}

// apiClusterGroups sums each group's lag over every master of the cluster
// (slaves hold copies of their master's queues and are left out).
func (b *Broker) apiClusterGroups(ctx *fasthttp.RequestCtx, _ apiParams) {
	c, cancel := context.WithTimeout(context.Background(), 2*peerTimeout+time.Second)
	defer cancel()
	members, nsErr := b.clusterMembers(c)
	var masters []clusterMember
	for _, m := range members {
		if m.id == 0 || m.addr == b.addr {
			masters = append(masters, m)
		}
	}
	out := clusterGroupsAnswer{Groups: []clusterGroup{}, Brokers: make([]ClusterBroker, len(masters))}
	if nsErr != nil {
		out.NamesrvError = nsErr.Error()
	}
	lags := make([]map[string]int64, len(masters))
	authz := string(ctx.Request.Header.Peek("Authorization"))
	var wg sync.WaitGroup
	for i, m := range masters {
		cb := ClusterBroker{Cluster: m.cluster, BrokerName: m.name, BrokerID: m.id, Addr: m.addr, HTTPAddr: m.http, Role: m.role()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { out.Brokers[i] = cb }()
			if m.addr == b.addr {
				cb.Self, cb.Reachable, lags[i] = true, true, b.groupLags()
				return
			}
			if m.http == "" {
				cb.Error = "the broker registered no HTTP address"
				return
			}
			var gs []struct {
				Name string `json:"name"`
				Lag  int64  `json:"lag"`
			}
			if err := b.peerGet(c, m.http, "/v1/stats/groups", authz, &gs); err != nil {
				cb.Error = err.Error()
				return
			}
			cb.Reachable = true
			lags[i] = make(map[string]int64, len(gs))
			for _, g := range gs {
				lags[i][g.Name] = g.Lag
			}
		}()
	}
	wg.Wait()
	byName := map[string]*clusterGroup{}
	for i, m := range lags {
		for name, lag := range m {
			g := byName[name]
			if g == nil {
				g = &clusterGroup{Name: name, ByBroker: map[string]int64{}}
				byName[name] = g
			}
			g.Lag += lag
			g.ByBroker[masters[i].name] += lag
		}
	}
	for _, g := range byName {
		out.Groups = append(out.Groups, *g)
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Name < out.Groups[j].Name })
	writeJSON(ctx, fasthttp.StatusOK, out)
}
