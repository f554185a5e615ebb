package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ferrymq/ferry/remoting"
)

// clusterBroker is a broker of GET /v1/cluster as the tests read it.
type clusterBroker struct {
	Cluster     string          `json:"cluster"`
	BrokerName  string          `json:"broker_name"`
	BrokerID    int64           `json:"broker_id"`
	Addr        string          `json:"addr"`
	HTTPAddr    string          `json:"http_addr"`
	Self        bool            `json:"self"`
	Reachable   bool            `json:"reachable"`
	Error       string          `json:"error"`
	Role        string          `json:"role"`
	Version     string          `json:"version"`
	Writable    bool            `json:"writable"`
	Drained     bool            `json:"drained"`
	Topics      int             `json:"topics"`
	Uptime      float64         `json:"uptime_seconds"`
	Replication json.RawMessage `json:"replication"`
	Points      []struct {
		AtMs int64 `json:"at_ms"`
	} `json:"points"`
}

type clusterView struct {
	Brokers      []clusterBroker `json:"brokers"`
	NamesrvError string          `json:"namesrv_error"`
}

func (c clusterView) find(name string, id int64) *clusterBroker {
	for i := range c.Brokers {
		if c.Brokers[i].BrokerName == name && c.Brokers[i].BrokerID == id {
			return &c.Brokers[i]
		}
	}
	return nil
}

type clusterGroups struct {
	Groups []struct {
		Name     string           `json:"name"`
		Lag      int64            `json:"lag"`
		ByBroker map[string]int64 `json:"by_broker"`
	} `json:"groups"`
	Brokers []clusterBroker `json:"brokers"`
}

// hostPort is base without its scheme.
func hostPort(base string) string { return strings.TrimPrefix(base, "http://") }

// lagging gives broker s a topic with n messages and the group billing
// committed at its start, so billing lags by n there.
func lagging(t *testing.T, s *server, topic string, n int) {
	t.Helper()
	s.call(t, "POST", "/v1/topics", map[string]any{"name": topic, "read_queues": 1, "write_queues": 1}, 201, nil)
	var msgs []map[string]any
	for i := range n {
		msgs = append(msgs, map[string]any{"body": fmt.Sprintf("m%d", i), "queue_id": 0})
	}
	s.call(t, "POST", "/v1/topics/"+topic+"/messages", map[string]any{"messages": msgs}, 200, nil)
	s.call(t, "POST", "/v1/groups", map[string]any{"name": "billing"}, 201, nil)
	s.call(t, "PUT", "/v1/groups/billing/offsets", map[string]any{"offsets": []map[string]any{{"topic": topic, "queue_id": 0, "offset": 0}}}, 200, nil)
}

