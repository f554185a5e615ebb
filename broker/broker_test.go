package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/namesrv"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// testBroker starts a broker on 127.0.0.1 with a free port in dir.
func testBroker(t *testing.T, dir string, mut func(*Config)) *Broker {
	t.Helper()
	return testBrokerWith(t, dir, mut)
}

// testBrokerWith is testBroker with construction options.
func testBrokerWith(t *testing.T, dir string, mut func(*Config), opts ...Option) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
	cfg.SegmentSize = 16 << 20
	cfg.MaxMessageSize = 1 << 20
	if mut != nil {
		mut(&cfg)
	}
	if cfg.HTTPPort >= 0 {
		if testHTTP == nil {
			t.Fatal("no HTTP server to mount")
		}
		opts = append([]Option{WithHTTP(testHTTP)}, opts...)
	}
	b, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b
}

type tclient struct {
	t    *testing.T
	c    *remoting.Client
	addr string
}

func newClient(t *testing.T, b *Broker) *tclient {
	c := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { c.Close() })
	return &tclient{t: t, c: c, addr: b.Addr()}
}

func (c *tclient) invoke(req *remoting.Command) *remoting.Command {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.c.Invoke(ctx, c.addr, req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *tclient) send(topic string, queue int, body string, props map[string]string) *remoting.Command {
	c.t.Helper()
	return c.invoke(remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
		"producerGroup": "pg", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
		"queueId": strconv.Itoa(queue), "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag": "0", "properties": string(protocol.EncodeProperties(props)), "reconsumeTimes": "0",
		"unitMode": "false", "batch": "false",
	}, []byte(body)))
}

func mustOK(t *testing.T, resp *remoting.Command) {
	t.Helper()
	if resp.Code != protocol.RespSuccess {
		t.Fatalf("code %d (%s): %s", resp.Code, protocol.ResponseName(resp.Code), resp.Remark)
	}
}

// pull pulls with the subscription in the request (no heartbeat needed).
func (c *tclient) pull(group, topic string, queue int, offset int64, suspend time.Duration) (*remoting.Command, []protocol.Record) {
	c.t.Helper()
	flag := pullSubscription
	if suspend > 0 {
		flag |= pullSuspend
	}
	resp := c.invoke(remoting.NewRequest(protocol.ReqPullMessage, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(queue), "queueOffset": strconv.FormatInt(offset, 10),
		"maxMsgNums": "32", "sysFlag": strconv.Itoa(flag), "commitOffset": "0",
		"suspendTimeoutMillis": strconv.FormatInt(suspend.Milliseconds(), 10), "subscription": "*", "subVersion": "0", "expressionType": "TAG",
	}, nil))
	var recs []protocol.Record
	for b := resp.Body; len(b) > 0; {
		r, err := protocol.Decode(b)
		if err != nil {
			c.t.Fatal(err)
		}
		recs = append(recs, r)
		b = b[r.Size:]
	}
	return resp, recs
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(context.Background(), timeout, 5*time.Millisecond, cond); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestSendPullRoundTrip(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	resp := c.send("orders", 1, "hello", map[string]string{"TAGS": "TagA", "KEYS": "k1", "UNIQ_KEY": "ID1", "color": "red"})
	mustOK(t, resp)
	if resp.StringOr("queueId", "") != "1" || resp.StringOr("queueOffset", "") != "0" || len(resp.StringOr("msgId", "")) != 32 {
		t.Fatalf("send response %+v", resp.ExtFields)
	}
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("orders", 1) == 1 })
	pr, recs := c.pull("g1", "orders", 1, 0, 0)
	mustOK(t, pr)
	if len(recs) != 1 || string(recs[0].Body) != "hello" || pr.StringOr("nextBeginOffset", "") != "1" {
		t.Fatalf("pulled %d records, next %s", len(recs), pr.StringOr("nextBeginOffset", ""))
	}
	if v, _ := recs[0].Property("color"); v != "red" {
		t.Fatalf("property lost: %q", recs[0].Properties)
	}
	// Caught up: PULL_NOT_FOUND at once without the suspend flag.
	pr, _ = c.pull("g1", "orders", 1, 1, 0)
	if pr.Code != protocol.RespPullNotFound || pr.StringOr("nextBeginOffset", "") != "1" {
		t.Fatalf("caught-up pull: %d next %s", pr.Code, pr.StringOr("nextBeginOffset", ""))
	}
	// Beyond the end: offset moved back to max.
	pr, _ = c.pull("g1", "orders", 1, 9, 0)
	if pr.Code != protocol.RespPullOffsetMoved || pr.StringOr("nextBeginOffset", "") != "1" {
		t.Fatalf("overflow pull: %d next %s", pr.Code, pr.StringOr("nextBeginOffset", ""))
	}
}

