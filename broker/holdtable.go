package broker

import (
	"container/heap"
	"slices"
	"time"
)

// holdTable is the held-wait table as a pure state machine: waiters
// parked on one or more queues until a deadline. No goroutine, timer or
// clock read is inside it; its driver (heldPulls, hold.go) steps it with
// what happened (Park, Wake, Remove, Drain) and the time (Tick), and arms
// one timer for Next.
//
// A waiter is in the table from Park until the first of: Wake of one of
// its queues, Tick past its deadline, Remove, Drain. Each of those takes
// it off every queue it was parked on and returns it exactly once, so
// the caller that got it answers it.
//
// Deadlines sit in a binary heap: Park, Remove and each expiry cost
// O(log n); Next is O(1). Wake costs O(k log n) for k waiters on the
// queue, plus, for a waiter parked on several queues, a scan of the other
// queues' lists.
type holdTable[W comparable] struct {
	queues  map[holdKey][]W
	entries map[W]*holdEntry[W]
	byTime  deadlineHeap[W]
}

type holdEntry[W comparable] struct {
	w        W
	keys     []holdKey
	deadline time.Time
	index    int // in byTime
}

// Park parks w on keys (a key listed twice counts once) until deadline.
// A waiter already parked is left as it is and Park returns false.
func (t *holdTable[W]) Park(w W, keys []holdKey, deadline time.Time) bool {
	if t.entries == nil {
		t.queues = make(map[holdKey][]W)
		t.entries = make(map[W]*holdEntry[W])
	}
	if _, ok := t.entries[w]; ok {
		return false
	}
	e := &holdEntry[W]{w: w, deadline: deadline}
	t.entries[w] = e
	for _, k := range keys {
		if !slices.Contains(e.keys, k) {
			e.keys = append(e.keys, k)
			t.queues[k] = append(t.queues[k], w)
		}
	}
	heap.Push(&t.byTime, e)
	return true
}

// Wake takes every waiter parked on k off the table and returns them in
// the order they were parked.
func (t *holdTable[W]) Wake(k holdKey, dst []W) []W {
	list := t.queues[k]
	if len(list) == 0 {
		return dst
	}
	delete(t.queues, k)
	for _, w := range list {
		t.take(t.entries[w], k)
		dst = append(dst, w)
	}
	return dst
}

// Tick takes the waiters whose deadline is at or before now off the
// table and returns them, earliest deadline first.
func (t *holdTable[W]) Tick(now time.Time, dst []W) []W {
	for len(t.byTime) > 0 && !t.byTime[0].deadline.After(now) {
		e := t.byTime[0]
		t.take(e, holdKey{})
		dst = append(dst, e.w)
	}
	return dst
}

// Remove takes w off the table; false when it was not there (woken,
// expired or drained already).
func (t *holdTable[W]) Remove(w W) bool {
	e, ok := t.entries[w]
	if !ok {
		return false
	}
	t.take(e, holdKey{})
	return true
}

// Drain takes every waiter off the table and returns them, earliest
// deadline first.
func (t *holdTable[W]) Drain(dst []W) []W {
	for len(t.byTime) > 0 {
		e := t.byTime[0]
		t.take(e, holdKey{})
		dst = append(dst, e.w)
	}
	return dst
}

// Next is the earliest deadline in the table; false when it is empty.
func (t *holdTable[W]) Next() (time.Time, bool) {
	if len(t.byTime) == 0 {
		return time.Time{}, false
	}
	return t.byTime[0].deadline, true
}

// Len is the number of waiters parked.
func (t *holdTable[W]) Len() int { return len(t.entries) }

// take removes e from the heap, the index and the lists of its queues
// other than skip (whose list the caller dropped whole).
func (t *holdTable[W]) take(e *holdEntry[W], skip holdKey) {
	heap.Remove(&t.byTime, e.index)
	delete(t.entries, e.w)
	for _, k := range e.keys {
		if k == skip {
			continue
		}
		list := slices.DeleteFunc(t.queues[k], func(x W) bool { return x == e.w })
		if len(list) == 0 {
			delete(t.queues, k)
		} else {
			t.queues[k] = list
		}
	}
}

// deadlineHeap orders entries by deadline (container/heap).
type deadlineHeap[W comparable] []*holdEntry[W]

func (h deadlineHeap[W]) Len() int { return len(h) }
func (h deadlineHeap[W]) Less(i, j int) bool {
	return h[i].deadline.Before(h[j].deadline)
}
func (h deadlineHeap[W]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *deadlineHeap[W]) Push(x any) {
	e := x.(*holdEntry[W])
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *deadlineHeap[W]) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
