package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// heldPulls parks the requests that found nothing (long polling) until
// one of their queues grows, their wait ends or the broker stops: remoting
// pulls (one queue each) and HTTP receives and queue reads (one or more
// queues).
//
// The decisions are holdTable's (holdtable.go), a pure state machine of
// waiters by queue and by deadline. This driver adds the lock, the clock
// and one timer for every held wait, armed for the table's earliest
// deadline; when it fires, the waiters past their deadline are answered
// and it is armed for the next one.
//
// No goroutine waits for a held pull. The consume queue's dispatcher calls
// wakeHeld (through consumequeue.Options.OnNotify) for each armed
// queue it appended to, and that queue's held pulls are read and their
// answers queued on their connections right there, on the dispatcher's
// goroutine: between an entry becoming visible and its pull's answer
// there is no goroutine hand-off, which at low rates is a thread wake-up
// on another core. The cost moves to the dispatcher: a queue with many
// held pulls (say, broadcast consumers) costs it one read and one answer
// per pull before its next batch. A held HTTP request is a fasthttp
// handler blocked on its waiter's channel (no timer, no rescan): the same
// wake-up closes it, and the handler reads and answers. A pull whose
// connection closed stays parked until its queue grows or its wait ends.
//
// mu guards the table, the timer and closed; it is never held while a
// pull is read or answered or a waiter's channel is closed (each waiter
// comes off the table once, and only its taker answers it).
type heldPulls struct {
	// queues is the consume-queue store: a held wait arms its queues'
	// notifications and looks at their ends. Set once the store is open,
	// before anything parks (the store's dispatcher calls wakeHeld).
	queues heldQueues
	// pullOnce reads a pull's queue and builds its answer; empty when
	// nothing passed its filter (queuereader.go). Set once the reader
	// exists, before Start.
	pullOnce func(req *remoting.Command, p *pullRequest, filter tagFilter) (*remoting.Command, bool)
	cfg      func() *Config
	stop     <-chan struct{} // closed when the broker stops
	// schedule is the delay scheduler, told of appends to the schedule
	// topic's queues (it arms their notifications itself).
	schedule atomic.Pointer[delay.Service]
	// onExpire answers waiters whose wait ended (expireHeld).
	onExpire func([]*waiter)
	waiters  atomic.Int64 // HTTP long polls held now (maxHTTPWaiters)

	mu      sync.Mutex
	table   holdTable[*waiter]
	timer   *time.Timer // the one timer, armed for timerAt; nil until first needed
	timerAt time.Time   // zero: not armed
	pulls   int         // remoting pulls parked (ferry_pulls_held)
	closed  bool        // the broker is stopping: answer at once, hold nothing
}

// heldQueues is what held waits need of the consume queues.
type heldQueues interface {
	Notify(topic string, queueID int32) <-chan struct{}
	MaxOffset(topic string, queueID int32) int64
}

func newHeldPulls(cfg func() *Config, stop <-chan struct{}) *heldPulls {
	hs := &heldPulls{cfg: cfg, stop: stop}
	hs.onExpire = hs.expireHeld
	return hs
}

type holdKey struct {
	topic string
	queue int32
}

// waiter is one held request: a remoting pull (pull set), answered by
// whoever takes it off the table, or an HTTP request (woken set), whose
// handler is blocked on woken and answers itself once it is closed.
type waiter struct {
	pull  *heldPull
	woken chan struct{}
}

type heldPull struct {
	c        *remoting.Conn
	req      *remoting.Command
	p        pullRequest
	filter   tagFilter
	deadline time.Time
}

// park puts w on keys until deadline and arms the timer if that deadline
// is the earliest; false when the broker is stopping (w was not parked).
func (hs *heldPulls) park(w *waiter, keys []holdKey, deadline time.Time) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed {
		return false
	}
	if hs.table.Park(w, keys, deadline) && w.pull != nil {
		hs.pulls++
	}
	hs.armLocked()
	return true
}

