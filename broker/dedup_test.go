package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/ferrymq/ferry/protocol"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

func createDedupTopic(t *testing.T, c *tclient, topic string, window time.Duration) {
	t.Helper()
	mustOK(t, c.invoke(remoting.NewRequest(protocol.ReqUpdateAndCreateTopic, map[string]string{
		"topic": topic, "readQueueNums": "2", "writeQueueNums": "2", "perm": "6",
		"dedupWindow": strconv.FormatInt(window.Milliseconds(), 10)}, nil)))
}

func TestDedupWindowByUniqKey(t *testing.T) {
	dir := t.TempDir()
	b := testBroker(t, dir, nil)
	c := newClient(t, b)
	createDedupTopic(t, c, "d", time.Hour)
	first := c.send("d", 0, "a", map[string]string{protocol.PropUniqKey: "K1"})
	mustOK(t, first)
	// The same message retried, even to another queue: stored once, the
	// original answer.
	again := c.send("d", 1, "a", map[string]string{protocol.PropUniqKey: "K1"})
	mustOK(t, again)
	if again.ExtFields["msgId"] != first.ExtFields["msgId"] || again.ExtFields["queueId"] != "0" || again.ExtFields["duplicate"] != "true" {
		t.Fatalf("retry answered %v, original %v", again.ExtFields, first.ExtFields)
	}
	mustOK(t, c.send("d", 0, "b", map[string]string{protocol.PropUniqKey: "K2"}))
	// An update from a tool that knows nothing of the window keeps it.
	mustOK(t, c.invoke(remoting.NewRequest(protocol.ReqUpdateAndCreateTopic, map[string]string{
		"topic": "d", "readQueueNums": "2", "writeQueueNums": "2", "perm": "6"}, nil)))
	if tc, _ := b.topics.get("d"); tc.DedupWindowMs != time.Hour.Milliseconds() {
		t.Fatalf("window after a plain update: %d", tc.DedupWindowMs)
	}
	// Survives a restart, with or without the snapshot's replay.
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, nil)
	c = newClient(t, b)
	after := c.send("d", 0, "a", map[string]string{protocol.PropUniqKey: "K1"})
	mustOK(t, after)
	if after.ExtFields["queueOffset"] != first.ExtFields["queueOffset"] || after.ExtFields["duplicate"] != "true" {
		t.Fatalf("retry after restart: %v", after.ExtFields)
	}
	if got := pullAll(t, b, c, "d", 0); strings.Join(got, "") != "ab" {
		t.Fatalf("queue 0 holds %v", got)
	}
	if got := pullAll(t, b, c, "d", 1); len(got) != 0 {
		t.Fatalf("queue 1 holds %v", got)
	}
	// A topic without a window stores every copy.
	mustOK(t, c.send("plain", 0, "x", map[string]string{protocol.PropUniqKey: "K1"}))
	mustOK(t, c.send("plain", 0, "x", map[string]string{protocol.PropUniqKey: "K1"}))
	if got := pullAll(t, b, c, "plain", 0); len(got) != 2 {
		t.Fatalf("plain topic holds %v", got)
	}
}

// The dedup keys of messages stored just before a crash are rebuilt from
// the log (here: the keys are deleted, as if their write was lost).
func TestDedupKeysRebuiltFromLog(t *testing.T) {
	dir := t.TempDir()
	b := testBroker(t, dir, nil)
	c := newClient(t, b)
	createDedupTopic(t, c, "d", time.Hour)
	mustOK(t, c.send("d", 0, "a", map[string]string{protocol.PropUniqKey: "K1"}))
	if err := b.dedup.flush(); err != nil {
		t.Fatal(err)
	}
	if !hasPrefix(b.meta.db, dedupJournalPrefix) {
		t.Fatal("no journal written")
	}
	for _, p := range []string{dedupPrefix, dedupJournalPrefix} {
		if err := b.meta.db.DeleteRange([]byte(p), prefixEnd(p), nil); err != nil {
			t.Fatal(err)
		}
	}
	b.idem.mu.Lock()
	b.idem.tab = nil // and no snapshot at shutdown: replay the whole log
	b.idem.mu.Unlock()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, nil)
	c = newClient(t, b)
	if r := c.send("d", 0, "a", map[string]string{protocol.PropUniqKey: "K1"}); r.ExtFields["duplicate"] != "true" {
		t.Fatalf("after rebuild: %v", r.ExtFields)
	}
}

func TestDedupConcurrentCopiesStoreOnce(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	createDedupTopic(t, newClient(t, b), "d", time.Hour)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newClient(t, b).send("d", 0, "x", map[string]string{protocol.PropUniqKey: "SAME"})
			ids[i] = r.ExtFields["msgId"]
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("answers %v", ids)
		}
	}
	if got := pullAll(t, b, newClient(t, b), "d", 0); len(got) != 1 {
		t.Fatalf("stored %d copies", len(got))
	}
}

func TestDedupWindowExpires(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	createDedupTopic(t, c, "d", 300*time.Millisecond)
	first := c.send("d", 0, "a", map[string]string{protocol.PropUniqKey: "K"})
	mustOK(t, first)
	start := time.Now()
	var last *remoting.Command
	waitFor(t, 10*time.Second, "the window to pass", func() bool {
		last = c.send("d", 0, "a", map[string]string{protocol.PropUniqKey: "K"})
		return last.ExtFields["duplicate"] != "true"
	})
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("stored again after %v, inside the window", time.Since(start))
	}
	if last.ExtFields["queueOffset"] != "1" {
		t.Fatalf("second copy at %v", last.ExtFields)
	}
	if err := b.dedup.flush(); err != nil {
		t.Fatal(err)
	}
	if !hasPrefix(b.meta.db, dedupJournalPrefix) {
		t.Fatal("no journal written")
	}
	if err := b.dedup.sweep(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if hasPrefix(b.meta.db, dedupPrefix) || hasPrefix(b.meta.db, dedupJournalPrefix) {
		t.Fatal("expired keys survived the sweep")
	}
	if _, ok := b.dedup.memLookup(dedupKey("d", "K")); ok {
		t.Fatal("expired key still in memory")
	}
}

