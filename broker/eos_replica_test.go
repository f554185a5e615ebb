package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/idempotence"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TestReplicaProducerStateFollowsMaster: the idempotent producers' state
// and the dedup keys follow the master of a replica group. After a
// switch-over the new master answers a retry of a batch the old master
// stored with the original offsets, takes the next sequence, keeps an
// older epoch fenced even though no stored message carries the newer
// one, and drops a copy of a message whose UNIQ_KEY the old master
// stored.
func TestReplicaProducerStateFollowsMaster(t *testing.T) {
	g := startReplTestGroup(t, 2, nil)
	m := g.master(2)
	s := g.slave(m)
	c := newClient(t, g.brokers[m])
	createDedupTopic(t, c, "d", time.Hour)
	ep := c.initProducer("p").Epoch
	first := c.sendIdemBatch("t", 0, "p", ep, 0, "a", "b")
	mustOK(t, first)
	dd := c.send("d", 0, "x", map[string]string{protocol.PropUniqKey: "K1"})
	mustOK(t, dd)
	// A second instance of producer q starts (fencing the first) and has
	// sent nothing yet: only the epoch record knows of it.
	old := c.initProducer("q").Epoch
	mustOK(t, c.send("t", 1, "q0", idemProps("q", old, 0)))
	newer := c.initProducer("q").Epoch
	if newer <= old {
		t.Fatalf("second init gave epoch %d after %d", newer, old)
	}
	end := g.brokers[m].clog.WrittenOffset()
	waitFor(t, 15*time.Second, "the slave holding the master's log", func() bool {
		return g.brokers[s].cq.DispatchedOffset() >= end
	})

	// An INIT_PRODUCER_ID that reaches the slave (a client with an old
	// route) is refused and fences nothing there.
	cs := newClient(t, g.brokers[s])
	if r := cs.invoke(remoting.NewRequest(protocol.ReqInitProducerID, map[string]string{"producerId": "p"}, nil)); r.Code != protocol.RespServiceNotAvailable {
		t.Fatalf("INIT_PRODUCER_ID on the slave answered %d %s", r.Code, r.Remark)
	}

	g.elect(s)
	c2 := newClient(t, g.brokers[s])
	var again = c2.sendIdemBatch("t", 0, "p", ep, 0, "a", "b")
	waitFor(t, 15*time.Second, "a send on the new master", func() bool {
		if again.Code == protocol.RespSuccess {
			return true
		}
		again = c2.sendIdemBatch("t", 0, "p", ep, 0, "a", "b")
		return again.Code == protocol.RespSuccess
	})
	if again.ExtFields["duplicate"] != "true" || again.ExtFields["queueOffset"] != first.ExtFields["queueOffset"] {
		t.Fatalf("retry on the new master answered %v, original %v", again.ExtFields, first.ExtFields)
	}
	mustOK(t, c2.sendIdemBatch("t", 0, "p", ep, 2, "c"))
	if r := c2.send("t", 1, "q1", idemProps("q", old, 1)); r.Code != protocol.RespProducerFenced {
		t.Fatalf("the fenced instance's send on the new master answered %d %s", r.Code, r.Remark)
	}
	mustOK(t, c2.send("t", 1, "q1", idemProps("q", newer, 1)))
	ddAgain := c2.send("d", 1, "x", map[string]string{protocol.PropUniqKey: "K1"})
	mustOK(t, ddAgain)
	if ddAgain.ExtFields["duplicate"] != "true" || ddAgain.ExtFields["queueOffset"] != dd.ExtFields["queueOffset"] ||
		ddAgain.ExtFields["queueId"] != "0" {
		t.Fatalf("dedup copy on the new master answered %v, original %v", ddAgain.ExtFields, dd.ExtFields)
	}
	nb := g.brokers[s]
	if got := pullAll(t, nb, c2, "t", 0); strings.Join(got, "") != "abc" {
		t.Fatalf("queue 0 holds %v, want a b c once each", got)
	}
	if got := pullAll(t, nb, c2, "t", 1); strings.Join(got, " ") != "q0 q1" {
		t.Fatalf("queue 1 holds %v", got)
	}
	if got := pullAll(t, nb, c2, "d", 1); len(got) != 0 {
		t.Fatalf("the dedup copy was stored again: %v", got)
	}
}

// TestProducerStateRebuiltBeforeCut: a replica about to cut its log back
// (the new master never had its tail) forgets the batches and dedup keys
// of the messages cut, keeps those before, and replaces a producer
// snapshot that covers the tail by one that does not.
func TestProducerStateRebuiltBeforeCut(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	createDedupTopic(t, c, "d", time.Hour)
	ep := c.initProducer("p").Epoch
	mustOK(t, c.send("t", 0, "a", idemProps("p", ep, 0)))
	mustOK(t, c.send("d", 0, "x", map[string]string{protocol.PropUniqKey: "K1"}))
	cut := b.clog.WrittenOffset()
	mustOK(t, c.send("t", 0, "b", idemProps("p", ep, 1)))
	mustOK(t, c.send("d", 0, "y", map[string]string{protocol.PropUniqKey: "K2"}))
	end := b.clog.WrittenOffset()
	waitFor(t, 10*time.Second, "the log applied", func() bool { return b.idem.applier.applied() >= end })
	if err := b.idem.snapshot(time.Now()); err != nil { // covers the tail
		t.Fatal(err)
	}
	if err := b.idem.rebuild(cut); err != nil {
		t.Fatal(err)
	}
	b.idem.mu.Lock()
	dup, _, dupErr := b.idem.tab.Check("p", ep, idempotence.Queue{Topic: "t", ID: 0}, 0, 1)
	next, _, nextErr := b.idem.tab.Check("p", ep, idempotence.Queue{Topic: "t", ID: 0}, 1, 1)
	b.idem.mu.Unlock()
	if dupErr != nil || dup != idempotence.Duplicate || nextErr != nil || next != idempotence.Append {
		t.Fatalf("after the rebuild: seq 0 %v %v, seq 1 %v %v; want a duplicate and the next", dup, dupErr, next, nextErr)
	}
	notBefore := time.Now().Add(-time.Hour).UnixMilli()
	if _, ok, err := b.dedup.find(dedupKey("d", "K1"), notBefore); err != nil || !ok {
		t.Fatalf("K1, stored before the cut: %v %v", ok, err)
	}
	if _, ok, err := b.dedup.find(dedupKey("d", "K2"), notBefore); err != nil || ok {
		t.Fatalf("K2, stored past the cut, still known: %v %v", ok, err)
	}
	v, closer, err := b.meta.db.Get([]byte(producerSnapKey))
	if err != nil {
		t.Fatal(err)
	}
	_, covers, err := idempotence.Restore(v)
	closer.Close()
	if err != nil || covers > cut {
		t.Fatalf("snapshot covers %d (%v), past the cut at %d", covers, err, cut)
	}
}
