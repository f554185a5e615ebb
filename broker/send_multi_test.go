package broker

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

func (c *tclient) sendMulti(entries ...protocol.MultiEntry) []protocol.MultiResult {
	c.t.Helper()
	var body []byte
	for i := range entries {
		var err error
		if body, err = protocol.AppendMultiEntry(body, &entries[i]); err != nil {
			c.t.Fatal(err)
		}
	}
	resp := c.invoke(remoting.NewRequest(protocol.ReqFerrySendMulti, map[string]string{"a": "pg"}, body))
	mustOK(c.t, resp)
	res, err := protocol.DecodeMultiResults(resp.Body, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(res) != len(entries) {
		c.t.Fatalf("%d results for %d messages", len(res), len(entries))
	}
	return res
}

// TestSendMultiMixedTopics: one request carries messages of two topics and
// several queues; each is stored in its queue, in body order, with its own
// result, and a bad message (system topic, unknown queue, too large) fails
// only itself.
func TestSendMultiMixedTopics(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(c *Config) { c.MaxMessageSize = 4096 })
	c := newClient(t, b)
	e := func(topic string, q int32, body string) protocol.MultiEntry {
		return protocol.MultiEntry{Topic: topic, QueueID: q, BornTimestamp: 1, Body: []byte(body),
			Properties: protocol.EncodeProperties(map[string]string{"KEYS": body})}
	}
	res := c.sendMulti(
		e("MA", 0, "a0-1"),
		e("MB", 1, "b1-1"),
		e(protocol.ScheduleTopic, 0, "system"),
		e("MA", 0, "a0-2"),
		e("MA", 99, "bad-queue"),
		e("MA", 1, strings.Repeat("x", 8192)),
		e("MB", 1, "b1-2"),
		e("MA", 1, "a1-1"),
	)
	wantCode := []int16{0, 0, protocol.RespNoPermission, 0, protocol.RespSystemError, protocol.RespMessageIllegal, 0, 0}
	for i, r := range res {
		if r.Code != wantCode[i] {
			t.Fatalf("message %d: code %d (%s), want %d", i, r.Code, r.Text, wantCode[i])
		}
		if r.Code == protocol.RespSuccess && len(r.Text) != 32 {
			t.Fatalf("message %d: message id %q", i, r.Text)
		}
	}
	if res[3].QueueOffset != res[0].QueueOffset+1 || res[6].QueueOffset != res[1].QueueOffset+1 {
		t.Fatalf("queue offsets %+v", res)
	}
	for _, q := range []struct {
		topic string
		queue int
		want  []string
	}{{"MA", 0, []string{"a0-1", "a0-2"}}, {"MB", 1, []string{"b1-1", "b1-2"}}, {"MA", 1, []string{"a1-1"}}} {
		var got []string
		waitFor(t, 10*time.Second, "dispatch of "+q.topic, func() bool {
			_, recs := c.pull("g", q.topic, q.queue, 0, 0)
			got = got[:0]
			for _, r := range recs {
				got = append(got, string(r.Body))
			}
			return len(got) >= len(q.want)
		})
		if strings.Join(got, ",") != strings.Join(q.want, ",") {
			t.Fatalf("%s/%d holds %v, want %v", q.topic, q.queue, got, q.want)
		}
	}
	// The stored messages are counted per topic, the refused ones not.
	for topic, want := range map[string]float64{"MA": 3, "MB": 2} {
		var m dto.Metric
		if err := b.metrics.msgIn.WithLabelValues(topic).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Fatalf("messages in of %s: %v, want %v", topic, got, want)
		}
	}
}

// TestSendMultiRefusals: a malformed body fails the whole request, and a
// batch whose every message is refused stores nothing.
func TestSendMultiRefusals(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	for _, body := range [][]byte{nil, {0, 1, 'T'}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		resp := c.invoke(remoting.NewRequest(protocol.ReqFerrySendMulti, nil, body))
		if resp.Code != protocol.RespMessageIllegal {
			t.Fatalf("body %x: code %d (%s)", body, resp.Code, resp.Remark)
		}
	}
	res := c.sendMulti(protocol.MultiEntry{Topic: protocol.ScheduleTopic, Body: []byte("x")},
		protocol.MultiEntry{Topic: "bad topic!", Body: []byte("x")})
	for i, r := range res {
		if r.Code == protocol.RespSuccess {
			t.Fatalf("message %d stored: %+v", i, r)
		}
	}
	// The broker still serves sends afterwards.
	mustOK(t, c.send("MA", 0, "after", nil))
}

// TestSendMultiDedup: messages of a topic with a dedup window are
// deduplicated by key as single sends are: a copy gets the original's
// place and is not stored again.
func TestSendMultiDedup(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "DD", ReadQueueNums: 1, WriteQueueNums: 1, DedupWindowMs: 3600_000}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b)
	keyed := func(topic, key, body string) protocol.MultiEntry {
		return protocol.MultiEntry{Topic: topic, Body: []byte(body),
			Properties: protocol.EncodeProperties(map[string]string{protocol.PropUniqKey: key})}
	}
	res := c.sendMulti(keyed("DD", "K1", "first"), keyed("MA", "K1", "plain"), keyed("DD", "K1", "copy"), keyed("DD", "K2", "second"))
	for i, r := range res {
		if r.Code != protocol.RespSuccess {
			t.Fatalf("message %d: code %d (%s)", i, r.Code, r.Text)
		}
	}
	if res[2].Text != res[0].Text || res[2].QueueOffset != res[0].QueueOffset || res[3].QueueOffset != res[0].QueueOffset+1 {
		t.Fatalf("results %+v", res)
	}
	var recs []protocol.Record
	waitFor(t, 10*time.Second, "dispatch of DD", func() bool {
		_, recs = c.pull("g", "DD", 0, 0, 0)
		return len(recs) >= 2
	})
	if len(recs) != 2 || string(recs[0].Body) != "first" || string(recs[1].Body) != "second" {
		t.Fatalf("DD holds %d records", len(recs))
	}
}
