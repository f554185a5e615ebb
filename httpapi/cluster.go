package httpapi

// The cluster as one broker's HTTP API sees it: GET /v1/cluster lists
// every broker the name servers know, each with its own status, and GET
// /v1/cluster/groups sums every group's lag over the masters. A broker
// learns the others' HTTP addresses from the name servers and asks each
// one's HTTP API — GET /v1/broker and GET /v1/broker/stats, GET
// /v1/stats/groups — with a short timeout, with the caller's
// Authorization header. A broker that does not answer is listed with
// "reachable": false and the error; it does not fail the request.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Cluster is what the cluster view needs of the broker serving it.
type Cluster interface {
	// Members lists every broker the name servers know, this one
	// included; without name servers, or when none answers (with the
	// error), this one alone.
	Members(ctx context.Context) ([]broker.ClusterMember, error)
	// Self is this broker's remoting address.
	Self() string
	Points() []protocol.HTTPStatsPoint
	GroupLags() map[string]int64
	// PeerTLS says whether the brokers serve HTTPS, and what to trust.
	PeerTLS() (bool, *tls.Config)
}

// peerTimeout bounds one call to another broker on behalf of a
// /v1/cluster request.
const peerTimeout = 2 * time.Second

// peerBodyLimit bounds an answer read from another broker.
const peerBodyLimit = 8 << 20

// peerRuntime is what the cluster view reads of GET /v1/broker.
type peerRuntime struct {
	protocol.BrokerRuntime
	Replication json.RawMessage `json:"replication,omitempty"`
}

// peerStats is GET /v1/broker/stats.
type peerStats struct {
	Points json.RawMessage `json:"points"`
}

// peers calls the other brokers' HTTP APIs: HTTPS when this broker serves
// TLS (the brokers of a cluster share their setup).
type peers struct {
	once   sync.Once
	client *http.Client
	scheme string
}

func (a *api) peerClient() (*http.Client, string) {
	a.peers.once.Do(func() {
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: peerTimeout}).DialContext,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     30 * time.Second,
			Proxy:               nil, // peers are dialled directly
		}
		a.peers.scheme = "http"
		if on, cfg := a.be.Cluster.PeerTLS(); on {
			a.peers.scheme, tr.TLSClientConfig = "https", cfg
		}
		a.peers.client = &http.Client{Transport: tr, Timeout: peerTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	return a.peers.client, a.peers.scheme
}

// closePeers closes the idle connections to other brokers.
func (a *api) closePeers() {
	if a.peers.client != nil {
		a.peers.client.CloseIdleConnections()
	}
}

func role(m broker.ClusterMember) string {
	if m.ID == 0 {
		return "master"
	}
	return "slave"
}

func memberEntry(m broker.ClusterMember) protocol.HTTPClusterBroker {
	return protocol.HTTPClusterBroker{Cluster: m.Cluster, BrokerName: m.Name, BrokerID: m.ID, Addr: m.Addr, HTTPAddr: m.HTTP, Role: role(m)}
}

func cluster(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	c, cancel := context.WithTimeout(context.Background(), 2*peerTimeout+time.Second)
	defer cancel()
	members, nsErr := a.be.Cluster.Members(c)
	out := protocol.HTTPCluster{Brokers: make([]protocol.HTTPClusterBroker, len(members))}
	if nsErr != nil {
		out.NamesrvError = nsErr.Error()
	}
	authz := string(ctx.Request.Header.Peek("Authorization"))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Brokers[i] = a.clusterBroker(c, m, authz)
		}()
	}
	wg.Wait()
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, out)
	return nil
}

