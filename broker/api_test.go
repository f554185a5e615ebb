package broker

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// testHTTPBroker starts a broker with the HTTP API on a free port.
func testHTTPBroker(t *testing.T, mut func(*Config)) (*Broker, *apiClient) {
	t.Helper()
	b := testBroker(t, t.TempDir(), func(c *Config) {
		c.HTTPHost, c.HTTPPort = "127.0.0.1", 0
		if mut != nil {
			mut(c)
		}
	})
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(hc.CloseIdleConnections)
	return b, &apiClient{t: t, base: "http://" + b.HTTPAddr(), c: hc}
}

// problem is an error answer of the API.
type problem = protocol.Problem

type apiClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

type apiResp struct {
	status int
	header http.Header
	body   []byte
}

// do sends body (nil, []byte as is, or a value encoded as JSON).
func (a *apiClient) do(method, path string, body any, contentType string) apiResp {
	a.t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(j)
		if contentType == "" {
			contentType = "application/json"
		}
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return apiResp{resp.StatusCode, resp.Header, b}
}

// ok sends a request, wants status and decodes the answer into out.
func (a *apiClient) ok(method, path string, body any, status int, out any) {
	a.t.Helper()
	r := a.do(method, path, body, "")
	if r.status != status {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
}

// fails sends a request and wants a problem with status and code.
func (a *apiClient) fails(method, path string, body any, status, code int) problem {
	a.t.Helper()
	return checkProblem(a.t, method+" "+path, a.do(method, path, body, ""), status, code)
}

func checkProblem(t *testing.T, what string, r apiResp, status, code int) problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: content type %q: %s", what, ct, r.body)
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("%s: decode problem %s: %v", what, r.body, err)
	}
	if p.Code != code || p.Status != status || p.Title == "" || p.Detail == "" || !strings.HasPrefix(p.Type, "urn:ferry:problem:") {
		t.Fatalf("%s: problem %+v, want code %d", what, p, code)
	}
	return p
}

type produceResults struct {
	Results []struct {
		MsgID       string   `json:"msg_id"`
		OffsetMsgID string   `json:"offset_msg_id"`
		QueueID     *int32   `json:"queue_id"`
		QueueOffset *int64   `json:"queue_offset"`
		Scheduled   bool     `json:"scheduled"`
		Error       *problem `json:"error"`
	} `json:"results"`
}

func (a *apiClient) produce(topic string, msgs ...map[string]any) produceResults {
	a.t.Helper()
	var out produceResults
	a.ok("POST", "/v1/topics/"+topic+"/messages", map[string]any{"messages": msgs}, 200, &out)
	if len(out.Results) != len(msgs) {
		a.t.Fatalf("%d results for %d messages", len(out.Results), len(msgs))
	}
	return out
}

type queueRead struct {
	Messages   []apiMessage `json:"messages"`
	NextOffset int64        `json:"next_offset"`
	MinOffset  int64        `json:"min_offset"`
	MaxOffset  int64        `json:"max_offset"`
}

// readUntil polls a queue read until it returns n messages.
func (a *apiClient) readUntil(path string, n int) queueRead {
	a.t.Helper()
	var got queueRead
	waitFor(a.t, 10*time.Second, "messages on "+path, func() bool {
		got = queueRead{}
		a.ok("GET", path, nil, 200, &got)
		return len(got.Messages) >= n
	})
	return got
}