func TestDedupIdempotencyKeyOverHTTP(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	a.ok("POST", "/v1/topics", map[string]any{"name": "h", "read_queues": 1, "write_queues": 1, "dedup_window": "10m"}, 201, nil)
	var tp apiTopic
	a.ok("GET", "/v1/topics/h", nil, 200, &tp)
	if tp.DedupWindow != "10m0s" {
		t.Fatalf("topic %+v", tp)
	}
	post := func(key string, bodies ...string) produceResults {
		t.Helper()
		var msgs []map[string]any
		for _, b := range bodies {
			msgs = append(msgs, map[string]any{"body": b})
		}
		j, _ := json.Marshal(map[string]any{"messages": msgs})
		req, _ := http.NewRequest("POST", a.base+"/v1/topics/h/messages", bytes.NewReader(j))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := a.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var out produceResults
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := post("req-1", "a", "b")
	again := post("req-1", "a", "b")
	for i := range first.Results {
		if again.Results[i].MsgID != first.Results[i].MsgID || *again.Results[i].QueueOffset != *first.Results[i].QueueOffset {
			t.Fatalf("retry result %d: %+v, original %+v", i, again.Results[i], first.Results[i])
		}
	}
	post("req-2", "c")
	post("", "d")
	post("", "d") // no key: a new message id each time, stored twice
	got := a.readUntil("/v1/topics/h/queues/0/messages?offset=0", 5)
	if len(got.Messages) != 5 {
		t.Fatalf("stored %d messages, want a b c d d", len(got.Messages))
	}
	a.fails("POST", "/v1/topics", map[string]any{"name": "bad", "dedup_window": "soon"}, 400, 1002)
}

func TestDedupWindowValidated(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	for _, ms := range []int64{-1, (8 * 24 * time.Hour).Milliseconds()} {
		if err := b.Admin().CreateTopic(TopicConfig{TopicName: "t", ReadQueueNums: 1, WriteQueueNums: 1, DedupWindowMs: ms}); err == nil {
			t.Errorf("window %d ms accepted", ms)
		}
	}
}

// More keys than memory holds: the oldest move to the store one by one
// and are still found there, before and after a restart (clean, and
// after losing the snapshot: the journal and the replay put back the
// rest).
func TestDedupMemorySpillsToStore(t *testing.T) {
	dir := t.TempDir()
	b := testBroker(t, dir, nil)
	b.dedup.mu.Lock() // the sends are served by other goroutines
	b.dedup.memKeys = 4
	b.dedup.mu.Unlock()
	c := newClient(t, b)
	createDedupTopic(t, c, "d", time.Hour)
	const n = 10
	first := make([]*remoting.Command, n)
	for i := range n {
		first[i] = c.send("d", 0, "m"+strconv.Itoa(i), map[string]string{protocol.PropUniqKey: "K" + strconv.Itoa(i)})
		mustOK(t, first[i])
	}
	if err := b.dedup.flush(); err != nil {
		t.Fatal(err)
	}
	b.dedup.mu.Lock()
	inMem := len(b.dedup.mem)
	b.dedup.mu.Unlock()
	spilled := 0
	if err := b.meta.scan(dedupPrefix, func(_, _ []byte) error { spilled++; return nil }); err != nil {
		t.Fatal(err)
	}
	if inMem != 4 || spilled != n-4 {
		t.Fatalf("%d keys in memory, %d in the store; want 4 and %d", inMem, spilled, n-4)
	}
	check := func(when string) {
		t.Helper()
		for i := range n {
			r := c.send("d", 0, "m"+strconv.Itoa(i), map[string]string{protocol.PropUniqKey: "K" + strconv.Itoa(i)})
			if r.ExtFields["duplicate"] != "true" || r.ExtFields["queueOffset"] != first[i].ExtFields["queueOffset"] {
				t.Fatalf("%s: K%d answered %v, first %v", when, i, r.ExtFields, first[i].ExtFields)
			}
		}
	}
	check("in memory and in the store")
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, nil)
	c = newClient(t, b)
	check("after a restart")
	if err := b.meta.db.Delete([]byte(producerSnapKey), nil); err != nil {
		t.Fatal(err)
	}
	b.idem.mu.Lock()
	b.idem.tab = nil // and no snapshot at shutdown
	b.idem.mu.Unlock()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, nil)
	c = newClient(t, b)
	check("after a restart without a snapshot")
	if got := pullAll(t, b, c, "d", 0); len(got) != n {
		t.Fatalf("stored %d messages, want %d", len(got), n)
	}
}

// A journal value cut short is an error at open, not keys silently lost.
func TestDedupJournalCorrupt(t *testing.T) {
	dir := t.TempDir()
	b := testBroker(t, dir, nil)
	createDedupTopic(t, newClient(t, b), "d", time.Hour)
	if err := b.meta.db.Set(journalKey(7), []byte{40, 'd', 'd'}, nil); err != nil {
		t.Fatal(err)
	}
	err := b.dedup.loadJournal(time.Now())
	if err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("loading a cut journal: %v", err)
	}
}
