package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
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