// TestClusterEndpoint runs `ferry server` and a second broker (`ferry
// broker run`) registered with its name server: GET /v1/cluster on either
// lists both with their own status, a drain shows on the other's list, the
// group lag sums over both, and a broker that stops answering is listed as
// unreachable without failing the request.
func TestClusterEndpoint(t *testing.T) {
	a := startServer(t)
	b := startBroker(t, a.namesrv, "broker-b")

	var view clusterView
	waitFor(t, 30*time.Second, "both brokers listed and answering", func() bool {
		view = clusterView{}
		a.call(t, "GET", "/v1/cluster", nil, 200, &view)
		return len(view.Brokers) == 2 && view.Brokers[0].Reachable && view.Brokers[1].Reachable
	})
	ba, bb := view.find("broker-a", 0), view.find("broker-b", 0)
	if ba == nil || bb == nil {
		t.Fatalf("brokers %+v", view.Brokers)
	}
	if !ba.Self || bb.Self || ba.HTTPAddr != hostPort(a.base) || bb.HTTPAddr != hostPort(b.base) {
		t.Fatalf("self and HTTP addresses: %+v / %+v (want %s, %s)", ba, bb, a.base, b.base)
	}
	for _, x := range []*clusterBroker{ba, bb} {
		if x.Cluster != "DefaultCluster" || x.Role != "master" || x.Version == "" || !x.Writable || x.Drained || x.Uptime <= 0 || x.Addr == "" || x.Error != "" {
			t.Fatalf("broker %+v", x)
		}
		if len(x.Replication) != 0 {
			t.Fatalf("replication %s from a broker that reports none", x.Replication)
		}
	}

	// What the Overview costs per refresh: GET /v1/cluster with both
	// answering, median of 20.
	var lat []time.Duration
	for range 20 {
		start := time.Now()
		a.call(t, "GET", "/v1/cluster", nil, 200, nil)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("GET /v1/cluster with two brokers: median %v, max %v", lat[10], lat[19])

	// Asked of the second broker, the list is the same, seen from there.
	var fromB clusterView
	b.call(t, "GET", "/v1/cluster", nil, 200, &fromB)
	if x := fromB.find("broker-b", 0); len(fromB.Brokers) != 2 || x == nil || !x.Self || !fromB.find("broker-a", 0).Reachable {
		t.Fatalf("from broker-b: %+v", fromB)
	}

	// A drain of broker-b shows on broker-a's list.
	b.call(t, "POST", "/v1/broker/drain", nil, 200, nil)
	view = clusterView{}
	a.call(t, "GET", "/v1/cluster", nil, 200, &view)
	if x := view.find("broker-b", 0); x == nil || !x.Drained || x.Writable {
		t.Fatalf("drained broker-b: %+v", x)
	}
	b.call(t, "POST", "/v1/broker/undrain", nil, 200, nil)

	// The lag of billing, 3 behind on broker-a and 5 on broker-b.
	lagging(t, a, "orders-a", 3)
	lagging(t, b, "orders-b", 5)
	var cg clusterGroups
	waitFor(t, 20*time.Second, "billing's lag summed over both brokers", func() bool {
		cg = clusterGroups{}
		a.call(t, "GET", "/v1/cluster/groups", nil, 200, &cg)
		for _, g := range cg.Groups {
			if g.Name == "billing" {
				return g.Lag == 8 && g.ByBroker["broker-a"] == 3 && g.ByBroker["broker-b"] == 5
			}
		}
		return false
	})
	if len(cg.Brokers) != 2 {
		t.Fatalf("masters asked: %+v", cg.Brokers)
	}

	// broker-b stops answering (SIGSTOP: its connection to the name server
	// stays, so it stays listed). The list still answers, within the
	// peers' timeout, with broker-b unreachable.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.cmd.Process.Signal(syscall.SIGCONT) }()
	start := time.Now()
	view = clusterView{} // decoding into the old one would keep fields the answer leaves out
	a.call(t, "GET", "/v1/cluster", nil, 200, &view)
	took := time.Since(start)
	if x := view.find("broker-b", 0); x == nil || x.Reachable || x.Error == "" || x.Version != "" {
		t.Fatalf("stopped broker-b: %+v", x)
	}
	if x := view.find("broker-a", 0); x == nil || !x.Reachable {
		t.Fatalf("broker-a with broker-b stopped: %+v", x)
	}
	if took > 5*time.Second {
		t.Fatalf("GET /v1/cluster took %v with a broker not answering", took)
	}
	cg = clusterGroups{}
	a.call(t, "GET", "/v1/cluster/groups", nil, 200, &cg)
	for _, g := range cg.Groups {
		if g.Name == "billing" && (g.Lag != 3 || len(g.ByBroker) != 1) {
			t.Fatalf("billing with broker-b unreachable: %+v", g)
		}
	}
	t.Logf("GET /v1/cluster with one of two brokers stopped: %v", took)
}

// replicationFixture is what a replicated broker reports in GET
// /v1/broker's "replication" object.
const replicationFixture = `{"role":"slave","replica_id":1,"epoch":7,"master_addr":"127.0.0.1:10911","in_sync":false,` +
	`"commit_offset":1048576,"max_offset":1050624,"lag_bytes":2048,"lag_seconds":1.5,"replicas":[]}`

// stubBroker is a broker that exists only as a name-server registration
// and an HTTP API answering GET /v1/broker and GET /v1/broker/stats with
// fixed answers (a replicated broker's, with replicationFixture).
type stubBroker struct {
	http *httptest.Server
	addr string // the remoting address it registered (nothing listens)
}

// startStubBroker registers broker name/id with the name server at
// namesrv; its HTTP API answers with runtime (GET /v1/broker).
func startStubBroker(t *testing.T, namesrv, name string, id int64, runtime string) *stubBroker {
	t.Helper()
	now := time.Now().UnixMilli()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/broker", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(runtime))
	})
	mux.HandleFunc("GET /v1/broker/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var pts []string
		for i := 1; i <= 6; i++ { // oldest first, the last 60 msg/s in
			pts = append(pts, fmt.Sprintf(`{"at_ms":%d,"msg_in_per_s":%d,"msg_out_per_s":%d,"bytes_in_per_s":%d,"bytes_out_per_s":%d}`,
				now-int64(7-i)*10_000, 10*i, 9*i, 1000*i, 900*i))
		}
		_, _ = fmt.Fprintf(w, `{"interval_ms":10000,"points":[%s]}`, strings.Join(pts, ","))
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	// A remoting address nobody listens on: the stub only shows in lists.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cl := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { _ = cl.Close() }) // the name server drops the broker with the connection
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := remoting.RegisterBrokerHeader{BrokerName: name, BrokerAddr: addr, ClusterName: "DefaultCluster", HAServerAddr: addr,
		BrokerID: id, HTTPAddr: hostPort(hs.URL)}
	if _, err := remoting.RegisterBroker(ctx, cl, namesrv, h, &remoting.RegisterBrokerBody{}); err != nil {
		t.Fatalf("register stub broker %s: %v", name, err)
	}
	return &stubBroker{http: hs, addr: addr}
}