// wake takes the waiters parked on k.
func (hs *heldPulls) wake(k holdKey) []*waiter {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	list := hs.table.Wake(k, nil)
	hs.countOutLocked(list)
	// The timer is left armed: if it fires for a waiter gone, it finds
	// nothing due and re-arms for the next.
	return list
}

// remove takes w off the table; false when someone else took it.
func (hs *heldPulls) remove(w *waiter) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if !hs.table.Remove(w) {
		return false
	}
	hs.countOutLocked([]*waiter{w})
	return true
}

// expire takes the waiters whose deadline is at or before now and
// re-arms the timer for the next deadline.
func (hs *heldPulls) expire(now time.Time) []*waiter {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.timerAt = time.Time{} // it fired
	list := hs.table.Tick(now, nil)
	hs.countOutLocked(list)
	hs.armLocked()
	return list
}

// release takes every waiter and makes later parks fail.
func (hs *heldPulls) release() []*waiter {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.closed = true
	list := hs.table.Drain(nil)
	hs.countOutLocked(list)
	if hs.timer != nil {
		hs.timer.Stop()
		hs.timerAt = time.Time{}
	}
	return list
}

func (hs *heldPulls) countOutLocked(list []*waiter) {
	for _, w := range list {
		if w.pull != nil {
			hs.pulls--
		}
	}
}

// armLocked sets the timer for the table's earliest deadline unless it is
// armed for that already or earlier (an early fire re-arms).
func (hs *heldPulls) armLocked() {
	next, ok := hs.table.Next()
	if !ok || (!hs.timerAt.IsZero() && !hs.timerAt.After(next)) {
		return
	}
	d := time.Until(next)
	if hs.timer == nil {
		hs.timer = time.AfterFunc(d, hs.fire)
	} else {
		hs.timer.Reset(d)
	}
	hs.timerAt = next
}

// fire is the timer's callback.
func (hs *heldPulls) fire() {
	if list := hs.expire(time.Now()); len(list) > 0 {
		hs.onExpire(list)
	}
}

// heldCount is the number of remoting pulls held now.
func (hs *heldPulls) heldCount() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.pulls
}

// holdPull parks a pull that found its queue empty.
func (hs *heldPulls) holdPull(c *remoting.Conn, req *remoting.Command, p pullRequest, filter tagFilter) {
	h := &heldPull{c: c, req: req, p: p, filter: filter,
		deadline: time.Now().Add(min(p.suspend, hs.cfg().LongPollMax.D()))}
	hs.parkPull(h)
}

// parkPull parks h on its queue, then looks at the queue once more: an
// append before the Notify below is seen by that look, one after it calls
// wakeHeld.
func (hs *heldPulls) parkPull(h *heldPull) {
	w := &waiter{pull: h}
	if !hs.park(w, []holdKey{{h.p.topic, h.p.queueID}}, h.deadline) {
		hs.answerHeld(h)
		return
	}
	hs.queues.Notify(h.p.topic, h.p.queueID)
	if hs.queues.MaxOffset(h.p.topic, h.p.queueID) > h.p.offset {
		hs.wakeHeld(h.p.topic, h.p.queueID)
	}
}

// httpPoll is one HTTP request's long poll. Its reader (ReadQueue,
// Receive: package httpapi's handlers call them) loops:
//
//	for {
//		read the queues
//		if found something || p.over() { answer; return }
//		if err := p.wait(keys); err != nil { answer the error; return }
//	}
//
// and defers p.end(). The first wait parks the request on keys (arming
// their notifications) and returns at once, so that the handler reads
// once more: an append before the arming is seen by that read, one after
// it wakes the waiter. The next wait blocks the handler on the waiter
// until an append to one of keys, the deadline (the held-wait table's
// one timer) or the broker stopping; then the handler reads again, and
// the cycle repeats until it finds something or is over.
//
// The fasthttp worker stays with its request while it is held: fasthttp
// answers when the handler returns, and a hijacked connection would lose
// keep-alive. So the worker is parked on one channel, with no timer of
// its own and no periodic wake-up, and maxHTTPWaiters bounds how many are.
type httpPoll struct {
	hs       *heldPulls
	deadline time.Time
	w        *waiter // parked, not yet woken
	counted  bool    // in hs.waiters
	stopping bool
}