func TestSendErrors(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.AutoCreateTopic = false })
	c := newClient(t, b)
	if r := c.send("nope", 0, "x", nil); r.Code != protocol.RespTopicNotExist {
		t.Fatalf("unknown topic: %d %s", r.Code, r.Remark)
	}
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "t", ReadQueueNums: 2, WriteQueueNums: 2}); err != nil {
		t.Fatal(err)
	}
	if r := c.send("t", 5, "x", nil); r.Code != protocol.RespSystemError || !strings.Contains(r.Remark, "queueId") {
		t.Fatalf("bad queue: %d %s", r.Code, r.Remark)
	}
	if r := c.send("bad topic!", 0, "x", nil); r.Code != protocol.RespMessageIllegal {
		t.Fatalf("bad name: %d %s", r.Code, r.Remark)
	}
	if r := c.send("t", 0, strings.Repeat("x", 1<<20+1), nil); r.Code != protocol.RespMessageIllegal {
		t.Fatalf("oversized: %d %s", r.Code, r.Remark)
	}
	if r := c.send("t", 0, "x", map[string]string{"DELAY": "abc"}); r.Code != protocol.RespMessageIllegal {
		t.Fatalf("bad delay: %d %s", r.Code, r.Remark)
	}
	if r := c.send("t", 0, "x", map[string]string{"TIMER_DELAY_SEC": strconv.Itoa(41 * 24 * 3600)}); r.Code != protocol.RespMessageIllegal {
		t.Fatalf("timer too far: %d %s", r.Code, r.Remark)
	}
	// The broker still serves after all of that.
	mustOK(t, c.send("t", 0, "fine", nil))
}

func TestLongPollWakesOnSend(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	mustOK(t, c.send("lp", 0, "first", nil))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("lp", 0) == 1 })
	type result struct {
		resp *remoting.Command
		recs []protocol.Record
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		r, recs := c.pull("g", "lp", 0, 1, 15*time.Second)
		done <- result{r, recs, time.Since(start)}
	}()
	// The pull is parked: nothing comes back while the queue is unchanged.
	waitFor(t, 5*time.Second, "pull held", func() bool { return b.holds.heldCount() == 1 })
	select {
	case r := <-done:
		t.Fatalf("pull answered before any message: code %d", r.resp.Code)
	default:
	}
	mustOK(t, c.send("lp", 0, "second", nil))
	r := <-done
	mustOK(t, r.resp)
	if len(r.recs) != 1 || string(r.recs[0].Body) != "second" || r.took > 10*time.Second {
		t.Fatalf("woken pull: %d records after %v", len(r.recs), r.took)
	}
}

func TestDelayLevelAndTimer(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.DelayLevels = "100ms 300ms 1s" })
	c := newClient(t, b)
	sent := time.Now()
	mustOK(t, c.send("d", 0, "lvl2", map[string]string{"DELAY": "2", "UNIQ_KEY": "U2"}))
	mustOK(t, c.send("d", 0, "lvl9", map[string]string{"DELAY": "9"})) // clamped to level 3 (1 s)
	mustOK(t, c.send("d", 0, "timer", map[string]string{"TIMER_DELAY_MS": "1200"}))
	got := map[string]time.Duration{}
	var off int64
	waitFor(t, 10*time.Second, "three delayed messages", func() bool {
		r, recs := c.pull("g", "d", 0, off, 0)
		for _, rec := range recs {
			got[string(rec.Body)] = time.Since(sent)
			if string(rec.Body) == "lvl2" {
				if v, _ := rec.Property(protocol.PropUniqKey); v != "U2" {
					t.Errorf("msgId not kept: %q", rec.Properties)
				}
				if _, ok := rec.Property(protocol.PropDelayLevel); ok {
					t.Errorf("DELAY still set on the delivered message")
				}
			}
		}
		if n, err := strconv.ParseInt(r.StringOr("nextBeginOffset", "0"), 10, 64); err == nil {
			off = n
		}
		return len(got) == 3
	})
	for body, min := range map[string]time.Duration{"lvl2": 300 * time.Millisecond, "lvl9": time.Second, "timer": 1200 * time.Millisecond} {
		if got[body] < min {
			t.Errorf("%s arrived after %v, before its due time %v", body, got[body], min)
		}
	}
}

func TestDelayedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	levels := func(c *Config) { c.DelayLevels = "100ms 2s" }
	b := testBroker(t, dir, levels)
	c := newClient(t, b)
	for i := 0; i < 20; i++ {
		mustOK(t, c.send("r", 0, fmt.Sprintf("m%d", i), map[string]string{"DELAY": "2"}))
	}
	mustOK(t, c.send("r", 0, "timer", map[string]string{"TIMER_DELAY_SEC": "2"}))
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, levels)
	c = newClient(t, b)
	seen := map[string]int{}
	var off int64
	waitFor(t, 15*time.Second, "every delayed message after a restart", func() bool {
		r, recs := c.pull("g", "r", 0, off, 0)
		for _, rec := range recs {
			seen[string(rec.Body)]++
		}
		if n, err := strconv.ParseInt(r.StringOr("nextBeginOffset", "0"), 10, 64); err == nil {
			off = n
		}
		return len(seen) == 21
	})
}

// sendBack sends a consumed record back as a failed consumption.
func (c *tclient) sendBack(group string, rec protocol.Record) *remoting.Command {
	return c.invoke(remoting.NewRequest(protocol.ReqConsumerSendMsgBack, map[string]string{
		"group": group, "offset": strconv.FormatInt(rec.PhysicalOffset, 10), "delayLevel": "0",
		"originMsgId": "X", "originTopic": "orders", "unitMode": "false", "maxReconsumeTimes": "16",
	}, nil))
}

func TestRetrySixteenTimesThenDLQ(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) {
		c.DelayLevels = strings.TrimSpace(strings.Repeat("20ms ", 18))
	})
	c := newClient(t, b)
	mustOK(t, c.send("orders", 0, "poison", map[string]string{"UNIQ_KEY": "P1", "TAGS": "T"}))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("orders", 0) == 1 })
	_, recs := c.pull("cg", "orders", 0, 0, 0)
	if len(recs) != 1 {
		t.Fatal("original not delivered")
	}
	deliveries := 1
	retry := protocol.RetryTopic("cg")
	var off int64
	rec := recs[0]
	for {
		mustOK(t, c.sendBack("cg", rec))
		if rec.ReconsumeTimes >= 16 {
			break
		}
		var next []protocol.Record
		waitFor(t, 10*time.Second, "retry delivery", func() bool {
			_, next = c.pull("cg", retry, 0, off, 0)
			return len(next) > 0
		})
		off++
		rec = next[0]
		deliveries++
		if rec.ReconsumeTimes != int32(deliveries-1) {
			t.Fatalf("delivery %d has reconsumeTimes %d", deliveries, rec.ReconsumeTimes)
		}
		if v, _ := rec.Property(protocol.PropRetryTopic); v != "orders" {
			t.Fatalf("RETRY_TOPIC %q", v)
		}
		if v, _ := rec.Property(protocol.PropUniqKey); v != "P1" {
			t.Fatalf("msgId changed: %q", v)
		}
	}
	if deliveries != 17 {
		t.Fatalf("%d deliveries, want 1 + 16", deliveries)
	}
	// The 17th failure went to the DLQ, and the retry topic stays quiet.
	var dead []dlq.DeadLetter
	waitFor(t, 5*time.Second, "dead letter", func() bool {
		var err error
		dead, _, err = b.Admin().DLQList("cg", 0, 10)
		return err == nil && len(dead) == 1
	})
	if dead[0].Topic != "orders" || dead[0].MsgID != "P1" || dead[0].ReconsumeTimes != 17 {
		t.Fatalf("dead letter %+v", dead[0])
	}
	if r, _ := c.pull("cg", retry, 0, off, 0); r.Code != protocol.RespPullNotFound {
		t.Fatalf("retry topic still delivering: %d", r.Code)
	}
	// Resend it to its original topic.
	n, skipped, err := b.Admin().DLQResend("cg", nil, dlq.ToOriginalTopic)
	if err != nil || n != 1 || skipped != 0 {
		t.Fatalf("resend: %d (%d skipped) %v", n, skipped, err)
	}
	// Resending again sends nothing: it is recorded, and listed as resent.
	if n, skipped, err := b.Admin().DLQResend("cg", nil, dlq.ToOriginalTopic); err != nil || n != 0 || skipped != 1 {
		t.Fatalf("second resend: %d (%d skipped) %v", n, skipped, err)
	}
	if n, skipped, err := b.Admin().DLQResend("cg", []int64{dead[0].QueueOffset}, dlq.ToRetry); err != nil || n != 0 || skipped != 1 {
		t.Fatalf("resend by offset of a resent dead letter: %d (%d skipped) %v", n, skipped, err)
	}
	if listed, _, err := b.Admin().DLQList("cg", 0, 10); err != nil || len(listed) != 1 || listed[0].ResentTo != "topic" || listed[0].ResentAtMillis == 0 {
		t.Fatalf("dead letters after a resend: %+v %v", listed, err)
	}
	found := false
	waitFor(t, 5*time.Second, "resent message", func() bool {
		for q := 0; q < 4; q++ {
			if _, recs := c.pull("fresh", "orders", q, 0, 0); len(recs) > 0 {
				for _, r := range recs {
					if string(r.Body) == "poison" && r.ReconsumeTimes == 0 && r.QueueOffset > 0 || string(r.Body) == "poison" && q != 0 {
						found = true
					}
				}
			}
		}
		return found
	})
}

