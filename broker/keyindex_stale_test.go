package broker

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// TestMessageByIDStaleEntry: a key-index entry whose record the log lost
// (it recovered to below it, and another record took the place) does not
// find that other record.
func TestMessageByIDStaleEntry(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	resp := c.send("orders", 0, "real", map[string]string{protocol.PropUniqKey: "U-REAL"})
	mustOK(t, resp)
	off, err := strconv.ParseInt(resp.StringOr("queueOffset", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the key index to be fed", func() bool { return b.cq.FedOffset() >= b.clog.WrittenOffset() })
	es, err := b.cq.Get("orders", 0, off, 1, nil)
	if err != nil || len(es) != 1 {
		t.Fatalf("%v %v", es, err)
	}
	ghost := consumequeue.Record{Entry: es[0], Topic: []byte("orders"),
		Properties: protocol.EncodeProperties(map[string]string{protocol.PropUniqKey: "U-LOST"})}
	if err := b.keys.Dispatch([]consumequeue.Record{ghost}); err != nil {
		t.Fatal(err)
	}
	if raw, err := b.messages.byID("U-LOST"); !errors.Is(err, ErrMessageNotFound) {
		t.Fatalf("a stale entry found %d bytes (%v)", len(raw), err)
	}
	if _, err := b.messages.byID("U-REAL"); err != nil {
		t.Fatal(err)
	}
}
