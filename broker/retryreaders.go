package broker

import (
	"sync"
	"time"
)

// retryReaders remembers which groups' consumers pull their retry queue.
//
// A group's retry topic is created on its first heartbeat, after its
// client looked its routes up at start: such a client learns the route at
// its next refresh (the official client: 10 ms after start) but only reads
// the queue after its next rebalance (20 s later). So when a message of a
// group whose consumers have not pulled the retry queue yet is sent back,
// and again when the retry is due, the broker tells them to rebalance
// (NOTIFY_CONSUMER_IDS_CHANGED), and the first retry comes at its delay
// level.
type retryReaders struct {
	mu     sync.Mutex
	pulled map[string]bool      // by group: a consumer pulled its retry queue
	told   map[string]time.Time // by group: last notification for a send-back
}

// retryTellEvery spaces the notifications of a group whose consumers do
// not pull its retry queue (a client that never will, say).
const retryTellEvery = time.Second

func newRetryReaders() *retryReaders {
	return &retryReaders{pulled: make(map[string]bool), told: make(map[string]time.Time)}
}

// pull records a pull of group's retry queue.
func (r *retryReaders) pull(group string) {
	r.mu.Lock()
	if !r.pulled[group] {
		r.pulled[group] = true
		delete(r.told, group)
	}
	r.mu.Unlock()
}

// shouldTell reports whether a send-back of group, or its retry coming
// due, at now should tell its consumers to rebalance.
func (r *retryReaders) shouldTell(group string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pulled[group] || now.Sub(r.told[group]) < retryTellEvery {
		return false
	}
	r.told[group] = now
	return true
}

// forget drops a deleted group.
func (r *retryReaders) forget(group string) {
	r.mu.Lock()
	delete(r.pulled, group)
	delete(r.told, group)
	r.mu.Unlock()
}
