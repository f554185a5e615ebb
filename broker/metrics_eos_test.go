package broker

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/protocol"
)

// scrape reads the counters of /metrics whose name starts with prefix,
// by their full series ("name{labels}").
func scrape(t *testing.T, a *apiClient, prefix string) map[string]float64 {
	t.Helper()
	r := a.do("GET", "/metrics", nil, "")
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestExactlyOnceMetrics drops one duplicate of each kind and takes
// transactions through every outcome, then reads /metrics.
func TestExactlyOnceMetrics(t *testing.T) {
	b, a := testHTTPBroker(t, func(c *Config) {
		c.TransactionTimeout = Duration(time.Millisecond)
		c.TransactionCheckInterval = Duration(20 * time.Millisecond)
		c.TransactionCheckMax = 1
	})
	c := newClient(t, b)

	// Idempotent: a retry of the same sequence.
	ep := c.initProducer("m1").Epoch
	mustOK(t, c.send("t", 0, "a", idemProps("m1", ep, 0)))
	mustOK(t, c.send("t", 0, "a", idemProps("m1", ep, 0)))
	// Dedup window: the same Idempotency-Key twice.
	a.ok("POST", "/v1/topics", map[string]any{"name": "d", "read_queues": 1, "write_queues": 1, "dedup_window": "10m"}, 201, nil)
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("POST", a.base+"/v1/topics/d/messages", strings.NewReader(`{"messages":[{"body":"x"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k1")
		resp, err := a.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// Transactions: one committed, one rolled back (HTTP), one checked
	// and then given up (a remoting half nobody answers for).
	a.ok("POST", "/v1/topics", map[string]any{"name": "x", "read_queues": 1, "write_queues": 1}, 201, nil)
	for _, end := range []string{"commit", "abort"} {
		var tx HTTPTxInfo
		a.ok("POST", "/v1/topics/x/transactions", nil, 201, &tx)
		a.ok("POST", "/v1/topics/x/transactions/"+tx.ID+"/messages", map[string]any{"messages": []map[string]any{{"body": end}}}, 200, nil)
		a.ok("POST", "/v1/topics/x/transactions/"+tx.ID+"/"+end, nil, 200, nil)
	}
	mustOK(t, c.send("x", 0, "orphan", map[string]string{protocol.PropTransaction: "true", protocol.PropProducerGroup: "nobody"}))

	want := map[string]float64{
		`ferry_duplicates_dropped_total{kind="idempotent"}`:   1,
		`ferry_duplicates_dropped_total{kind="dedup_window"}`: 1,
		`ferry_transactions_total{outcome="commit"}`:          1,
		`ferry_transactions_total{outcome="rollback"}`:        1,
		`ferry_transactions_total{outcome="checked"}`:         1,
		`ferry_transactions_total{outcome="parked"}`:          1,
	}
	var got map[string]float64
	if err := poll.Until(context.Background(), 10*time.Second, 10*time.Millisecond, func() bool {
		got = scrape(t, a, "ferry_")
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}
