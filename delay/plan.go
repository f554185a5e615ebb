package delay

import "time"

// plan decides when each deliverer runs. It is the scheduler's pure part:
// no goroutine, no timer, no clock read. The driver (Service.run) tells it
// what happened and what time it is, runs the lanes Due returns, and arms
// its one timer for Next.
//
// A lane is one deliverer: lanes 0 … n-1 are the delay levels' schedule
// queues, lane n is the timer index. A lane is in one of three states:
//
//	ready        run at the next Due: at start, after a notification that
//	             its source grew, after a full batch
//	waiting(t)   its head entry is due at t, or a failed step retries at t
//	idle         its source is drained: it runs when notified
//
// Unsaved progress is saved saveEvery after the first advance that made
// it unsaved (and by the driver on Close).
type plan struct {
	lanes     []laneState
	saveEvery time.Duration
	saveAt    time.Time // zero: nothing unsaved
}

type laneState struct {
	ready bool
	at    time.Time // waiting until at; zero with !ready: idle
}

// retryDelay is how long a lane whose step failed (a read or a put)
// waits before it tries again.
const retryDelay = time.Second

// newPlan returns a plan of n lanes, all ready: at start every deliverer
// looks at its source once.
func newPlan(n int, saveEvery time.Duration) *plan {
	p := &plan{lanes: make([]laneState, n), saveEvery: saveEvery}
	for i := range p.lanes {
		p.lanes[i].ready = true
	}
	return p
}

// Notify marks lane l's source as grown: the lane runs at the next Due.
func (p *plan) Notify(l int) { p.lanes[l] = laneState{ready: true} }

// Due returns the lanes to run at now (ready, or waiting until a time at
// or before now), taking them out of their state: each must be given one
// of Drained, WaitUntil, More or Failed after it ran. save is true when
// the unsaved progress is due to be saved; the driver saves it (and calls
// Advanced again if that failed).
func (p *plan) Due(now time.Time, dst []int) (lanes []int, save bool) {
	lanes = dst[:0]
	for i := range p.lanes {
		st := &p.lanes[i]
		if st.ready || (!st.at.IsZero() && !st.at.After(now)) {
			lanes = append(lanes, i)
			*st = laneState{}
		}
	}
	if !p.saveAt.IsZero() && !p.saveAt.After(now) {
		p.saveAt = time.Time{}
		save = true
	}
	return lanes, save
}

// Drained: lane l read its source to the end; it waits for a
// notification.
func (p *plan) Drained(l int) {
	if !p.lanes[l].ready { // a notification that came while it ran wins
		p.lanes[l] = laneState{}
	}
}

// WaitUntil: lane l's next entry is due at t.
func (p *plan) WaitUntil(l int, t time.Time) {
	if !p.lanes[l].ready {
		p.lanes[l] = laneState{at: t}
	}
}

// More: lane l stopped at a full batch with due entries left.
func (p *plan) More(l int) { p.lanes[l] = laneState{ready: true} }

// Failed: lane l's step failed at now; it tries again after retryDelay,
// or sooner when notified.
func (p *plan) Failed(l int, now time.Time) { p.lanes[l] = laneState{at: now.Add(retryDelay)} }

// Advanced: a lane's progress moved at now; it is saved saveEvery later
// unless a save is already planned.
func (p *plan) Advanced(now time.Time) {
	if p.saveAt.IsZero() {
		p.saveAt = now.Add(p.saveEvery)
	}
}

// Next is the earliest time something is to run: a lane's wait or the
// save. ok is false when every lane is idle and nothing is unsaved. A
// ready lane makes it the zero time (at once).
func (p *plan) Next() (t time.Time, ok bool) {
	consider := func(at time.Time) {
		if !ok || at.Before(t) {
			t, ok = at, true
		}
	}
	for _, st := range p.lanes {
		switch {
		case st.ready:
			return time.Time{}, true
		case !st.at.IsZero():
			consider(st.at)
		}
	}
	if !p.saveAt.IsZero() {
		consider(p.saveAt)
	}
	return t, ok
}