func TestSucceedOnThirdTry(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.DelayLevels = strings.TrimSpace(strings.Repeat("20ms ", 18)) })
	c := newClient(t, b)
	mustOK(t, c.send("o", 0, "x", nil))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("o", 0) == 1 })
	_, recs := c.pull("cg3", "o", 0, 0, 0)
	mustOK(t, c.sendBack("cg3", recs[0]))
	var r1 []protocol.Record
	waitFor(t, 5*time.Second, "first retry", func() bool { _, r1 = c.pull("cg3", protocol.RetryTopic("cg3"), 0, 0, 0); return len(r1) == 1 })
	mustOK(t, c.sendBack("cg3", r1[0]))
	var r2 []protocol.Record
	waitFor(t, 5*time.Second, "second retry", func() bool { _, r2 = c.pull("cg3", protocol.RetryTopic("cg3"), 0, 1, 0); return len(r2) == 1 })
	// Consumed successfully on the third try: nothing more arrives.
	r, _ := c.pull("cg3", protocol.RetryTopic("cg3"), 0, 2, 300*time.Millisecond)
	if r.Code != protocol.RespPullNotFound {
		t.Fatalf("unexpected redelivery: %d", r.Code)
	}
	if dead, _, _ := b.Admin().DLQList("cg3", 0, 10); len(dead) != 0 {
		t.Fatalf("dead letters: %+v", dead)
	}
}

func TestLookupAndOperatorOps(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	r := c.send("shop", 0, "order-1", map[string]string{"KEYS": "k1 k2", "UNIQ_KEY": "UQ1"})
	mustOK(t, r)
	mustOK(t, c.send("shop", 0, "order-2", map[string]string{"KEYS": "k2"}))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("shop", 0) == 2 })
	waitFor(t, 5*time.Second, "key index", func() bool { return b.cq.FedOffset() == b.clog.WrittenOffset() })
	for _, id := range []string{r.StringOr("msgId", ""), "UQ1"} {
		raw, err := b.messages.byID(id)
		if err != nil {
			t.Fatalf("by id %s: %v", id, err)
		}
		if rec, _ := protocol.Decode(raw); string(rec.Body) != "order-1" {
			t.Fatalf("by id %s: %q", id, rec.Body)
		}
	}
	if _, err := b.messages.byID("NOPE"); err == nil {
		t.Fatal("unknown id found")
	}
	got, err := b.messages.byKey("shop", "k2", 0, 0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("by key: %d %v", len(got), err)
	}
	// Drain refuses sends with a clear error; undrain accepts again.
	b.Admin().Drain(true)
	if r := c.send("shop", 0, "x", nil); r.Code != protocol.RespServiceNotAvailable || !strings.Contains(r.Remark, "drained") {
		t.Fatalf("drained send: %d %s", r.Code, r.Remark)
	}
	b.Admin().Drain(false)
	mustOK(t, c.send("shop", 0, "x", nil))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("shop", 0) == 3 })
	// Run-time config.
	if err := b.Admin().SetConfig("retry_max_times", "3"); err != nil || b.Config().RetryMaxTimes != 3 {
		t.Fatalf("set: %v", err)
	}
	if err := b.Admin().SetConfig("data_dir", "/elsewhere"); err == nil {
		t.Fatal("static key changed at run time")
	}
	if err := b.Admin().SetConfig("retry_max_times", "-5"); err == nil {
		t.Fatal("invalid value accepted")
	}
	// Offset reset of an idle group.
	res, err := b.Admin().ResetOffset("g", "shop", func(q int32) (int64, error) { return b.Admin().QueueOffsetAt("shop", q, "latest", 0) })
	if err != nil || res[0] != 3 {
		t.Fatalf("reset: %v %v", res, err)
	}
	if off, ok := b.offsets.get("g", "shop", 0); !ok || off != 3 {
		t.Fatalf("offset after reset %d %v", off, ok)
	}
}

