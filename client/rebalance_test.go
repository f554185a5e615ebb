package client

import (
	"fmt"
	"testing"
)

func queuesOf(topic string, brokers []string, n int) []MessageQueue {
	var qs []MessageQueue
	for _, b := range brokers {
		for i := 0; i < n; i++ {
			qs = append(qs, MessageQueue{Topic: topic, BrokerName: b, QueueID: i})
		}
	}
	return qs
}

func TestAllocateAveragely(t *testing.T) {
	qs := queuesOf("t", []string{"b", "a"}, 4) // unsorted on purpose
	for _, tc := range []struct {
		ids  []string
		self string
		want string
	}{
		{[]string{"c1"}, "c1", "[t@a#0 t@a#1 t@a#2 t@a#3 t@b#0 t@b#1 t@b#2 t@b#3]"},
		{[]string{"c2", "c1"}, "c1", "[t@a#0 t@a#1 t@a#2 t@a#3]"},
		{[]string{"c2", "c1"}, "c2", "[t@b#0 t@b#1 t@b#2 t@b#3]"},
		{[]string{"c1", "c2", "c3"}, "c1", "[t@a#0 t@a#1 t@a#2]"},
		{[]string{"c1", "c2", "c3"}, "c2", "[t@a#3 t@b#0 t@b#1]"},
		{[]string{"c1", "c2", "c3"}, "c3", "[t@b#2 t@b#3]"},
		{[]string{"c1", "c2"}, "c9", "[]"},
	} {
		got := fmt.Sprint(AllocateAveragely(qs, tc.ids, tc.self))
		if got != tc.want {
			t.Errorf("ids %v self %s: got %s, want %s", tc.ids, tc.self, got, tc.want)
		}
	}
}

// Every queue is owned by exactly one member, the shares differ by at most
// one, and the result does not depend on input order.
func TestAllocateAveragelyPartition(t *testing.T) {
	for nq := 0; nq <= 9; nq++ {
		for nc := 1; nc <= 12; nc++ {
			qs := queuesOf("t", []string{"x"}, nq)
			var ids []string
			for i := nc - 1; i >= 0; i-- {
				ids = append(ids, fmt.Sprintf("c%02d", i))
			}
			owner := map[MessageQueue]string{}
			lo, hi := nq, 0
			for _, id := range ids {
				mine := AllocateAveragely(qs, ids, id)
				lo, hi = min(lo, len(mine)), max(hi, len(mine))
				for _, q := range mine {
					if o, dup := owner[q]; dup {
						t.Fatalf("%d queues %d clients: %v owned by %s and %s", nq, nc, q, o, id)
					}
					owner[q] = id
				}
			}
			if len(owner) != nq || hi-lo > 1 {
				t.Fatalf("%d queues %d clients: %d owned, shares %d..%d", nq, nc, len(owner), lo, hi)
			}
		}
	}
}

func TestProcessQueueCommitOffset(t *testing.T) {
	q := newProcessQueue(t.Context(), MessageQueue{Topic: "t"}, 10)
	defer q.cancel()
	msgs := []*MessageExt{{QueueOffset: 10}, {QueueOffset: 11}, {QueueOffset: 13}} // 12 filtered out
	for _, m := range msgs {
		m.Body = []byte("xx")
	}
	q.add(msgs, 14)
	if off := q.commitOffset(); off != 10 {
		t.Fatalf("nothing consumed: %d", off)
	}
	q.done(msgs[1:2])
	if off := q.commitOffset(); off != 10 {
		t.Fatalf("11 consumed, 10 in flight: %d", off)
	}
	if n, b := q.cached(); n != 2 || b != 4 {
		t.Fatalf("cached %d msgs %d bytes", n, b)
	}
	q.done(msgs[:1])
	if off := q.commitOffset(); off != 13 {
		t.Fatalf("10, 11 consumed: %d", off)
	}
	q.done(msgs[2:])
	if off := q.commitOffset(); off != 14 {
		t.Fatalf("all consumed: %d", off)
	}
}