// clusterBroker is one member's entry: this broker's from its own state,
// another's from its HTTP API.
func (a *api) clusterBroker(ctx context.Context, m broker.ClusterMember, authz string) protocol.HTTPClusterBroker {
	cb := memberEntry(m)
	var rt peerRuntime
	var st peerStats
	if m.Addr == a.be.Cluster.Self() {
		cb.Self = true
		// Through JSON, as another broker's answer: what GET /v1/broker
		// reports beyond BrokerRuntime (replication) passes the same way.
		raw, err := json.Marshal(a.be.Admin.Runtime())
		if err == nil {
			err = json.Unmarshal(raw, &rt)
		}
		if err == nil {
			st.Points, err = json.Marshal(a.be.Cluster.Points())
		}
		if err != nil {
			cb.Error = err.Error()
			return cb
		}
	} else {
		if m.HTTP == "" {
			cb.Error = "the broker registered no HTTP address"
			return cb
		}
		var rtErr, stErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); rtErr = a.peerGet(ctx, m.HTTP, "/v1/broker", authz, &rt) }()
		go func() { defer wg.Done(); stErr = a.peerGet(ctx, m.HTTP, "/v1/broker/stats", authz, &st) }()
		wg.Wait()
		if err := errors.Join(rtErr, stErr); err != nil {
			cb.Error = err.Error()
			return cb
		}
	}
	cb.Reachable = true
	cb.Version, cb.Writable, cb.NotWritableReason = rt.Version, rt.Writable, rt.NotWritableWhy
	cb.Drained = rt.NotWritableWhy == protocol.DrainedReason
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
		var pts []protocol.HTTPStatsPoint
		if json.Unmarshal(st.Points, &pts) == nil && len(pts) > 0 {
			p := pts[len(pts)-1]
			cb.MsgInPerSec, cb.MsgOutPerSec, cb.BytesInPerSec, cb.BytesOutPerSec = p.MsgInRate, p.MsgOutRate, p.BytesInRate, p.BytesOutRate
		}
	}
	return cb
}

// peerGet reads path from the broker at httpAddr into out, with the
// caller's Authorization header.
func (a *api) peerGet(ctx context.Context, httpAddr, path, authz string, out any) error {
	hc, scheme := a.peerClient()
	u := (&url.URL{Scheme: scheme, Host: httpAddr}).String() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := hc.Do(req)
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

// clusterGroups sums each group's lag over every master of the cluster
// (slaves hold copies of their master's queues and are left out).
func clusterGroups(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	c, cancel := context.WithTimeout(context.Background(), 2*peerTimeout+time.Second)
	defer cancel()
	members, nsErr := a.be.Cluster.Members(c)
	self := a.be.Cluster.Self()
	var masters []broker.ClusterMember
	for _, m := range members {
		if m.ID == 0 || m.Addr == self {
			masters = append(masters, m)
		}
	}
	out := protocol.HTTPClusterGroups{Groups: []protocol.HTTPClusterGroup{}, Brokers: make([]protocol.HTTPClusterBroker, len(masters))}
	if nsErr != nil {
		out.NamesrvError = nsErr.Error()
	}
	lags := make([]map[string]int64, len(masters))
	authz := string(ctx.Request.Header.Peek("Authorization"))
	var wg sync.WaitGroup
	for i, m := range masters {
		cb := memberEntry(m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { out.Brokers[i] = cb }()
			if m.Addr == self {
				cb.Self, cb.Reachable, lags[i] = true, true, a.be.Cluster.GroupLags()
				return
			}
			if m.HTTP == "" {
				cb.Error = "the broker registered no HTTP address"
				return
			}
			var gs []struct {
				Name string `json:"name"`
				Lag  int64  `json:"lag"`
			}
			if err := a.peerGet(c, m.HTTP, "/v1/stats/groups", authz, &gs); err != nil {
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
	byName := map[string]*protocol.HTTPClusterGroup{}
	for i, m := range lags {
		for name, lag := range m {
			g := byName[name]
			if g == nil {
				g = &protocol.HTTPClusterGroup{Name: name, ByBroker: map[string]int64{}}
				byName[name] = g
			}
			g.Lag += lag
			g.ByBroker[masters[i].Name] += lag
		}
	}
	for _, g := range byName {
		out.Groups = append(out.Groups, *g)
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].Name < out.Groups[j].Name })
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, out)
	return nil
}
