package broker

import (
	"slices"
	"testing"
	"time"
)

var holdT0 = time.Unix(1_700_000_000, 0)

func at(ms int) time.Time { return holdT0.Add(time.Duration(ms) * time.Millisecond) }

// TestHoldTable steps the table by hand: waiters leave it exactly once,
// by the first of a wake of any of their queues, their deadline, a
// removal or a drain.
func TestHoldTable(t *testing.T) {
	var tb holdTable[string]
	ka, kb, kc := holdKey{"t", 0}, holdKey{"t", 1}, holdKey{"u", 0}
	tb.Park("p1", []holdKey{ka}, at(300))
	tb.Park("p2", []holdKey{ka}, at(100))
	tb.Park("h1", []holdKey{ka, kb, kb}, at(200)) // kb twice counts once
	tb.Park("h2", []holdKey{kb, kc}, at(400))
	if tb.Park("p1", []holdKey{kc}, at(50)) {
		t.Fatal("a parked waiter was parked again")
	}
	if next, ok := tb.Next(); !ok || !next.Equal(at(100)) || tb.Len() != 4 {
		t.Fatalf("next %v %v, %d parked", next, ok, tb.Len())
	}
	if got := tb.Tick(at(99), nil); len(got) != 0 {
		t.Fatalf("expired before its deadline: %v", got)
	}
	if got := tb.Tick(at(100), nil); !slices.Equal(got, []string{"p2"}) {
		t.Fatalf("at 100ms: %v", got)
	}
	// A wake of ka takes p1 and h1 (h1 off kb too), in park order.
	if got := tb.Wake(ka, nil); !slices.Equal(got, []string{"p1", "h1"}) {
		t.Fatalf("wake a: %v", got)
	}
	if got := tb.Wake(ka, nil); len(got) != 0 {
		t.Fatalf("woken twice: %v", got)
	}
	if got := tb.Tick(at(300), nil); len(got) != 0 {
		t.Fatalf("woken waiters expired too: %v", got)
	}
	if got := tb.Wake(kb, nil); !slices.Equal(got, []string{"h2"}) {
		t.Fatalf("wake b: %v", got)
	}
	if got := tb.Wake(kc, nil); len(got) != 0 || tb.Len() != 0 {
		t.Fatalf("h2 still on c after a wake of b: %v, %d parked", got, tb.Len())
	}
	if _, ok := tb.Next(); ok {
		t.Fatal("an empty table has a next deadline")
	}

	tb.Park("x", []holdKey{ka}, at(500))
	tb.Park("y", []holdKey{ka}, at(600))
	tb.Park("z", []holdKey{kb}, at(550))
	if !tb.Remove("x") || tb.Remove("x") {
		t.Fatal("remove: not exactly once")
	}
	if next, _ := tb.Next(); !next.Equal(at(550)) {
		t.Fatalf("next after removing the earliest: %v", next)
	}
	if got := tb.Drain(nil); !slices.Equal(got, []string{"z", "y"}) || tb.Len() != 0 {
		t.Fatalf("drain: %v, %d left", got, tb.Len())
	}
	if got := tb.Wake(ka, nil); len(got) != 0 {
		t.Fatalf("drained waiter woken: %v", got)
	}
}

// TestHoldTableExpiryOrder: many waiters with the same and different
// deadlines leave in deadline order, each at its deadline.
func TestHoldTableExpiryOrder(t *testing.T) {
	var tb holdTable[int]
	for i := range 1000 {
		tb.Park(i, []holdKey{{"t", int32(i % 7)}}, at((i*7919)%500))
	}
	n := 0
	for ms := range 500 {
		for _, w := range tb.Tick(at(ms), nil) {
			if (w*7919)%500 != ms {
				t.Fatalf("waiter %d (deadline %dms) expired at %dms", w, (w*7919)%500, ms)
			}
			n++
		}
	}
	if n != 1000 || tb.Len() != 0 {
		t.Fatalf("%d expired, %d left", n, tb.Len())
	}
}
