package broker

import (
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestHoldExpiryOneTimer drives the held-wait driver on a synctest clock:
// every waiter is answered exactly at its deadline, not before, by the
// one timer; a waiter woken or removed first is not answered again; the
// release answers the rest at once.
func TestHoldExpiryOneTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		expiredAt := map[*waiter]time.Time{}
		hs := &heldPulls{onExpire: func(list []*waiter) {
			mu.Lock()
			defer mu.Unlock()
			for _, w := range list {
				if _, dup := expiredAt[w]; dup {
					t.Errorf("waiter answered twice")
				}
				expiredAt[w] = time.Now()
			}
		}}
		start := time.Now()
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 500
		ws := make([]*waiter, n)
		deadline := map[*waiter]time.Time{}
		var timer *time.Timer
		for i := range ws {
			ws[i] = &waiter{woken: make(chan struct{})}
			d := start.Add(time.Duration(1+rng.IntN(30_000)) * time.Millisecond)
			deadline[ws[i]] = d
			if !hs.park(ws[i], []holdKey{{"t", int32(i % 4)}}, d) {
				t.Fatal("park refused")
			}
			if timer == nil {
				timer = hs.timer
			} else if hs.timer != timer {
				t.Fatal("a second timer")
			}
		}
		// Queue 3's waiters are woken before their deadline; one more is removed.
		synctest.Wait()
		woken := hs.wake(holdKey{"t", 3})
		if len(woken) != n/4 {
			t.Fatalf("woke %d waiters of queue 3, want %d", len(woken), n/4)
		}
		if !hs.remove(ws[0]) || hs.remove(ws[0]) {
			t.Fatal("remove: not exactly once")
		}
		gone := map[*waiter]bool{ws[0]: true}
		for _, w := range woken {
			gone[w] = true
		}
		// Walk to 20 s, checking as we go that nothing expires early.
		for step := 0; step < 20; step++ {
			<-time.After(time.Second)
			synctest.Wait()
			now := time.Now()
			mu.Lock()
			for w, d := range deadline {
				got, expired := expiredAt[w]
				switch {
				case gone[w] && expired:
					t.Fatalf("a woken or removed waiter expired")
				case gone[w]:
				case !d.After(now) && !expired:
					t.Fatalf("waiter due at %v not answered by %v", d.Sub(start), now.Sub(start))
				case expired && !got.Equal(d):
					t.Fatalf("waiter due at %v answered at %v", d.Sub(start), got.Sub(start))
				}
			}
			mu.Unlock()
		}
		// The broker stops: the rest are answered at once, later parks fail.
		rest := hs.release()
		mu.Lock()
		for _, w := range rest {
			if _, expired := expiredAt[w]; expired || gone[w] || !deadline[w].After(time.Now()) {
				t.Fatal("release returned a waiter already answered")
			}
		}
		if len(rest)+len(expiredAt)+len(gone) != n {
			t.Fatalf("%d released + %d expired + %d woken/removed != %d", len(rest), len(expiredAt), len(gone), n)
		}
		mu.Unlock()
		if hs.park(&waiter{}, []holdKey{{"t", 0}}, time.Now().Add(time.Second)) {
			t.Fatal("parked after release")
		}
		<-time.After(time.Minute) // the stopped timer does not fire
		synctest.Wait()
	})
}

// TestHoldEarlierDeadlineRearms: a waiter parked with an earlier deadline
// than the armed one is answered at its own deadline.
func TestHoldEarlierDeadlineRearms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := make(chan time.Time, 2)
		hs := &heldPulls{onExpire: func(list []*waiter) {
			for range list {
				got <- time.Now()
			}
		}}
		start := time.Now()
		hs.park(&waiter{}, []holdKey{{"t", 0}}, start.Add(time.Minute))
		hs.park(&waiter{}, []holdKey{{"t", 0}}, start.Add(time.Second))
		if at := <-got; at.Sub(start) != time.Second {
			t.Fatalf("first answered at %v, want 1s", at.Sub(start))
		}
		if at := <-got; at.Sub(start) != time.Minute {
			t.Fatalf("second answered at %v, want 1m", at.Sub(start))
		}
		hs.release()
	})
}
