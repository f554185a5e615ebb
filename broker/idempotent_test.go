package broker

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/ferrymq/ferry/protocol"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/remoting"
)

func (c *tclient) initProducer(pid string) remoting.InitProducerIDResponse {
	c.t.Helper()
	resp := c.invoke(remoting.NewRequest(protocol.ReqInitProducerID, map[string]string{"producerId": pid}, nil))
	mustOK(c.t, resp)
	var out remoting.InitProducerIDResponse
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func idemProps(pid string, epoch int32, seq int64) map[string]string {
	return map[string]string{protocol.PropProducerID: pid, protocol.PropProducerEpoch: strconv.Itoa(int(epoch)),
		protocol.PropProducerSeq: strconv.FormatInt(seq, 10), protocol.PropUniqKey: "U" + strconv.FormatInt(seq, 10)}
}

// sendIdemBatch sends bodies as one batch with sequences first, first+1 …
func (c *tclient) sendIdemBatch(topic string, queue int, pid string, epoch int32, first int64, bodies ...string) *remoting.Command {
	c.t.Helper()
	flags := make([]int32, len(bodies))
	bs := make([][]byte, len(bodies))
	props := make([][]byte, len(bodies))
	for i, body := range bodies {
		bs[i] = []byte(body)
		props[i] = protocol.EncodeProperties(idemProps(pid, epoch, first+int64(i)))
	}
	return c.invoke(remoting.NewRequest(protocol.ReqSendBatchMessage, map[string]string{
		"a": "pg", "b": topic, "c": "TBW102", "d": "4", "e": strconv.Itoa(queue), "f": "0", "g": "0", "h": "0",
		"i": "", "j": "0", "k": "false", "m": "true",
	}, EncodeBatch(nil, flags, bs, props)))
}

// pullAll returns the bodies of every message stored in a queue, waiting
// until the dispatcher has made all of them (as counted by the log's
// queue offsets, assigned at append) readable.
func pullAll(t *testing.T, b *Broker, c *tclient, topic string, queue int) []string {
	t.Helper()
	n := int(b.clog.NextQueueOffset(topic, int32(queue)))
	var out []string
	waitFor(t, 10*time.Second, "every message of "+topic, func() bool {
		out = nil
		for off := int64(0); ; {
			_, recs := c.pull("g", topic, queue, off, 0)
			if len(recs) == 0 {
				return len(out) == n
			}
			for _, r := range recs {
				out = append(out, string(r.Body))
			}
			off += int64(len(recs))
		}
	})
	return out
}

func TestIdempotentRetryStoresOnce(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	ep := c.initProducer("p1").Epoch
	first := c.send("t", 0, "a", idemProps("p1", ep, 0))
	mustOK(t, first)
	again := c.send("t", 0, "a", idemProps("p1", ep, 0))
	mustOK(t, again)
	for _, k := range []string{"msgId", "queueId", "queueOffset"} {
		if first.ExtFields[k] != again.ExtFields[k] {
			t.Errorf("retry %s = %q, original %q", k, again.ExtFields[k], first.ExtFields[k])
		}
	}
	if again.ExtFields["duplicate"] != "true" {
		t.Errorf("retry not marked duplicate: %v", again.ExtFields)
	}
	batch := c.sendIdemBatch("t", 0, "p1", ep, 1, "b", "c", "d")
	mustOK(t, batch)
	batchAgain := c.sendIdemBatch("t", 0, "p1", ep, 1, "b", "c", "d")
	mustOK(t, batchAgain)
	if batch.ExtFields["msgId"] != batchAgain.ExtFields["msgId"] || strings.Count(batch.ExtFields["msgId"], ",") != 2 {
		t.Errorf("batch retry ids %q, original %q", batchAgain.ExtFields["msgId"], batch.ExtFields["msgId"])
	}
	if got := pullAll(t, b, c, "t", 0); strings.Join(got, "") != "abcd" {
		t.Fatalf("stored %v, want a b c d once each", got)
	}
}

func TestIdempotentConcurrentRetriesStoreOnce(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	ep := newClient(t, b).initProducer("p").Epoch
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, b) // its own connection
			resp := c.send("t", 1, "x", idemProps("p", ep, 0))
			if resp.Code == protocol.RespSuccess {
				ids[i] = resp.ExtFields["msgId"]
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("racing retries answered %v", ids)
		}
	}
	if got := pullAll(t, b, newClient(t, b), "t", 1); len(got) != 1 {
		t.Fatalf("stored %d copies", len(got))
	}
}