func TestRetentionDeletesExpiredSegments(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) {
		c.SegmentSize, c.MaxMessageSize, c.FileReservedTime = 1<<20, 64<<10, Duration(time.Hour)
		c.DelayLevels = "1h"
	})
	b.keys.bucketMs.Store(500) // key index "hours" of half a second
	c := newClient(t, b)
	mustOK(t, c.send("old", 0, "pending", map[string]string{"DELAY": "1"})) // holds its segment
	body := strings.Repeat("x", 60<<10)
	mustOK(t, c.send("old", 0, body, map[string]string{"UNIQ_KEY": "U-first"}))
	first := b.keys.bucket(time.Now().UnixMilli())
	waitFor(t, 5*time.Second, `the next key-index "hour"`, func() bool { return b.keys.bucket(time.Now().UnixMilli()) > first })
	for b.clog.WrittenOffset() < 3<<20 {
		mustOK(t, c.send("old", 0, body, nil))
	}
	mustOK(t, c.send("old", 0, body, map[string]string{"UNIQ_KEY": "U-last"}))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.FedOffset() == b.clog.WrittenOffset() })
	b.retention(time.Now().Add(2 * time.Hour))
	if b.clog.MinOffset() != 0 {
		t.Fatalf("a segment holding a pending delayed message was deleted (min offset %d)", b.clog.MinOffset())
	}
	// Once nothing pending needs them, expired segments go.
	b.delaySvc.Close()
	b.delaySvc = nil
	b.retention(time.Now().Add(2 * time.Hour))
	if b.clog.MinOffset() == 0 || len(b.clog.Segments()) != 1 {
		t.Fatalf("min offset %d, %d segments", b.clog.MinOffset(), len(b.clog.Segments()))
	}
	// The key index went with the deleted segments.
	if _, _, ok, err := b.keys.lookupUniq("U-first"); ok || err != nil {
		t.Fatalf("index entry of a deleted message kept (%v)", err)
	}
	if _, err := b.messages.byID("U-last"); err != nil {
		t.Fatalf("kept message not found by id: %v", err)
	}
	r, _ := c.pull("g", "old", 0, 0, 0)
	if r.Code != protocol.RespPullOffsetMoved || r.StringOr("nextBeginOffset", "0") == "0" {
		t.Fatalf("pull of an expired offset: %d next %s", r.Code, r.StringOr("nextBeginOffset", ""))
	}
}

// testNamesrv starts a name server on a free port of 127.0.0.1.
func testNamesrv(t *testing.T) *namesrv.Server {
	t.Helper()
	ns, err := namesrv.New(namesrv.Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Shutdown(context.Background()) })
	return ns
}

// A broker that reports ready is already routable: Start registers with
// the name servers before it returns.
func TestRoutableWhenReady(t *testing.T) {
	ns := testNamesrv(t)
	b := testBroker(t, t.TempDir(), func(c *Config) { c.NamesrvAddrs = []string{ns.Addr()} })
	cl := remoting.NewClient(remoting.ClientConfig{})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	route, err := remoting.GetRouteInfo(ctx, cl, ns.Addr(), protocol.AutoCreateTopicTemplate)
	if err != nil {
		t.Fatalf("no route right after Start: %v", err)
	}
	if len(route.BrokerDatas) != 1 || route.BrokerDatas[0].BrokerAddrs[0] != b.Addr() {
		t.Fatalf("route %+v", route)
	}
}
