package broker

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

func visibleHTTP(t *testing.T, a *apiClient, topic string) int {
	t.Helper()
	var got queueRead
	a.ok("GET", "/v1/topics/"+topic+"/queues/0/messages?offset=0&max=32", nil, 200, &got)
	return len(got.Messages)
}

func TestHTTPTransactions(t *testing.T) {
	b, a := testHTTPBroker(t, func(c *Config) { c.TransactionCheckInterval = Duration(20 * time.Millisecond) })
	a.ok("POST", "/v1/topics", map[string]any{"name": "t", "read_queues": 1, "write_queues": 1}, 201, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "u", "read_queues": 1, "write_queues": 1}, 201, nil)

	// Commit: nothing is visible before, every message once after.
	var tx HTTPTxInfo
	a.ok("POST", "/v1/topics/t/transactions", nil, 201, &tx)
	if len(tx.ID) != 32 || tx.State != "open" || tx.Topic != "t" || tx.ExpiresMs < time.Now().Add(50*time.Second).UnixMilli() {
		t.Fatalf("begin: %+v", tx)
	}
	base := "/v1/topics/t/transactions/" + tx.ID
	var res produceResults
	a.ok("POST", base+"/messages", map[string]any{"messages": []map[string]any{{"body": "one"}, {"body": "two", "keys": []string{"k"}}}}, 200, &res)
	if len(res.Results) != 2 || res.Results[0].Error != nil || res.Results[1].Error != nil {
		t.Fatalf("send: %+v", res)
	}
	a.ok("POST", base+"/messages", map[string]any{"messages": []map[string]any{{"body": "three"}}}, 200, nil)
	if n := visibleHTTP(t, a, "t"); n != 0 {
		t.Fatalf("%d messages visible before the commit", n)
	}
	if open, _ := b.Transactions(); len(open) != 3 || open[0].ProducerGroup != httpTxGroup || open[0].Topic != "t" {
		t.Fatalf("open: %+v", open)
	}
	var end HTTPTxInfo
	a.ok("POST", base+"/commit", nil, 200, &end)
	if end.State != "committed" || end.Messages != 3 {
		t.Fatalf("commit: %+v", end)
	}
	got := a.readUntil("/v1/topics/t/queues/0/messages?offset=0&max=32", 3)
	if len(got.Messages) != 3 || got.Messages[0].Body != "one" || got.Messages[1].Body != "two" || got.Messages[2].Body != "three" {
		t.Fatalf("read %+v", got.Messages)
	}
	a.ok("POST", base+"/commit", nil, 200, &end) // the same answer again
	if end.State != "committed" {
		t.Fatalf("second commit: %+v", end)
	}
	a.fails("POST", base+"/abort", nil, 409, protocol.ProblemTxEnded)
	a.fails("POST", base+"/messages", map[string]any{"messages": []map[string]any{{"body": "late"}}}, 409, protocol.ProblemTxEnded)

	// Abort: nothing is ever visible.
	a.ok("POST", "/v1/topics/u/transactions", map[string]any{"timeout": "10m"}, 201, &tx)
	base = "/v1/topics/u/transactions/" + tx.ID
	a.ok("POST", base+"/messages", map[string]any{"messages": []map[string]any{{"body": "gone"}}}, 200, nil)
	a.fails("POST", "/v1/topics/t/transactions/"+tx.ID+"/commit", nil, 404, protocol.ProblemNotFound) // another topic's
	a.ok("POST", base+"/abort", nil, 200, &end)
	if end.State != "aborted" || end.Messages != 1 {
		t.Fatalf("abort: %+v", end)
	}
	a.fails("POST", base+"/commit", nil, 409, protocol.ProblemTxEnded)

	// Expiry: the broker rolls the transaction back by itself.
	a.ok("POST", "/v1/topics/u/transactions", map[string]any{"timeout": "1s"}, 201, &tx)
	base = "/v1/topics/u/transactions/" + tx.ID
	a.ok("POST", base+"/messages", map[string]any{"messages": []map[string]any{{"body": "expires"}}}, 200, nil)
	waitFor(t, 10*time.Second, "the expired transaction rolled back", func() bool {
		open, err := b.Transactions()
		return err == nil && len(open) == 0
	})
	a.fails("POST", base+"/commit", nil, 409, protocol.ProblemTxEnded)
	a.fails("POST", base+"/messages", map[string]any{"messages": []map[string]any{{"body": "late"}}}, 409, protocol.ProblemTxEnded)
	if n := visibleHTTP(t, a, "u"); n != 0 {
		t.Fatalf("%d messages of aborted or expired transactions visible", n)
	}

	// Bad input.
	a.fails("POST", "/v1/topics/t/transactions/0123/commit", nil, 404, protocol.ProblemNotFound)
	a.fails("POST", "/v1/topics/t/transactions", map[string]any{"timeout": "2h"}, 400, protocol.ProblemInvalidRequest)
	a.fails("POST", "/v1/topics/t/transactions", map[string]any{"timeout": "soon"}, 400, protocol.ProblemInvalidRequest)
}

// A transaction holding messages survives a restart and can be committed
// after it.
func TestHTTPTransactionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	mut := func(c *Config) { c.HTTPHost, c.HTTPPort = "127.0.0.1", 0 }
	b := testBroker(t, dir, mut)
	hc := &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	a := &apiClient{t: t, base: "http://" + b.HTTPAddr(), c: hc}
	a.ok("POST", "/v1/topics", map[string]any{"name": "t", "read_queues": 1, "write_queues": 1}, 201, nil)
	var tx HTTPTxInfo
	a.ok("POST", "/v1/topics/t/transactions", nil, 201, &tx)
	a.ok("POST", "/v1/topics/t/transactions/"+tx.ID+"/messages", map[string]any{"messages": []map[string]any{{"body": "kept"}}}, 200, nil)
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	b = testBroker(t, dir, mut)
	a.base = "http://" + b.HTTPAddr()
	var end HTTPTxInfo
	a.ok("POST", "/v1/topics/t/transactions/"+tx.ID+"/commit", nil, 200, &end)
	if end.State != "committed" || end.Messages != 1 {
		t.Fatalf("commit after restart: %+v", end)
	}
	got := a.readUntil("/v1/topics/t/queues/0/messages?offset=0&max=32", 1)
	if len(got.Messages) != 1 || got.Messages[0].Body != "kept" {
		t.Fatalf("read %+v", got.Messages)
	}
}