func TestIdempotentGapAndFencing(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	old := c.initProducer("p").Epoch
	mustOK(t, c.send("t", 0, "a", idemProps("p", old, 0)))
	gap := c.send("t", 0, "c", idemProps("p", old, 2))
	if gap.Code != protocol.RespOutOfOrderSequence || !strings.Contains(gap.Remark, "expected sequence 1, got 2") {
		t.Fatalf("gap: %d %s", gap.Code, gap.Remark)
	}
	cur := c.initProducer("p")
	if cur.Epoch != old+1 || len(cur.Queues) != 1 || cur.Queues[0].LastSeq != 0 {
		t.Fatalf("second init: %+v", cur)
	}
	fenced := c.send("t", 0, "b", idemProps("p", old, 1))
	if fenced.Code != protocol.RespProducerFenced {
		t.Fatalf("old epoch: %d %s", fenced.Code, fenced.Remark)
	}
	mustOK(t, c.send("t", 0, "b", idemProps("p", cur.Epoch, 1)))
	mixed := c.sendIdemBatch("t", 0, "p", cur.Epoch, 2, "c")
	mustOK(t, mixed)
	// A batch whose sequences are not consecutive is refused outright.
	props := [][]byte{protocol.EncodeProperties(idemProps("p", cur.Epoch, 3)), protocol.EncodeProperties(idemProps("p", cur.Epoch, 5))}
	bad := c.invoke(remoting.NewRequest(protocol.ReqSendBatchMessage, map[string]string{"b": "t", "e": "0", "m": "true"},
		EncodeBatch(nil, []int32{0, 0}, [][]byte{[]byte("x"), []byte("y")}, props)))
	if bad.Code != protocol.RespMessageIllegal {
		t.Fatalf("non-consecutive batch: %d %s", bad.Code, bad.Remark)
	}
	delayed := c.send("t", 0, "d", func() map[string]string {
		p := idemProps("p", cur.Epoch, 3)
		p[protocol.PropDelayLevel] = "1"
		return p
	}())
	if delayed.Code != protocol.RespMessageIllegal {
		t.Fatalf("delayed idempotent send: %d %s", delayed.Code, delayed.Remark)
	}
	if anyQ := c.send("t", -1, "d", idemProps("p", cur.Epoch, 3)); anyQ.Code != protocol.RespMessageIllegal {
		t.Fatalf("idempotent send to any queue: %d %s", anyQ.Code, anyQ.Remark)
	}
	if got := pullAll(t, b, c, "t", 0); strings.Join(got, "") != "abc" {
		t.Fatalf("stored %v", got)
	}
}

func TestIdempotentStateSurvivesRestart(t *testing.T) {
	for _, snapshot := range []bool{true, false} {
		t.Run("snapshot="+strconv.FormatBool(snapshot), func(t *testing.T) {
			dir := t.TempDir()
			b := testBroker(t, dir, nil)
			c := newClient(t, b)
			ep := c.initProducer("p").Epoch
			first := c.sendIdemBatch("t", 2, "p", ep, 0, "a", "b")
			mustOK(t, first)
			mustOK(t, c.send("t", 2, "c", idemProps("p", ep, 2)))
			if !snapshot {
				// Forget the snapshot the shutdown saves: rebuild from the log.
				b.idem.mu.Lock()
				b.idem.tab = nil
				b.idem.mu.Unlock()
			}
			if err := b.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			b = testBroker(t, dir, nil)
			c = newClient(t, b)
			again := c.sendIdemBatch("t", 2, "p", ep, 0, "a", "b")
			mustOK(t, again)
			if again.ExtFields["queueOffset"] != first.ExtFields["queueOffset"] || again.ExtFields["duplicate"] != "true" {
				t.Fatalf("retry after restart: %v, original %v", again.ExtFields, first.ExtFields)
			}
			if gap := c.send("t", 2, "e", idemProps("p", ep, 4)); gap.Code != protocol.RespOutOfOrderSequence {
				t.Fatalf("gap after restart: %d %s", gap.Code, gap.Remark)
			}
			cur := c.initProducer("p")
			if cur.Epoch != ep+1 || cur.Queues[0].LastSeq != 2 {
				t.Fatalf("init after restart: %+v", cur)
			}
			if f := c.send("t", 2, "d", idemProps("p", ep, 3)); f.Code != protocol.RespProducerFenced {
				t.Fatalf("old epoch after restart: %d %s", f.Code, f.Remark)
			}
			mustOK(t, c.send("t", 2, "d", idemProps("p", cur.Epoch, 3)))
			if got := pullAll(t, b, c, "t", 2); strings.Join(got, "") != "abcd" {
				t.Fatalf("stored %v", got)
			}
		})
	}
}

