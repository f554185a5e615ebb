package consumequeue

import "sync"

// progress wakes the callers of WaitDispatched when the dispatched offset
// advances (or dispatch stops): each waiter takes the current channel and
// rechecks after it is closed. No channel exists while nobody waits, so
// the dispatcher pays a lock and a nil check per batch. Its lock is a
// leaf.
type progress struct {
	mu sync.Mutex
	ch chan struct{} // closed at the next wake; nil unless waited on
}

// next returns a channel closed at the next wake.
func (p *progress) next() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		p.ch = make(chan struct{})
	}
	return p.ch
}

// wake wakes every waiter.
func (p *progress) wake() {
	p.mu.Lock()
	ch := p.ch
	p.ch = nil
	p.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}
