package broker

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ferrymq/ferry/commitlog"
)

// fakeFed is a consume-queue store's FedOffset with its doorbell.
type fakeFed struct {
	off   atomic.Int64
	bells commitlog.Bells
}

func (f *fakeFed) FedOffset() int64                    { return f.off.Load() }
func (f *fakeFed) WatchFed() (<-chan struct{}, func()) { return f.bells.Watch() }

func (f *fakeFed) feed(to int64) {
	f.off.Store(to)
	f.bells.Ring()
}

// TestReplMasterWorkWaitsForFedWithoutPolling: the wait a new master makes
// before it starts its deliverers (waitFed) runs on the synctest clock. It
// returns the moment FedOffset reaches the log's end at the election, with
// no time passing (a waiter polling on a ticker would still be asleep
// then), never before, and at once when its term ends or the broker stops.
func TestReplMasterWorkWaitsForFedWithoutPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type result struct {
			ok bool
			at time.Time
		}
		run := func(ctx context.Context, f *fakeFed, end int64, done <-chan struct{}) <-chan result {
			ch := make(chan result, 1)
			go func() {
				ok := waitFed(ctx, f, end, done)
				ch <- result{ok, time.Now()}
			}()
			return ch
		}
		// returned waits until the waiter has returned or is blocked.
		returned := func(ch <-chan result) (result, bool) {
			synctest.Wait()
			select {
			case r := <-ch:
				return r, true
			default:
				return result{}, false
			}
		}

		start := time.Now()
		f := &fakeFed{}
		ch := run(t.Context(), f, 1000, nil)
		if _, ok := returned(ch); ok {
			t.Fatal("waitFed returned with nothing fed")
		}
		f.feed(999)
		if _, ok := returned(ch); ok {
			t.Fatal("waitFed returned with FedOffset short of the end")
		}
		f.bells.Ring() // a ring with no advance
		if _, ok := returned(ch); ok {
			t.Fatal("waitFed returned on a ring that advanced nothing")
		}
		f.feed(1000)
		r, ok := returned(ch)
		if !ok {
			t.Fatal("waitFed still waits after FedOffset reached the end: it did not wake on the doorbell")
		}
		if !r.ok || !r.at.Equal(start) {
			t.Fatalf("waitFed = %v after %v, want true with no time passed", r.ok, r.at.Sub(start))
		}

		// Already fed: at once.
		if r, ok := returned(run(t.Context(), f, 1000, nil)); !ok || !r.ok {
			t.Fatalf("waitFed with the end already fed: returned %v, result %v", ok, r.ok)
		}

		// The term ends (the broker became a slave): it gives up at once.
		repl := &replication{}
		repl.mu.Lock()
		repl.nextTermLocked()
		done := repl.termDone
		repl.mu.Unlock()
		ch = run(t.Context(), f, 2000, done)
		if _, ok := returned(ch); ok {
			t.Fatal("waitFed returned in a current term with the end not fed")
		}
		repl.mu.Lock()
		repl.nextTermLocked()
		repl.mu.Unlock()
		if r, ok := returned(ch); !ok || r.ok {
			t.Fatalf("waitFed after its term ended: returned %v, result %v, want false at once", ok, r.ok)
		}

		// The broker stops.
		ctx, cancel := context.WithCancel(t.Context())
		ch = run(ctx, f, 2000, nil)
		if _, ok := returned(ch); ok {
			t.Fatal("waitFed returned with the end not fed")
		}
		cancel()
		if r, ok := returned(ch); !ok || r.ok {
			t.Fatalf("waitFed after the broker stopped: returned %v, result %v, want false at once", ok, r.ok)
		}
		if !time.Now().Equal(start) {
			t.Fatalf("the fake clock moved %v: something waited on a timer", time.Since(start))
		}
	})
}
