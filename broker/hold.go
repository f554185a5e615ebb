package broker

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// pullHolds parks the pulls that found nothing (long polling) until their
// queue grows, their suspend time ends or the broker stops.
//
// No goroutine waits for a held pull. The consume queue's dispatcher calls
// Broker.wakeHeld (through consumequeue.Options.OnNotify) for each queue it
// appended to, and that queue's held pulls are read and their answers
// queued on their connections right there, on the dispatcher's goroutine:
// between an entry becoming visible and its pull's answer there is no
// goroutine hand-off, which at low rates is a thread wake-up on another
// core. The cost moves to the dispatcher: a queue with many held pulls
// (say, broadcast consumers) costs it one read and one answer per pull
// before its next batch. Each held pull has a timer for its suspend time;
// its callback answers the pull if nothing else did. A pull whose
// connection closed stays listed until its queue grows or its timer fires.
//
// mu guards the lists and each heldPull's done flag; it is never held
// while a pull is read or answered.
type pullHolds struct {
	// schedule is the delay scheduler, told of appends to the schedule
	// topic's queues (it arms their notifications itself).
	schedule atomic.Pointer[delay.Service]

	mu     sync.Mutex
	queues map[holdKey][]*heldPull
	closed bool // the broker is stopping: answer at once, hold nothing
}

type holdKey struct {
	topic string
	queue int32
}

type heldPull struct {
	c        *remoting.Conn
	req      *remoting.Command
	p        pullRequest
	filter   tagFilter
	deadline time.Time
	timer    *time.Timer
	done     bool // taken off its list: answered, or being answered
}

// holdPull parks a pull that found its queue empty.
func (b *Broker) holdPull(c *remoting.Conn, req *remoting.Command, p pullRequest, filter tagFilter) {
	h := &heldPull{c: c, req: req, p: p, filter: filter,
		deadline: time.Now().Add(min(p.suspend, b.c().LongPollMax.D()))}
	b.park(h)
}

// park puts h on its queue's list, then looks at the queue once more: an
// append before the Notify below is seen by that look, one after it calls
// wakeHeld.
func (b *Broker) park(h *heldPull) {
	hs := &b.holds
	k := holdKey{h.p.topic, h.p.queueID}
	hs.mu.Lock()
	if hs.closed {
		hs.mu.Unlock()
		b.answerHeld(h)
		return
	}
	if hs.queues == nil {
		hs.queues = make(map[holdKey][]*heldPull)
	}
	hs.queues[k] = append(hs.queues[k], h)
	h.timer = time.AfterFunc(time.Until(h.deadline), func() { b.expireHeld(h) })
	hs.mu.Unlock()
	b.cq.Notify(h.p.topic, h.p.queueID)
	if b.cq.MaxOffset(h.p.topic, h.p.queueID) > h.p.offset {
		b.wakeHeld(h.p.topic, h.p.queueID)
	}
}

// wakeHeld answers the pulls held on (topic, queueID) that now find
// messages; a pull that still finds none is parked again, for the rest of
// its suspend time. Pulls of closed connections are dropped.
func (b *Broker) wakeHeld(topic string, queueID int32) {
	hs := &b.holds
	if topic == protocol.ScheduleTopic {
		if s := hs.schedule.Load(); s != nil {
			s.Wake(queueID)
		}
	}
	k := holdKey{topic, queueID}
	hs.mu.Lock()
	list := hs.queues[k]
	if len(list) == 0 {
		hs.mu.Unlock()
		return
	}
	delete(hs.queues, k)
	for _, h := range list {
		h.done = true
		h.timer.Stop()
	}
	hs.mu.Unlock()
	for _, h := range list {
		if isClosed(h.c) {
			continue
		}
		resp, empty := b.pullOnce(h.req, &h.p, h.filter)
		if empty && time.Now().Before(h.deadline) {
			// A new heldPull: h's stopped timer may still be running
			// expireHeld(h), which must find it done.
			b.park(&heldPull{c: h.c, req: h.req, p: h.p, filter: h.filter, deadline: h.deadline})
			continue
		}
		_ = h.c.Reply(resp)
	}
}

// expireHeld answers h when its suspend time ends, unless it was taken
// off its list first.
func (b *Broker) expireHeld(h *heldPull) {
	hs := &b.holds
	k := holdKey{h.p.topic, h.p.queueID}
	hs.mu.Lock()
	if h.done {
		hs.mu.Unlock()
		return
	}
	h.done = true
	list := slices.DeleteFunc(hs.queues[k], func(x *heldPull) bool { return x == h })
	if len(list) == 0 {
		delete(hs.queues, k)
	} else {
		hs.queues[k] = list
	}
	hs.mu.Unlock()
	b.answerHeld(h)
}

// releaseHeld answers every held pull and makes later pulls answer at
// once; Shutdown calls it before it waits for in-flight requests.
func (b *Broker) releaseHeld() {
	hs := &b.holds
	hs.mu.Lock()
	hs.closed = true
	var all []*heldPull
	for _, list := range hs.queues {
		for _, h := range list {
			h.done = true
			h.timer.Stop()
			all = append(all, h)
		}
	}
	hs.queues = nil
	hs.mu.Unlock()
	for _, h := range all {
		b.answerHeld(h)
	}
}

// heldCount is the number of pulls held now.
func (b *Broker) heldCount() int {
	hs := &b.holds
	hs.mu.Lock()
	defer hs.mu.Unlock()
	n := 0
	for _, list := range hs.queues {
		n += len(list)
	}
	return n
}

// answerHeld answers h with whatever its queue holds now.
func (b *Broker) answerHeld(h *heldPull) {
	if isClosed(h.c) {
		return
	}
	resp, _ := b.pullOnce(h.req, &h.p, h.filter)
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
