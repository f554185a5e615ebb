package broker

import (
	"testing"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// readerFixture is a queueReader over a broker's stores with its own pull
// limit, and the suggestions it was asked for.
type readerFixture struct {
	b         *Broker
	r         *queueReader
	suggested []int64 // the first offsets suggest was asked about
}

func newReaderFixture(t *testing.T, pullMax int) *readerFixture {
	t.Helper()
	b := testBroker(t, t.TempDir(), nil)
	cfg := b.Config()
	cfg.PullMaxMessages = pullMax
	f := &readerFixture{b: b}
	f.r = &queueReader{cfg: func() *Config { return &cfg }, log: b.log, clog: b.clog, cq: b.cq, metrics: b.metrics,
		suggest: func(_, first int64) int64 { f.suggested = append(f.suggested, first); return 7 }}
	return f
}

// put stores one message per tag on topic's queue 0 and waits for their
// dispatch.
func (f *readerFixture) put(t *testing.T, topic string, tags ...string) {
	t.Helper()
	msgs := make([]commitlog.Message, len(tags))
	for i, tag := range tags {
		msgs[i] = commitlog.Message{Topic: topic, Body: []byte(tag),
			Properties: protocol.EncodeProperties(map[string]string{protocol.PropTags: tag})}
	}
	want := f.b.cq.MaxOffset(topic, 0) + int64(len(tags))
	mustOK(t, f.b.sender.store(remoting.NewRequest(protocol.ReqSendMessage, nil, nil), msgs))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return f.b.cq.MaxOffset(topic, 0) == want })
}

func TestQueueReaderReadMessages(t *testing.T) {
	f := newReaderFixture(t, 2)
	f.put(t, "reads", "A", "B", "A", "B", "A")
	maxOff := f.b.cq.MaxOffset("reads", 0)
	p := pullRequest{topic: "reads", maxMsgs: 32}
	body, n, next, err := f.r.readMessages(&p, tagFilter{all: true}, maxOff)
	if err != nil || n != 2 || next != 2 {
		t.Fatalf("read %d messages up to %d (%v); the pull limit is 2", n, next, err)
	}
	if rec, err := protocol.Decode(body); err != nil || string(rec.Body) != "A" {
		t.Fatalf("first message %q, %v", rec.Body, err)
	}

	f = newReaderFixture(t, 32)
	f.put(t, "reads", "A", "B", "A", "B", "A")
	onlyB := tagFilter{codes: map[int64]bool{tagsCode("B"): true}}
	p = pullRequest{topic: "reads", offset: 0, maxMsgs: 32}
	body, n, next, err = f.r.readMessages(&p, onlyB, f.b.cq.MaxOffset("reads", 0))
	if err != nil || n != 2 || next != 5 {
		t.Fatalf("tag B: read %d messages up to %d (%v), want 2 up to 5", n, next, err)
	}
	for len(body) > 0 {
		rec, err := protocol.Decode(body)
		if err != nil || string(rec.Body) != "B" {
			t.Fatalf("tag B read %q, %v", rec.Body, err)
		}
		body = body[rec.Size:]
	}
}

func TestQueueReaderPullOnce(t *testing.T) {
	f := newReaderFixture(t, 32)
	req := remoting.NewRequest(protocol.ReqPullMessage, nil, nil)
	p := pullRequest{group: "g", topic: "pulls", maxMsgs: 32, whichSlow: 1}
	if resp, empty := f.r.pullOnce(req, &p, tagFilter{all: true}); resp.Code != protocol.RespPullNotFound || !empty {
		t.Fatalf("an empty queue answered %d, empty %v", resp.Code, empty)
	}
	if !f.r.youngQueue("pulls", 0) {
		t.Fatal("an empty queue is not young")
	}

	f.put(t, "pulls", "A", "A", "A")
	resp, empty := f.r.pullOnce(req, &p, tagFilter{all: true})
	mustOK(t, resp)
	rh := resp.Header.(*remoting.PullResponseHeader)
	if empty || rh.NextBeginOffset != 3 || rh.MinOffset != 0 || rh.MaxOffset != 3 || rh.SuggestWhichBrokerID != 7 {
		t.Fatalf("pull of 3 messages: empty %v, header %+v", empty, rh)
	}
	if len(f.suggested) != 2 || f.suggested[1] < 0 {
		t.Fatalf("suggest asked about first offsets %v; the second pull read a message", f.suggested)
	}
	if !f.r.youngQueue("pulls", 0) {
		t.Fatal("a queue written a moment ago is not young")
	}

	p.offset = 3
	if resp, empty := f.r.pullOnce(req, &p, tagFilter{all: true}); resp.Code != protocol.RespPullNotFound || !empty {
		t.Fatalf("a pull at the end answered %d, empty %v", resp.Code, empty)
	}
	p.offset = 9
	resp, empty = f.r.pullOnce(req, &p, tagFilter{all: true})
	if resp.Code != protocol.RespPullOffsetMoved || empty || resp.Header.(*remoting.PullResponseHeader).NextBeginOffset != 3 {
		t.Fatalf("a pull past the end answered %d, header %+v", resp.Code, resp.Header)
	}
	if got := f.r.minOffset("pulls", 0); got != 0 {
		t.Fatalf("minOffset %d, want 0", got)
	}
}