// An epoch granted by INIT_PRODUCER_ID fences the older instance even if
// the broker restarts before the new instance stores anything.
func TestInitEpochSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := testBroker(t, dir, nil)
	c := newClient(t, b)
	old := c.initProducer("p").Epoch
	mustOK(t, c.send("t", 0, "a", idemProps("p", old, 0)))
	cur := c.initProducer("p").Epoch
	b.idem.mu.Lock()
	b.idem.tab = nil // no snapshot at shutdown: only the persisted epoch
	b.idem.mu.Unlock()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, nil)
	c = newClient(t, b)
	if f := c.send("t", 0, "b", idemProps("p", old, 1)); f.Code != protocol.RespProducerFenced {
		t.Fatalf("old epoch after restart: %d %s", f.Code, f.Remark)
	}
	mustOK(t, c.send("t", 0, "b", idemProps("p", cur, 1)))
}

func TestInitProducerIDRejectsBadIDs(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	for _, pid := range []string{"", strings.Repeat("x", 256), "a\x01b"} {
		resp := c.invoke(remoting.NewRequest(protocol.ReqInitProducerID, map[string]string{"producerId": pid}, nil))
		if resp.Code != protocol.RespMessageIllegal {
			t.Errorf("producerId %q: %d %s", pid, resp.Code, resp.Remark)
		}
	}
}

func TestParseProducerFields(t *testing.T) {
	tests := []struct {
		props map[string]string
		ok    bool
		bad   bool
	}{
		{props: map[string]string{"TAGS": "x"}},
		{props: map[string]string{"__PID": "p", "__PEPOCH": "1", "__PSEQ": "7"}, ok: true},
		{props: map[string]string{"__PID": "", "__PEPOCH": "1", "__PSEQ": "7"}, ok: true, bad: true},
		{props: map[string]string{"__PID": "p", "__PSEQ": "7"}, ok: true, bad: true},
		{props: map[string]string{"__PID": "p", "__PEPOCH": "-1", "__PSEQ": "7"}, ok: true, bad: true},
		{props: map[string]string{"__PID": "p", "__PEPOCH": "1", "__PSEQ": "x"}, ok: true, bad: true},
		{props: map[string]string{"__PID": "p", "__PEPOCH": "99999999999", "__PSEQ": "1"}, ok: true, bad: true},
	}
	for _, tt := range tests {
		f, ok, err := parseProducerFields(protocol.EncodeProperties(tt.props))
		if ok != tt.ok || (err != nil) != tt.bad || (err != nil && !errors.Is(err, errIdempotent)) {
			t.Errorf("%v: %+v %v %v", tt.props, f, ok, err)
		}
	}
}

func FuzzParseProducerFields(f *testing.F) {
	f.Add(protocol.EncodeProperties(idemProps("p", 1, 2)))
	f.Add([]byte("__PID\x01p\x02__PEPOCH\x01\x02__PSEQ\x01-1"))
	f.Fuzz(func(t *testing.T, props []byte) {
		pf, ok, err := parseProducerFields(props)
		if err == nil && ok && (pf.pid == "" || pf.epoch < 0 || pf.seq < 0) {
			t.Fatalf("accepted %+v from %q", pf, props)
		}
		msgs := []commitlog.Message{{Properties: props}, {Properties: props}}
		_, _, _ = batchProducerFields(msgs)
	})
}

// A data directory without a producer snapshot gets one at once, so the
// next start replays only what was written since, not the whole log.
func TestFirstOpenSavesProducerSnapshot(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	v, closer, err := b.meta.db.Get([]byte(producerSnapKey))
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	// It covers what was written before it: the metadata records of the
	// first open, no producer's record.
	var snap struct {
		Covers    int64
		Producers []json.RawMessage
	}
	if err := json.Unmarshal(v, &snap); err != nil || snap.Covers > b.clog.WrittenOffset() || len(snap.Producers) != 0 {
		t.Fatalf("first snapshot %s: %v", v, err)
	}
}

func TestAPIProducers(t *testing.T) {
	b, a := testHTTPBroker(t, nil)
	c := newClient(t, b)
	ep := c.initProducer("p").Epoch
	mustOK(t, c.sendIdemBatch("t", 1, "p", ep, 0, "a", "b"))
	var got []protocol.ProducerState
	a.ok("GET", "/v1/producers", nil, 200, &got)
	if len(got) != 1 || got[0].ID != "p" || got[0].Epoch != ep || len(got[0].Queues) != 1 ||
		got[0].Queues[0] != (protocol.ProducerQueue{Topic: "t", QueueID: 1, LastSeq: 1}) {
		t.Fatalf("producers %+v", got)
	}
}
