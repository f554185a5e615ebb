package client

import (
	"context"
	"sort"
	"sync"
)

// processQueue tracks one owned queue on the consumer side: the next
// offset to pull, the offsets pulled but not yet consumed, and the cache
// counters flow control reads. Its pull loop is the only writer of next;
// consume workers call done.
type processQueue struct {
	mq     MessageQueue
	ctx    context.Context // ended when the queue is dropped or the consumer closes
	cancel context.CancelFunc
	exited chan struct{} // closed when the pull loop has returned

	room chan struct{} // 1-slot doorbell: cache space freed

	mu          sync.Mutex
	next        int64          // next offset to pull; guarded by mu
	inflight    []int64        // pulled, not yet consumed, ascending; guarded by mu
	consumed    map[int64]bool // consumed offsets still in inflight; guarded by mu
	sizes       map[int64]int  // body size by in-flight offset; guarded by mu
	cachedBytes int            // guarded by mu
	committed   int64          // last offset committed to the broker; guarded by mu
}

func newProcessQueue(parent context.Context, mq MessageQueue, offset int64) *processQueue {
	ctx, cancel := context.WithCancel(parent)
	return &processQueue{mq: mq, ctx: ctx, cancel: cancel, exited: make(chan struct{}), room: make(chan struct{}, 1),
		next: offset, consumed: make(map[int64]bool), sizes: make(map[int64]int), committed: -1}
}

// add records pulled messages (ascending offsets) and the next offset.
func (q *processQueue) add(msgs []*MessageExt, next int64) {
	q.mu.Lock()
	for _, m := range msgs {
		q.inflight = append(q.inflight, m.QueueOffset)
		q.sizes[m.QueueOffset] = len(m.Body)
		q.cachedBytes += len(m.Body)
	}
	q.next = next
	q.mu.Unlock()
}

// setNext moves the pull position when nothing was pulled.
func (q *processQueue) setNext(next int64) {
	q.mu.Lock()
	q.next = next
	q.mu.Unlock()
}

func (q *processQueue) nextOffset() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.next
}

// done marks messages consumed and frees their cache space.
func (q *processQueue) done(msgs []*MessageExt) {
	q.mu.Lock()
	for _, m := range msgs {
		if sz, ok := q.sizes[m.QueueOffset]; ok {
			delete(q.sizes, m.QueueOffset)
			q.cachedBytes -= sz
			q.consumed[m.QueueOffset] = true
		}
	}
	q.trimLocked()
	q.mu.Unlock()
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// trimLocked drops consumed offsets from the front of inflight.
func (q *processQueue) trimLocked() {
	i := 0
	for i < len(q.inflight) && q.consumed[q.inflight[i]] {
		delete(q.consumed, q.inflight[i])
		i++
	}
	if i > 0 {
		q.inflight = append(q.inflight[:0], q.inflight[i:]...)
	}
}

// cached returns the messages and bytes pulled but not consumed.
func (q *processQueue) cached() (int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.inflight) - len(q.consumed), q.cachedBytes
}

// commitOffset is the offset to commit: the smallest offset still in
// flight, or the next offset to pull when nothing is.
func (q *processQueue) commitOffset() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.trimLocked()
	if len(q.inflight) > 0 {
		return q.inflight[0]
	}
	return q.next
}

// markCommitted records a successful commit; it reports whether off is new.
func (q *processQueue) markCommitted(off int64) {
	q.mu.Lock()
	if off > q.committed {
		q.committed = off
	}
	q.mu.Unlock()
}

func (q *processQueue) lastCommitted() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.committed
}

// isInflight reports whether offset is pulled and not yet consumed (tests).
func (q *processQueue) isInflight(off int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := sort.Search(len(q.inflight), func(i int) bool { return q.inflight[i] >= off })
	return i < len(q.inflight) && q.inflight[i] == off && !q.consumed[off]
}

func sortStrings(s []string) { sort.Strings(s) }
