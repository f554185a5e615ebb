package broker

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

func TestAPIGroups(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	var g protocol.HTTPGroup
	a.ok("POST", "/v1/groups", map[string]any{"name": "g1", "retry_max_times": 3, "consume_broadcast_enable": false}, 201, &g)
	if g != (protocol.HTTPGroup{Name: "g1", ConsumeEnable: true, RetryMaxTimes: 3}) {
		t.Fatalf("created %+v", g)
	}
	a.fails("POST", "/v1/groups", map[string]any{"name": "g1"}, 409, 1007)
	a.fails("POST", "/v1/groups", map[string]any{"name": "a b"}, 400, 1009)
	a.fails("POST", "/v1/groups", map[string]any{"name": "g2", "retry_max_times": 5000}, 400, 1002)
	a.fails("POST", "/v1/groups", map[string]any{"name": "g2", "retry": 1}, 400, 1002)
	var list []protocol.HTTPGroup
	a.ok("GET", "/v1/groups", nil, 200, &list)
	if len(list) != 1 || list[0].Name != "g1" {
		t.Fatalf("list %+v", list)
	}
	a.ok("GET", "/v1/groups/g1", nil, 200, &g)
	a.fails("GET", "/v1/groups/nope", nil, 404, 26)
	a.ok("PUT", "/v1/groups/g1", map[string]any{"retry_max_times": 5, "consume_enable": false}, 200, &g)
	if g.RetryMaxTimes != 5 || g.ConsumeEnable {
		t.Fatalf("updated %+v", g)
	}
	a.fails("PUT", "/v1/groups/nope", map[string]any{"retry_max_times": 1}, 404, 26)
	a.fails("PUT", "/v1/groups/g1", map[string]any{"name": "g9"}, 400, 1002)
	a.fails("PUT", "/v1/groups/g1", map[string]any{"retry_max_times": -5}, 400, 1002)

	// Clients: a remoting consumer's heartbeat shows up.
	var clients []ClientInfo
	a.ok("GET", "/v1/groups/g1/clients", nil, 200, &clients)
	if len(clients) != 0 {
		t.Fatalf("clients %+v", clients)
	}
	c := newClient(t, b)
	hb := remoting.HeartbeatData{ClientID: "cid-1", ConsumerDataSet: []remoting.ConsumerData{{GroupName: "g1",
		ConsumeType: "CONSUME_PASSIVELY", MessageModel: remoting.MessageModelClustering, ConsumeFromWhere: "CONSUME_FROM_LAST_OFFSET",
		SubscriptionDataSet: []remoting.SubscriptionData{{Topic: "lagged", SubString: "*"}}}}}
	body, err := json.Marshal(hb)
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, c.invoke(remoting.NewRequest(protocol.ReqHeartBeat, nil, body)))
	a.ok("GET", "/v1/groups/g1/clients", nil, 200, &clients)
	if len(clients) != 1 || clients[0].ClientID != "cid-1" {
		t.Fatalf("clients %+v", clients)
	}
	a.fails("GET", "/v1/groups/nope/clients", nil, 404, 26)

	// Lag and offset resets.
	a.ok("POST", "/v1/topics", map[string]any{"name": "lagged", "read_queues": 1, "write_queues": 1}, 201, nil)
	for i := 0; i < 5; i++ {
		a.produce("lagged", map[string]any{"body": "x"})
	}
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("lagged", 0) == 5 })
	var lag lagAnswer
	a.ok("GET", "/v1/groups/g1/lag", nil, 200, &lag)
	if len(lag.Rows) != 1 || lag.Rows[0] != (protocol.HTTPLagRow{QueueLag: protocol.QueueLag{Topic: "lagged", QueueID: 0, BrokerOffset: 5, ConsumerOffset: 0, Lag: 5}}) || lag.Total != 5 {
		t.Fatalf("lag %+v", lag)
	}
	a.fails("GET", "/v1/groups/nope/lag", nil, 404, 26)
	type offsets struct {
		Offsets []protocol.HTTPOffsetChange `json:"offsets"`
	}
	var o offsets
	a.ok("POST", "/v1/groups/g1/offsets/reset", map[string]any{"topic": "lagged", "to": "latest"}, 200, &o)
	if len(o.Offsets) != 1 || o.Offsets[0] != (protocol.HTTPOffsetChange{QueueID: 0, Old: -1, New: 5}) {
		t.Fatalf("dry run %+v", o)
	}
	a.ok("GET", "/v1/groups/g1/lag", nil, 200, &lag)
	if lag.Total != 5 {
		t.Fatalf("dry run changed the lag: %+v", lag)
	}
	// Online consumers block an executed reset.
	a.fails("POST", "/v1/groups/g1/offsets/reset", map[string]any{"topic": "lagged", "to": "latest", "execute": true}, 400, 1002)
	c.c.Close()
	waitFor(t, 5*time.Second, "the consumer to leave", func() bool { return len(b.Admin().GroupClients("g1")) == 0 })
	a.ok("POST", "/v1/groups/g1/offsets/reset", map[string]any{"topic": "lagged", "to": "offset", "value": 3, "execute": true}, 200, &o)
	if o.Offsets[0] != (protocol.HTTPOffsetChange{QueueID: 0, Old: -1, New: 3}) {
		t.Fatalf("executed %+v", o)
	}
	a.ok("POST", "/v1/groups/g1/offsets/reset", map[string]any{"topic": "lagged", "to": "earliest"}, 200, &o)
	if o.Offsets[0] != (protocol.HTTPOffsetChange{QueueID: 0, Old: 3, New: 0}) {
		t.Fatalf("dry run to earliest %+v", o)
	}
	a.ok("POST", "/v1/groups/g1/offsets/reset", map[string]any{"topic": "lagged", "to": "time", "value": time.Now().Add(time.Hour).UnixMilli()}, 200, &o)
	if o.Offsets[0].New != 5 {
		t.Fatalf("dry run to a future time %+v", o)
	}
	a.ok("GET", "/v1/groups/g1/lag", nil, 200, &lag)
	if lag.Total != 2 {
		t.Fatalf("lag after reset %+v", lag)
	}
	// An HTTP receiver follows the reset.
	a.ok("PUT", "/v1/groups/g1", map[string]any{"consume_enable": true}, 200, nil)
	msgs := a.receive("g1", map[string]any{"topic": "lagged", "max": 10})
	if len(msgs) != 2 || msgs[0].QueueOffset != 3 {
		t.Fatalf("after reset received %d from %+v", len(msgs), msgs)
	}
	a.fails("POST", "/v1/groups/g1/offsets/reset", map[string]any{"topic": "lagged", "to": "yesterday"}, 400, 1002)
	a.fails("POST", "/v1/groups/g1/offsets/reset", map[string]any{"to": "latest"}, 400, 1002)
	a.fails("POST", "/v1/groups/g1/offsets/reset", map[string]any{"topic": "nope", "to": "latest"}, 404, 17)
	a.fails("POST", "/v1/groups/nope/offsets/reset", map[string]any{"topic": "lagged", "to": "latest"}, 404, 26)

	// An empty DLQ lists nothing.
	var dl map[string]any
	a.ok("GET", "/v1/groups/g1/dlq", nil, 200, &dl)
	if l, ok := dl["dead_letters"].([]any); !ok || len(l) != 0 {
		t.Fatalf("dlq %v", dl)
	}
	var rs map[string]int
	a.ok("POST", "/v1/groups/g1/dlq/resend", map[string]any{"all": true}, 200, &rs)
	if rs["resent"] != 0 {
		t.Fatalf("resend of nothing %v", rs)
	}
	a.fails("POST", "/v1/groups/g1/dlq/resend", map[string]any{"offsets": []int64{0}}, 404, 17)

	r := a.do("DELETE", "/v1/groups/g1", nil, "")
	if r.status != 204 {
		t.Fatalf("delete %d %s", r.status, r.body)
	}
	a.fails("DELETE", "/v1/groups/g1", nil, 404, 26)
	a.fails("GET", "/v1/groups/g1", nil, 404, 26)
}

// TestAPIShutdownEndsLongPolls: a held receive and a held read answer when
// the broker stops, and the lease sweeper is gone.
func TestAPIShutdownEndsLongPolls(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "s", "read_queues": 1, "write_queues": 1}, 201, nil)
	done := make(chan int, 2)
	go func() {
		done <- a.do("POST", "/v1/groups/sg/receive", map[string]any{"topic": "s", "wait_ms": 60000}, "").status
	}()
	go func() {
		done <- a.do("GET", "/v1/topics/s/queues/0/messages?wait_ms=60000", nil, "").status
	}()
	waitFor(t, 5*time.Second, "two held polls", func() bool { return b.holds.waiters.Load() == 2 })
	start := time.Now()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if st := <-done; st != 200 {
			t.Fatalf("held poll answered %d", st)
		}
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("shutdown waited for the long polls")
	}
}