func (hs *heldPulls) newHTTPPoll(wait time.Duration) *httpPoll {
	return &httpPoll{hs: hs, deadline: time.Now().Add(min(wait, hs.cfg().LongPollMax.D()))}
}

// maxHTTPWaiters caps the long-polling HTTP requests held at once; past
// it a request that would wait is answered 429.
const maxHTTPWaiters = 8192

// waitBegin counts a long-polling request in; false when too many are
// held already.
func (hs *heldPulls) waitBegin() bool {
	if hs.waiters.Add(1) > maxHTTPWaiters {
		hs.waiters.Add(-1)
		return false
	}
	return true
}

func (hs *heldPulls) waitEnd() { hs.waiters.Add(-1) }

// over reports whether the poll must answer with what it read: its wait
// passed or the broker is stopping.
func (p *httpPoll) over() bool { return p.stopping || !time.Now().Before(p.deadline) }

// wait parks the request on keys, or blocks until it is woken; see
// httpPoll. It fails when too many requests are held already.
func (p *httpPoll) wait(keys []holdKey) error {
	if !p.counted {
		if !p.hs.waitBegin() {
			return fmt.Errorf("%w: too many long-polling requests held", protocol.ErrHTTPBusy)
		}
		p.counted = true
	}
	if p.w == nil {
		w := &waiter{woken: make(chan struct{})}
		if !p.hs.park(w, keys, p.deadline) {
			p.stopping = true
			return nil
		}
		for _, k := range keys {
			p.hs.queues.Notify(k.topic, k.queue)
		}
		p.w = w
		return nil
	}
	select {
	case <-p.w.woken:
	case <-p.hs.stop:
		p.stopping = true
		p.hs.remove(p.w)
	}
	p.w = nil
	return nil
}

// end takes the request off the table if it is still parked and out of
// the count of held requests.
func (p *httpPoll) end() {
	if p.w != nil {
		p.hs.remove(p.w)
	}
	if p.counted {
		p.hs.waitEnd()
	}
}

// wakeHeld answers the pulls held on (topic, queueID) that now find
// messages; a pull that still finds none is parked again, for the rest of
// its suspend time. Pulls of closed connections are dropped. HTTP
// requests held on the queue are woken. An append to the schedule topic
// is passed on to the delay scheduler.
func (hs *heldPulls) wakeHeld(topic string, queueID int32) {
	if topic == protocol.ScheduleTopic {
		if s := hs.schedule.Load(); s != nil {
			s.Wake(queueID)
		}
	}
	for _, w := range hs.wake(holdKey{topic, queueID}) {
		h := w.pull
		if h == nil {
			close(w.woken)
			continue
		}
		if isClosed(h.c) {
			continue
		}
		resp, empty := hs.pullOnce(h.req, &h.p, h.filter)
		if empty && time.Now().Before(h.deadline) {
			hs.parkPull(h)
			continue
		}
		_ = h.c.Reply(resp)
	}
}

// expireHeld answers waiters whose wait ended or that the broker released.
func (hs *heldPulls) expireHeld(list []*waiter) {
	for _, w := range list {
		if w.pull == nil {
			close(w.woken)
			continue
		}
		hs.answerHeld(w.pull)
	}
}

// releaseHeld answers every held request and makes later ones answer at
// once; Shutdown calls it before it waits for in-flight requests.
func (hs *heldPulls) releaseHeld() {
	hs.expireHeld(hs.release())
}

// answerHeld answers h with whatever its queue holds now.
func (hs *heldPulls) answerHeld(h *heldPull) {
	if isClosed(h.c) {
		return
	}
	resp, _ := hs.pullOnce(h.req, &h.p, h.filter)
	_ = h.c.Reply(resp)
}

func isClosed(c *remoting.Conn) bool {
	select {
	case <-c.Closed():
		return true
	default:
		return false
	}
}