// stubRuntime is a GET /v1/broker answer of a slave of broker-b with
// replicationFixture.
func stubRuntime(addr string) string {
	return `{"broker_name":"broker-b","cluster_name":"DefaultCluster","broker_id":1,"addr":"` + addr + `","version":"0.0.0-stub",` +
		`"flush":"async","writable":true,"uptime_seconds":4000,"commitlog_min_offset":0,"commitlog_max_offset":1048576,` +
		`"disk_used_ratio":0.42,"topics":5,"groups":2,"producers":0,"consumers":1,"msg_in_total":0,"msg_out_total":0,` +
		`"replication":` + replicationFixture + `}`
}

// TestClusterReplicationPassThrough: a broker whose GET /v1/broker has a
// replication object (a stub here) is listed with that object as it is and
// its role; its rates come from its own stats.
func TestClusterReplicationPassThrough(t *testing.T) {
	a := startServer(t)
	stub := startStubBroker(t, a.namesrv, "broker-b", 1, stubRuntime(""))
	var view clusterView
	a.call(t, "GET", "/v1/cluster", nil, 200, &view)
	x := view.find("broker-b", 1)
	if x == nil || !x.Reachable || x.Role != "slave" || x.Version != "0.0.0-stub" || x.HTTPAddr != hostPort(stub.http.URL) || x.Addr != stub.addr {
		t.Fatalf("stub broker %+v in %+v", x, view)
	}
	var got, want any
	if err := json.Unmarshal(x.Replication, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(replicationFixture), &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replication %s, want %s", x.Replication, replicationFixture)
	}
	if len(x.Points) != 6 {
		t.Fatalf("%d points of the stub's stats", len(x.Points))
	}
	var raw struct {
		Brokers []map[string]any `json:"brokers"`
	}
	a.call(t, "GET", "/v1/cluster", nil, 200, &raw)
	for _, m := range raw.Brokers {
		if m["broker_id"].(float64) == 1 && (m["msg_in_per_s"].(float64) != 60 || m["disk_used_ratio"].(float64) != 0.42) {
			t.Fatalf("the stub's rates and disk: %v", m)
		}
	}
	// Slaves are not asked for group lag: their queues copy the master's.
	var cg clusterGroups
	a.call(t, "GET", "/v1/cluster/groups", nil, 200, &cg)
	if len(cg.Brokers) != 1 || cg.Brokers[0].BrokerName != "broker-a" {
		t.Fatalf("masters asked for lag: %+v", cg.Brokers)
	}
}

