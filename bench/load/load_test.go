package load

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// Paced producers start evenly spread over one interval: four producers at
// 800 µs each send one message every 200 µs together.
func TestFirstSendStaggersProducers(t *testing.T) {
	now := time.Unix(1000, 0)
	const interval = 800 * time.Microsecond
	for p := 0; p < 4; p++ {
		if got, want := firstSend(now, p, 4, interval).Sub(now), time.Duration(p)*200*time.Microsecond; got != want {
			t.Fatalf("producer %d starts at +%v, want +%v", p, got, want)
		}
	}
	if got := firstSend(now, 0, 1, 0); !got.Equal(now) {
		t.Fatalf("unpaced producer starts at %v", got)
	}
}

// The requests carry the V2 one-letter header names, are reused in place,
// and single sends get a fresh unique key each time.
func TestRequestsReused(t *testing.T) {
	tg := target{topic: "T", queue: 3}
	now := time.Unix(1000, 0)
	req := sendRequest(nil, tg, []byte("first body"), now, 1, nil)
	if req.Code != protocol.ReqSendMessageV2 || req.ExtFields["b"] != "T" || req.ExtFields["e"] != "3" || req.ExtFields["m"] != "false" {
		t.Fatalf("single send header %v", req.ExtFields)
	}
	key1 := req.ExtFields["i"]
	again := sendRequest(req, tg, []byte("second"), now, 2, nil)
	if again != req || string(again.Body) != "second" {
		t.Fatalf("request not reused in place: body %q", again.Body)
	}
	if key2 := again.ExtFields["i"]; key2 == key1 || !strings.HasPrefix(key2, "UNIQ_KEY\x01") {
		t.Fatalf("unique keys %q then %q", key1, key2)
	}
	b := batchRequest(nil, tg, []byte("batch"), now)
	if b.Code != protocol.ReqSendBatchMessage || b.ExtFields["m"] != "true" || b.ExtFields["i"] != "" {
		t.Fatalf("batch header %v", b.ExtFields)
	}
}

// Every member of a batch carries a UNIQ_KEY of its own, as every client's
// messages do, and an idempotent batch its producer properties after it.
func TestBatchMembersCarryKeys(t *testing.T) {
	tg := target{topic: "T", queue: 1, broker: "b"}
	now := time.Unix(1000, 0)
	idem := &idemSeqs{id: "p1", epoch: map[string]int32{"b": 3}, next: map[target]int64{tg: 10}}
	for _, id := range []*idemSeqs{nil, idem} {
		body, _ := appendBatchMessages(nil, nil, []byte("x"), now, 7, 3, id, tg)
		keys := map[string]bool{}
		for i := 0; len(body) > 0; i++ {
			size := binary.BigEndian.Uint32(body)
			m := body[:size]
			body = body[size:]
			bodyLen := binary.BigEndian.Uint32(m[16:])
			props := m[22+bodyLen : 22+uint32(binary.BigEndian.Uint16(m[20+bodyLen:]))+bodyLen]
			key, ok := protocol.Property(props, protocol.PropUniqKey)
			if !ok || keys[key] {
				t.Fatalf("member %d: UNIQ_KEY %q (seen before %t) in %q", i, key, keys[key], props)
			}
			keys[key] = true
			seq, ok := protocol.Property(props, protocol.PropProducerSeq)
			if (id != nil) != ok || ok && seq != strconv.Itoa(10+i) {
				t.Fatalf("member %d: producer seq %q (%t) in %q", i, seq, ok, props)
			}
		}
		if len(keys) != 3 {
			t.Fatalf("%d members", len(keys))
		}
	}
}
