package broker

import (
	"net"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// TestAPIClusterAlone: without name servers GET /v1/cluster is this broker
// alone, with its own status; a drain shows; the group lag sums over it.
func TestAPIClusterAlone(t *testing.T) {
	b, api := testHTTPBroker(t, nil)
	var got protocol.HTTPCluster
	api.ok("GET", "/v1/cluster", nil, 200, &got)
	if len(got.Brokers) != 1 || got.NamesrvError != "" {
		t.Fatalf("cluster %+v", got)
	}
	x := got.Brokers[0]
	if !x.Self || !x.Reachable || x.Addr != b.Addr() || x.HTTPAddr != b.HTTPAddr() || x.Role != "master" ||
		x.BrokerName != b.cfg.BrokerName || x.Version != Version || !x.Writable || x.Drained || x.Error != "" || x.Replication != nil {
		t.Fatalf("broker %+v", x)
	}
	api.ok("POST", "/v1/broker/drain", nil, 200, nil)
	got = protocol.HTTPCluster{}
	api.ok("GET", "/v1/cluster", nil, 200, &got)
	if x := got.Brokers[0]; !x.Drained || x.Writable || x.NotWritableReason != protocol.DrainedReason {
		t.Fatalf("drained: %+v", x)
	}
	api.ok("POST", "/v1/broker/undrain", nil, 200, nil)

	api.ok("POST", "/v1/topics", map[string]any{"name": "T", "read_queues": 1, "write_queues": 1}, 201, nil)
	api.ok("POST", "/v1/topics/T/messages", map[string]any{"messages": []map[string]any{{"body": "a"}, {"body": "b"}}}, 200, nil)
	api.ok("POST", "/v1/groups", map[string]any{"name": "g"}, 201, nil)
	api.ok("PUT", "/v1/groups/g/offsets", map[string]any{"offsets": []map[string]any{{"topic": "T", "queue_id": 0, "offset": 0}}}, 200, nil)
	var cg protocol.HTTPClusterGroups
	api.ok("GET", "/v1/cluster/groups", nil, 200, &cg)
	if len(cg.Groups) != 1 || cg.Groups[0].Name != "g" || cg.Groups[0].Lag != 2 || cg.Groups[0].ByBroker[b.cfg.BrokerName] != 2 ||
		len(cg.Brokers) != 1 || !cg.Brokers[0].Self {
		t.Fatalf("cluster groups %+v", cg)
	}
}

// TestAPIClusterNamesrvDown: when no name server answers, the list is this
// broker alone with the error, not a failed request.
func TestAPIClusterNamesrvDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	_, api := testHTTPBroker(t, func(c *Config) { c.NamesrvAddrs = []string{dead} })
	var got protocol.HTTPCluster
	api.ok("GET", "/v1/cluster", nil, 200, &got)
	if len(got.Brokers) != 1 || !got.Brokers[0].Self || !got.Brokers[0].Reachable || got.NamesrvError == "" {
		t.Fatalf("cluster with the name server down: %+v", got)
	}
}

// TestHTTPAdvertised: HTTP on every address registers the advertised IP
// with the bound port; on one address, that address.
func TestHTTPAdvertised(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.HTTPHost, c.HTTPPort = "", 0 })
	_, port, _ := net.SplitHostPort(b.HTTPAddr())
	if got := b.httpAdvertised(); got != "127.0.0.1:"+port {
		t.Fatalf("advertised %q (bound %s)", got, b.HTTPAddr())
	}
	b2 := testBroker(t, t.TempDir(), func(c *Config) { c.HTTPHost, c.HTTPPort = "127.0.0.1", 0 })
	if got := b2.httpAdvertised(); got != b2.HTTPAddr() {
		t.Fatalf("advertised %q, bound %s", got, b2.HTTPAddr())
	}
	b3 := testBroker(t, t.TempDir(), nil) // no HTTP
	if got := b3.httpAdvertised(); got != "" {
		t.Fatalf("advertised %q without HTTP", got)
	}
}