// TestConsoleCluster opens the console of a cluster of two brokers and a
// replicated slave (a stub answering replicationFixture): the Overview
// lists all three with the slave's replication state and charts for each,
// the Groups pages show the lag summed over the masters, and a broker that
// stops answering is shown as such, not as an error of the page.
func TestConsoleCluster(t *testing.T) {
	br := newBrowser(t) // skips without Chromium, before starting anything
	a := startServer(t)
	b := startBroker(t, a.namesrv, "broker-b")
	startStubBroker(t, a.namesrv, "broker-b", 1, stubRuntime(""))
	lagging(t, a, "orders-a", 3)
	lagging(t, b, "orders-b", 5)
	waitFor(t, 30*time.Second, "three brokers listed and answering", func() bool {
		var view clusterView
		a.call(t, "GET", "/v1/cluster", nil, 200, &view)
		n := 0
		for _, x := range view.Brokers {
			if x.Reachable {
				n++
			}
		}
		return n == 3
	})
	c := a.base + "/console/"

	br.run(t, "overview", chromedp.Navigate(c), chromedp.WaitVisible(`#brokers tr[data-broker="broker-b/1"]`, chromedp.ByQuery))
	var rows, charts int
	br.run(t, "count", chromedp.Evaluate(`document.querySelectorAll("#brokers tbody tr").length`, &rows),
		chromedp.Evaluate(`document.querySelectorAll("#charts .broker-charts").length`, &charts))
	if rows != 3 || charts != 3 {
		t.Fatalf("%d broker rows and %d chart rows, want 3 and 3", rows, charts)
	}
	if role := br.text(t, `#brokers tr[data-broker="broker-b/1"] td.role`); !strings.Contains(role, "slave") ||
		!strings.Contains(role, "epoch 7 · out of sync · lag 2.0 KiB / 2s") {
		t.Fatalf("the slave's role cell: %q", role)
	}
	if alerts := br.text(t, "#alerts"); !strings.Contains(alerts, "Broker broker-b (1) is out of sync with its master (2.0 KiB behind)") {
		t.Fatalf("alerts: %q", alerts)
	}
	br.shot(t, "cluster")

	// billing lags by 3 on broker-a and 5 on broker-b.
	br.run(t, "groups", chromedp.Navigate(c+"groups"), chromedp.WaitVisible(`a[href="/console/groups/billing"]`, chromedp.ByQuery))
	var cells []string
	br.run(t, "billing's row", chromedp.Evaluate(`[...document.querySelector('a[href="/console/groups/billing"]').closest("tr").cells].map((c) => c.textContent)`, &cells))
	if len(cells) < 4 || cells[2] != "3" || cells[3] != "8" {
		t.Fatalf("billing's row %q: want lag 3 here, 8 in the cluster", cells)
	}
	br.run(t, "billing", chromedp.Navigate(c+"groups/billing"), chromedp.WaitVisible("#group-cluster-lag", chromedp.ByQuery))
	if got := br.text(t, "#group-cluster-lag"); got != "8" {
		t.Fatalf("billing's cluster lag %q", got)
	}
	if got := br.text(t, "#group-lag-by-broker"); got != "broker-a: 3 · broker-b: 5" {
		t.Fatalf("billing's lag by broker %q", got)
	}

	// broker-b stops answering.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.cmd.Process.Signal(syscall.SIGCONT) }()
	br.run(t, "overview with broker-b stopped", chromedp.Navigate(c),
		chromedp.WaitVisible(`#brokers tr[data-broker="broker-b/0"] .badge.bad`, chromedp.ByQuery))
	if got := br.text(t, `#brokers tr[data-broker="broker-b/0"] .badge.bad`); got != "unreachable" {
		t.Fatalf("stopped broker-b shown %q", got)
	}
	if alerts := br.text(t, "#alerts"); !strings.Contains(alerts, "Broker broker-b at ") || !strings.Contains(alerts, "does not answer") {
		t.Fatalf("alerts with broker-b stopped: %q", alerts)
	}
	br.noErrors(t, "cluster console")
}

// TestClusterWithACL: with an ACL on both brokers, GET /v1/cluster needs
// an admin account, and the broker asks the other with the caller's
// account, so both answer.
func TestClusterWithACL(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "plain_acl.yml")
	if err := os.WriteFile(acl, []byte(aclFile), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startServer(t, "--acl-file", acl)
	startBroker(t, a.namesrv, "broker-b", "--acl-file", acl)
	get := func(user, pass string, out any) int {
		t.Helper()
		req, _ := http.NewRequest("GET", a.base+"/v1/cluster", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := a.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil && resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}
	if st := get("", "", nil); st != http.StatusUnauthorized {
		t.Fatalf("without an account: %d", st)
	}
	if st := get("orders-app", "orders-secret-1", nil); st != http.StatusForbidden {
		t.Fatalf("with an application account: %d", st)
	}
	waitFor(t, 30*time.Second, "both brokers answering the admin", func() bool {
		var view clusterView
		if st := get("console-admin", "admin-secret-1", &view); st != 200 {
			t.Fatalf("admin: %d", st)
		}
		x := view.find("broker-b", 0)
		if x != nil && !x.Reachable && !strings.Contains(x.Error, "connect") {
			t.Fatalf("broker-b refused the admin's account: %s", x.Error)
		}
		return len(view.Brokers) == 2 && x != nil && x.Reachable
	})
}
