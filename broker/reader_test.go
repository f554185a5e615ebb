package broker

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// readerRig is a broker's message reader over three messages of queue 0
// of "shop": a (tag A), b (tag B), c (tag A).
func readerRig(t *testing.T) (*Broker, *messageReader) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	for i, tag := range []string{"A", "B", "A"} {
		mustOK(t, c.send("shop", 0, string(rune('a'+i)), map[string]string{"TAGS": tag, "UNIQ_KEY": "U" + strconv.Itoa(i)}))
	}
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("shop", 0) == 3 })
	return b, b.messages
}

func TestMessageReaderQueue(t *testing.T) {
	_, rd := readerRig(t)
	filter, tags := apiTagFilter("A")
	msgs, next, err := rd.readQueueOnce("shop", 0, 0, 10, filter, tags, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(bodiesOf(msgs), " "); got != "a c" || next != 3 {
		t.Fatalf("read %s up to %d, want [a c] up to 3", got, next)
	}
	if n := rd.messagesIn("shop", 1); n != 3 {
		t.Fatalf("%d messages kept, want 3", n)
	}
	var seen []string
	n, err := rd.scanQueue("shop", 0, 1, 10, func(rec protocol.Record, qo int64) bool {
		seen = append(seen, string(rec.Body)+"@"+strconv.FormatInt(qo, 10))
		return len(seen) < 1
	})
	if err != nil || n != 1 || strings.Join(seen, " ") != "b@1" {
		t.Fatalf("scan from 1 stopping at once: %d %v %v", n, seen, err)
	}
}

func TestMessageReaderByTime(t *testing.T) {
	_, rd := readerRig(t)
	msgs, err := rd.messagesByTime("shop", 0, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(bodiesOf(msgs), " "); got != "a b" {
		t.Fatalf("first two by time: %s", got)
	}
	if msgs, err := rd.messagesByTime("shop", time.Now().Add(time.Hour).UnixMilli(), 0, 10); err != nil || len(msgs) != 0 {
		t.Fatalf("from an hour ahead: %v %v", bodiesOf(msgs), err)
	}
	if _, err := rd.messagesByTime("shop", 10, 5, 10); !errors.Is(err, protocol.ErrHTTPBadInput) {
		t.Fatalf("end before begin: %v", err)
	}
	if _, err := rd.messagesByTime("nope", 0, 0, 10); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
}

// TestMessageReaderOriginal: a copy's original is found by its origin
// offset id, or else by its unique key in the topic it came from; the
// message id of a copy names the original.
func TestMessageReaderOriginal(t *testing.T) {
	b, rd := readerRig(t)
	indexed := func() bool { return b.cq.FedOffset() == b.clog.WrittenOffset() }
	waitFor(t, 5*time.Second, "key index", indexed)
	raw, err := rd.byID("U1")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := protocol.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	copyOf := func(props map[string]string) protocol.Record {
		t.Helper()
		m := commitlog.Message{Topic: protocol.RetryTopic("g"), Body: orig.Body, BornTimestamp: orig.BornTimestamp,
			StoreHost: b.storeHost, ReconsumeTimes: 1, Properties: protocol.EncodeProperties(props)}
		res, err := b.clog.Append([]commitlog.Message{m}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rec, _, err := b.clog.ReadRecord(res[0].Offset, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	byOrigin := copyOf(map[string]string{protocol.PropUniqKey: "U1", protocol.PropRetryTopic: "shop",
		protocol.PropOriginMessageID: protocol.OffsetMsgID(orig.StoreHost, orig.PhysicalOffset)})
	byUniq := copyOf(map[string]string{protocol.PropUniqKey: "U1", protocol.PropRetryTopic: "shop"})
	stranger := copyOf(map[string]string{protocol.PropUniqKey: "U9", protocol.PropRetryTopic: "shop"})
	for name, c := range map[string]protocol.Record{"origin id": byOrigin, "unique key": byUniq} {
		got, ok := rd.findOriginal(c)
		if !ok || got.PhysicalOffset != orig.PhysicalOffset {
			t.Fatalf("by %s: found %v at %d, want the original at %d", name, ok, got.PhysicalOffset, orig.PhysicalOffset)
		}
	}
	if _, ok := rd.findOriginal(stranger); ok {
		t.Fatal("found an original for a copy of no stored message")
	}
	waitFor(t, 5*time.Second, "key index", indexed)
	got, found, err := rd.originalRecord("U1") // the newest with the id is a copy
	if err != nil || got.PhysicalOffset != orig.PhysicalOffset || found.PhysicalOffset == orig.PhysicalOffset {
		t.Fatalf("original of U1: at %d (found at %d), %v; want %d", got.PhysicalOffset, found.PhysicalOffset, err, orig.PhysicalOffset)
	}
}
