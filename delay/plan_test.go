package delay

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.UnixMilli(1_700_000_000_000)

func due(t *testing.T, p *plan, now time.Time) ([]int, bool) {
	t.Helper()
	lanes, save := p.Due(now, nil)
	return lanes, save
}

// Every lane runs once at start, then as its outcome says.
func TestPlanLaneStates(t *testing.T) {
	p := newPlan(3, time.Second)
	if next, ok := p.Next(); !ok || !next.IsZero() {
		t.Fatalf("a new plan's next is %v %v, want at once", next, ok)
	}
	lanes, save := due(t, p, t0)
	if !slices.Equal(lanes, []int{0, 1, 2}) || save {
		t.Fatalf("first Due: %v save %v", lanes, save)
	}
	if lanes, _ := due(t, p, t0); len(lanes) != 0 {
		t.Fatalf("lanes taken by Due ran again: %v", lanes)
	}
	p.Drained(0)
	p.WaitUntil(1, t0.Add(5*time.Second))
	p.Failed(2, t0)
	if next, ok := p.Next(); !ok || !next.Equal(t0.Add(retryDelay)) {
		t.Fatalf("next %v %v, want the retry at %v", next, ok, t0.Add(retryDelay))
	}
	// A millisecond before a wait ends nothing runs; at its end it does.
	if lanes, _ := due(t, p, t0.Add(retryDelay-time.Millisecond)); len(lanes) != 0 {
		t.Fatalf("ran early: %v", lanes)
	}
	if lanes, _ := due(t, p, t0.Add(retryDelay)); !slices.Equal(lanes, []int{2}) {
		t.Fatalf("at the retry time: %v", lanes)
	}
	p.Drained(2)
	if lanes, _ := due(t, p, t0.Add(5*time.Second-time.Millisecond)); len(lanes) != 0 {
		t.Fatalf("ran early: %v", lanes)
	}
	if lanes, _ := due(t, p, t0.Add(5*time.Second)); !slices.Equal(lanes, []int{1}) {
		t.Fatalf("at the head's due time: %v", lanes)
	}
	p.Drained(1)
	if _, ok := p.Next(); ok {
		t.Fatal("every lane idle and nothing unsaved, yet a next time")
	}
	// An idle lane runs when notified, and only then.
	p.Notify(0)
	if lanes, _ := due(t, p, t0.Add(time.Hour)); !slices.Equal(lanes, []int{0}) {
		t.Fatalf("after a notification: %v", lanes)
	}
	p.More(0)
	if lanes, _ := due(t, p, t0.Add(time.Hour)); !slices.Equal(lanes, []int{0}) {
		t.Fatalf("after a full batch: %v", lanes)
	}
}

// A notification that arrives while a lane runs is not lost to the
// outcome of the run that started before it.
func TestPlanNotifyWhileRunning(t *testing.T) {
	p := newPlan(1, time.Second)
	due(t, p, t0)
	p.Notify(0) // the source grew while the lane read it
	p.Drained(0)
	if lanes, _ := due(t, p, t0); !slices.Equal(lanes, []int{0}) {
		t.Fatalf("notification lost to Drained: %v", lanes)
	}
	p.Notify(0)
	p.WaitUntil(0, t0.Add(time.Hour))
	if lanes, _ := due(t, p, t0); !slices.Equal(lanes, []int{0}) {
		t.Fatalf("notification lost to WaitUntil: %v", lanes)
	}
	// A failed step still waits (a notification before it fails is moot).
	p.Notify(0)
	p.Failed(0, t0)
	if lanes, _ := due(t, p, t0); len(lanes) != 0 {
		t.Fatalf("a failed lane ran again at once: %v", lanes)
	}
}

// Progress is saved saveEvery after it first moved, once for any number
// of advances in between.
func TestPlanSave(t *testing.T) {
	p := newPlan(1, time.Second)
	due(t, p, t0)
	p.Drained(0)
	p.Advanced(t0)
	p.Advanced(t0.Add(600 * time.Millisecond))
	if next, ok := p.Next(); !ok || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next %v %v, want the save at +1s", next, ok)
	}
	if _, save := due(t, p, t0.Add(999*time.Millisecond)); save {
		t.Fatal("saved early")
	}
	if _, save := due(t, p, t0.Add(time.Second)); !save {
		t.Fatal("not saved at +1s")
	}
	if _, save := due(t, p, t0.Add(2*time.Second)); save {
		t.Fatal("saved twice")
	}
	if _, ok := p.Next(); ok {
		t.Fatal("a next time with nothing unsaved")
	}
}