func TestAPIBroker(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	var ri RuntimeInfo
	a.ok("GET", "/v1/broker", nil, 200, &ri)
	if ri.BrokerName == "" || !ri.Writable {
		t.Fatalf("runtime %+v", ri)
	}
	var cfg map[string]string
	a.ok("GET", "/v1/broker/config", nil, 200, &cfg)
	if cfg["pull_max_messages"] != "64" {
		t.Fatalf("config %v", cfg)
	}
	a.ok("PUT", "/v1/broker/config", map[string]any{"pull_max_messages": 32, "auto_create_topic": "false"}, 200, &cfg)
	if cfg["pull_max_messages"] != "32" || cfg["auto_create_topic"] != "false" {
		t.Fatalf("config after set %v", cfg)
	}
	a.fails("PUT", "/v1/broker/config", map[string]string{"data_dir": "/x"}, 400, 1002)
	a.fails("PUT", "/v1/broker/config", map[string]string{"pull_max_messages": "lots"}, 400, 1002)
	a.fails("PUT", "/v1/broker/config", map[string]string{}, 400, 1002)
	a.fails("PUT", "/v1/broker/config", []byte("{"), 400, 1002)
	a.fails("GET", "/v1/nothing", nil, 404, 1000)
	a.fails("GET", "/v2/broker", nil, 404, 1000)
	r := a.do("DELETE", "/v1/broker", nil, "")
	checkProblem(t, "DELETE /v1/broker", r, 405, 1001)
	if r.header.Get("Allow") != "GET" {
		t.Fatalf("Allow %q", r.header.Get("Allow"))
	}

	// Drain refuses writes with 503 + Retry-After; undrain accepts them.
	a.ok("POST", "/v1/topics", map[string]any{"name": "d", "read_queues": 1, "write_queues": 1}, 201, nil)
	a.ok("POST", "/v1/broker/drain", nil, 200, nil)
	a.ok("GET", "/v1/broker", nil, 200, &ri)
	if ri.Writable {
		t.Fatal("drained broker says writable")
	}
	r = a.do("POST", "/v1/topics/d/messages", map[string]any{"messages": []any{map[string]any{"body": "x"}}}, "")
	checkProblem(t, "produce while drained", r, 503, 14)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After while drained")
	}
	a.fails("POST", "/v1/groups/g/nack", map[string]any{"receipt_handles": []string{"x"}}, 503, 14)
	a.fails("POST", "/v1/groups/g/dlq/resend", map[string]any{"all": true}, 503, 14)
	a.ok("POST", "/v1/broker/undrain", nil, 200, nil)
	a.produce("d", map[string]any{"body": "x"})
}

func TestAPITopics(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	var created apiTopic
	a.ok("POST", "/v1/topics", map[string]any{"name": "orders", "read_queues": 2, "write_queues": 2, "perm": "rw", "order": true}, 201, &created)
	if created != (apiTopic{Name: "orders", ReadQueues: 2, WriteQueues: 2, Perm: "rw", Order: true}) {
		t.Fatalf("created %+v", created)
	}
	a.ok("POST", "/v1/topics", map[string]any{"name": "defaults"}, 201, &created)
	if created.ReadQueues != 8 || created.Perm != "rw" || created.Order {
		t.Fatalf("defaults %+v", created)
	}
	a.fails("POST", "/v1/topics", map[string]any{"name": "orders"}, 409, 18)
	a.fails("POST", "/v1/topics", map[string]any{"name": "bad name"}, 400, 1009)
	a.fails("POST", "/v1/topics", map[string]any{"name": ""}, 400, 1009)
	a.fails("POST", "/v1/topics", map[string]any{"name": "p", "perm": "x"}, 400, 1002)
	a.fails("POST", "/v1/topics", map[string]any{"name": "p", "read_queues": 0}, 400, 1002)
	a.fails("POST", "/v1/topics", map[string]any{"name": "p", "colour": "red"}, 400, 1002)
	a.fails("POST", "/v1/topics", nil, 400, 1002)

	var list []apiTopic
	a.ok("GET", "/v1/topics", nil, 200, &list)
	names := map[string]apiTopic{}
	for _, tp := range list {
		names[tp.Name] = tp
	}
	if names["orders"].ReadQueues != 2 || names["defaults"].Name == "" {
		t.Fatalf("list %+v", list)
	}

	a.produce("orders", map[string]any{"body": "a", "queue_id": 1})
	var d protocol.HTTPTopicDetail
	waitFor(t, 5*time.Second, "dispatch", func() bool {
		a.ok("GET", "/v1/topics/orders", nil, 200, &d)
		return len(d.Queues) == 2 && d.Queues[1].MaxOffset == 1
	})
	if d.Name != "orders" || d.Queues[0].MaxOffset != 0 || d.Queues[1].LastStoreMs == 0 {
		t.Fatalf("detail %+v", d)
	}
	a.fails("GET", "/v1/topics/nope", nil, 404, 17)

	var upd apiTopic
	a.ok("PUT", "/v1/topics/orders", map[string]any{"write_queues": 4, "read_queues": 4, "perm": "r"}, 200, &upd)
	if upd.WriteQueues != 4 || upd.Perm != "r" || !upd.Order {
		t.Fatalf("updated %+v", upd)
	}
	// Not writable now: produce is refused 403, and reads still work.
	a.fails("POST", "/v1/topics/orders/messages", map[string]any{"messages": []any{map[string]any{"body": "x"}}}, 403, 16)
	a.fails("PUT", "/v1/topics/nope", map[string]any{"perm": "r"}, 404, 17)
	a.fails("PUT", "/v1/topics/orders", map[string]any{"name": "other"}, 400, 1002)
	a.fails("PUT", "/v1/topics/TBW102", map[string]any{"perm": "r"}, 403, 16)

	r := a.do("DELETE", "/v1/topics/orders", nil, "")
	if r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	a.fails("DELETE", "/v1/topics/orders", nil, 404, 17)
	a.fails("DELETE", "/v1/topics/SCHEDULE_TOPIC_XXXX", nil, 403, 16)
}

