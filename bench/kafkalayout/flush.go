package kafkalayout

import (
	"fmt"
	"sync"
	"time"

	"github.com/ferrymq/ferry/commitlog"
)

// The flush pipeline. Each partition runs its own group commit:
//
//	appenders of P:  write ─┐ write ─┐            write ─┐
//	                        ▼        ▼                   ▼
//	sync queue:      [P queued once]           [P queued again] ...
//	worker:          take P: target=next, swap round │ fdatasync P │ close round
//
// An appender picks up P's round under P's lock right after its write and
// queues P unless it is queued already; a worker swaps the round under the
// same lock when it reads the target, so a closed round covers every
// appender that waited on it. Different partitions are synced by different
// workers at the same time; in async mode the interval flusher queues every
// dirty partition each FlushInterval.

// syncQueue is a mutex-guarded FIFO of partitions plus a 1-slot doorbell.
type syncQueue struct {
	mu    sync.Mutex
	items []*partition // guarded by mu
	bell  chan struct{}
}

func (q *syncQueue) push(ps ...*partition) {
	if len(ps) == 0 {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, ps...)
	q.mu.Unlock()
	ring(q.bell)
}

// pop takes the oldest partition, ringing the bell again if more wait so
// that another idle worker wakes up.
func (q *syncQueue) pop() *partition {
	q.mu.Lock()
	if len(q.items) == 0 {
		q.mu.Unlock()
		return nil
	}
	p := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	more := len(q.items) > 0
	if !more {
		q.items = q.items[:0:0]
	}
	q.mu.Unlock()
	if more {
		ring(q.bell)
	}
	return p
}

func (s *Store) syncWorker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-s.syncq.bell:
		}
		for p := s.syncq.pop(); p != nil; p = s.syncq.pop() {
			s.flushPartition(p) // a failure is sticky; waiters see it
		}
	}
}

func (s *Store) intervalFlusher() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	var dirty []*partition
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.tickBell:
		}
		s.dirty.Store(0)
		dirty = dirty[:0]
		for _, p := range s.snapshot() {
			if p.written.Load() <= p.flushed.Load() {
				continue
			}
			p.mu.Lock()
			if !p.queued {
				p.queued = true
				dirty = append(dirty, p)
			}
			p.mu.Unlock()
		}
		s.syncq.push(dirty...)
	}
}

// flushPartition runs one flush round of p: everything written to p before
// it started is durable when it returns nil.
func (s *Store) flushPartition(p *partition) error {
	p.mu.Lock()
	target := p.next
	seg := p.active()
	round := p.round
	p.round = make(chan struct{})
	p.queued = false
	p.mu.Unlock()
	defer close(round)
	if target <= p.flushed.Load() {
		return nil
	}
	if err := s.Err(); err != nil {
		return err
	}
	// Earlier segments were synced when they were rolled.
	if err := seg.log.SyncData(); err != nil {
		return s.setSticky(fmt.Errorf("sync %s: %w", seg.logName, err))
	}
	for {
		cur := p.flushed.Load()
		if cur >= target || p.flushed.CompareAndSwap(cur, target) {
			break
		}
	}
	if s.opts.Flush == commitlog.FlushSync {
		s.ringWatchers()
	}
	return nil
}