func TestAPIProduceAndRead(t *testing.T) {
	b, a := testHTTPBroker(t, func(c *Config) { c.MaxMessageSize = 64 << 10 })
	a.ok("POST", "/v1/topics", map[string]any{"name": "t", "read_queues": 2, "write_queues": 2}, 201, nil)
	bin := []byte{0xff, 0x00, 0xfe}
	res := a.produce("t",
		map[string]any{"body": "hello", "tags": "TagA", "keys": []string{"k1", "k2"}, "properties": map[string]string{"color": "red"}, "queue_id": 0},
		map[string]any{"body": base64.StdEncoding.EncodeToString(bin), "body_encoding": "base64", "queue_id": 0, "properties": map[string]string{"UNIQ_KEY": "MYID0001"}},
		map[string]any{"body": "!!!", "body_encoding": "base64"},
		map[string]any{"body": strings.Repeat("x", 64<<10+1)},
		map[string]any{"body": "q", "queue_id": 7},
		map[string]any{"body": "k", "keys": []string{"has space"}},
		map[string]any{"body": "d", "delay_level": 2, "deliver_at_ms": 5},
		map[string]any{"body": "p", "properties": map[string]string{"a\x01": "b"}},
		map[string]any{"body": "later", "delay_level": 1, "queue_id": 1},
	)
	r := res.Results
	if r[0].Error != nil || r[0].QueueOffset == nil || *r[0].QueueOffset != 0 || len(r[0].MsgID) != 32 || len(r[0].OffsetMsgID) != 32 {
		t.Fatalf("result 0 %+v", r[0])
	}
	if r[1].Error != nil || r[1].MsgID != "MYID0001" || *r[1].QueueOffset != 1 {
		t.Fatalf("result 1 %+v", r[1])
	}
	for i, want := range []struct{ status, code int }{2: {400, 13}, 3: {413, 13}, 4: {400, 1008}, 5: {400, 13}, 6: {400, 13}, 7: {400, 13}} {
		if i < 2 {
			continue
		}
		if r[i].Error == nil || r[i].Error.Status != want.status || r[i].Error.Code != want.code || r[i].QueueOffset != nil {
			t.Fatalf("result %d: %+v (error %+v), want %d/%d", i, r[i], r[i].Error, want.status, want.code)
		}
	}
	if r[8].Error != nil || !r[8].Scheduled || *r[8].QueueID != 1 {
		t.Fatalf("delayed result %+v", r[8])
	}

	got := a.readUntil("/v1/topics/t/queues/0/messages?offset=0&max=10", 2)
	m := got.Messages[0]
	if m.Topic != "t" || m.QueueID != 0 || m.QueueOffset != 0 || m.Body != "hello" || m.BodyEncoding != "utf8" ||
		m.Tags != "TagA" || strings.Join(m.Keys, ",") != "k1,k2" || m.Properties["color"] != "red" || len(m.Properties) != 1 ||
		m.MsgID != r[0].MsgID || m.OffsetMsgID != r[0].OffsetMsgID || m.BornAtMs == 0 || m.StoredAtMs == 0 || m.CommitlogOffset < 0 {
		t.Fatalf("message 0 %+v", m)
	}
	if _, ok := m.Properties["__CRC32#"]; ok {
		t.Fatal("checksum property shown")
	}
	m1 := got.Messages[1]
	if m1.BodyEncoding != "base64" || m1.Body != base64.StdEncoding.EncodeToString(bin) || m1.MsgID != "MYID0001" {
		t.Fatalf("message 1 %+v", m1)
	}
	if got.NextOffset != 2 || got.MinOffset != 0 || got.MaxOffset != 2 {
		t.Fatalf("offsets %+v", got)
	}
	// Tag filter, paging and the end of the queue.
	a.ok("GET", "/v1/topics/t/queues/0/messages?offset=0&tag=TagA", nil, 200, &got)
	if len(got.Messages) != 1 || got.NextOffset != 2 {
		t.Fatalf("tag filter: %d messages next %d", len(got.Messages), got.NextOffset)
	}
	a.ok("GET", "/v1/topics/t/queues/0/messages?offset=0&max=1", nil, 200, &got)
	if len(got.Messages) != 1 || got.NextOffset != 1 {
		t.Fatalf("max=1: %d messages next %d", len(got.Messages), got.NextOffset)
	}
	a.ok("GET", "/v1/topics/t/queues/0/messages?offset=99", nil, 200, &got)
	if len(got.Messages) != 0 || got.NextOffset != 2 {
		t.Fatalf("past the end: %+v", got)
	}
	a.fails("GET", "/v1/topics/t/queues/9/messages", nil, 400, 1008)
	a.fails("GET", "/v1/topics/t/queues/x/messages", nil, 400, 1008)
	a.fails("GET", "/v1/topics/t/queues/0/messages?offset=-1", nil, 400, 1002)
	a.fails("GET", "/v1/topics/t/queues/0/messages?max=0", nil, 400, 1002)
	a.fails("GET", "/v1/topics/t/queues/0/messages?wait_ms=soon", nil, 400, 1002)
	a.fails("GET", "/v1/topics/nope/queues/0/messages", nil, 404, 17)

	// The delayed message arrives on queue 1 after its level (1: 20ms).
	got = a.readUntil("/v1/topics/t/queues/1/messages", 1)
	if got.Messages[0].Body != "later" || got.Messages[0].MsgID != r[8].MsgID {
		t.Fatalf("delayed message %+v", got.Messages[0])
	}

	// Lookups by key and by id.
	var byKey struct{ Messages []apiMessage }
	waitFor(t, 5*time.Second, "key index", func() bool {
		a.ok("GET", "/v1/topics/t/messages?key=k2", nil, 200, &byKey)
		return len(byKey.Messages) == 1
	})
	if byKey.Messages[0].Body != "hello" {
		t.Fatalf("by key %+v", byKey.Messages[0])
	}
	a.ok("GET", "/v1/topics/t/messages?key=k2&begin_ms=1&end_ms=2", nil, 200, &byKey)
	if len(byKey.Messages) != 0 {
		t.Fatalf("time range ignored: %d", len(byKey.Messages))
	}
	a.fails("GET", "/v1/topics/t/messages", nil, 400, 1002)
	a.fails("GET", "/v1/topics/t/messages?key=k&max=0", nil, 400, 1002)
	a.fails("GET", "/v1/topics/t/messages?key=k&begin_ms=x", nil, 400, 1002)
	a.fails("GET", "/v1/topics/nope/messages?key=k", nil, 404, 17)
	var one apiMessage
	a.ok("GET", "/v1/messages/"+r[0].MsgID, nil, 200, &one)
	if one.Body != "hello" {
		t.Fatalf("by uniq id %+v", one)
	}
	a.ok("GET", "/v1/messages/"+r[1].OffsetMsgID, nil, 200, &one)
	if one.MsgID != "MYID0001" {
		t.Fatalf("by offset id %+v", one)
	}
	a.fails("GET", "/v1/messages/NOSUCHID", nil, 404, 22)

	// A raw body with its attributes in the query.
	rr := a.do("POST", "/v1/topics/t/messages?tags=Raw&keys=r1,r2&queue_id=1", []byte{0xff, 1, 2}, "application/octet-stream")
	var rawRes produceResults
	if rr.status != 200 || json.Unmarshal(rr.body, &rawRes) != nil || len(rawRes.Results) != 1 || rawRes.Results[0].Error != nil {
		t.Fatalf("raw produce %d %s", rr.status, rr.body)
	}
	got = a.readUntil("/v1/topics/t/queues/1/messages?offset=1", 1)
	if g := got.Messages[0]; g.Body != "/wEC" || g.BodyEncoding != "base64" || g.Tags != "Raw" || strings.Join(g.Keys, ",") != "r1,r2" {
		t.Fatalf("raw message %+v", g)
	}
	checkProblem(t, "raw bad queue", a.do("POST", "/v1/topics/t/messages?queue_id=x", []byte{1}, "application/octet-stream"), 400, 1002)
	checkProblem(t, "text/plain", a.do("POST", "/v1/topics/t/messages", []byte("x"), "text/plain"), 415, 1004)
	checkProblem(t, "bad JSON", a.do("POST", "/v1/topics/t/messages", []byte("{"), "application/json"), 400, 1002)
	a.fails("POST", "/v1/topics/t/messages", map[string]any{"messages": []any{}}, 400, 1002)
	many := make([]any, maxProduceBatch+1)
	for i := range many {
		many[i] = map[string]any{"body": "x"}
	}
	a.fails("POST", "/v1/topics/t/messages", map[string]any{"messages": many}, 400, 1002)
	a.fails("POST", "/v1/topics/bad%20name/messages", map[string]any{"messages": []any{map[string]any{"body": "x"}}}, 400, 1009)
	// A body over the server's request limit: 413 before any handler.
	// The headers announce it; no body is sent, so the early answer cannot
	// race with a client still writing.
	conn, err := net.Dial("tcp", b.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/topics/t/messages HTTP/1.1\r\nHost: ferry\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", b.cfg.MaxMessageSize*4+1<<20+1)
	hr, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	bigBody, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	checkProblem(t, "oversized request", apiResp{hr.StatusCode, hr.Header, bigBody}, 413, 1003)

	// Auto-creation off: an unknown topic is 404.
	a.ok("PUT", "/v1/broker/config", map[string]any{"auto_create_topic": false}, 200, nil)
	a.fails("POST", "/v1/topics/fresh/messages", map[string]any{"messages": []any{map[string]any{"body": "x"}}}, 404, 17)
	a.ok("PUT", "/v1/broker/config", map[string]any{"auto_create_topic": true}, 200, nil)
	a.produce("fresh", map[string]any{"body": "x"})
}

func TestAPIReadQueueLongPoll(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "lp", "read_queues": 1, "write_queues": 1}, 201, nil)
	done := make(chan queueRead, 1)
	go func() {
		var got queueRead
		r := a.do("GET", "/v1/topics/lp/queues/0/messages?offset=0&wait_ms=20000", nil, "")
		_ = json.Unmarshal(r.body, &got)
		done <- got
	}()
	start := time.Now()
	// Produce until the poll returns (the poll may start after the first).
	for i := 0; ; i++ {
		a.produce("lp", map[string]any{"body": fmt.Sprint("m", i)})
		select {
		case got := <-done:
			if len(got.Messages) == 0 || got.Messages[0].Body != "m0" {
				t.Fatalf("long poll got %+v", got)
			}
			if time.Since(start) > 15*time.Second {
				t.Fatal("long poll did not wake on the append")
			}
			// Caught up with wait_ms: answers empty after the wait.
			var empty queueRead
			a.ok("GET", fmt.Sprintf("/v1/topics/lp/queues/0/messages?offset=%d&wait_ms=50", i+1), nil, 200, &empty)
			if len(empty.Messages) != 0 || empty.NextOffset != int64(i+1) {
				t.Fatalf("caught up: %+v", empty)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
