package commitlog

import (
	"sync"
	"sync/atomic"
)

// Bells is a set of 1-slot doorbell channels: Ring signals every one of
// them without blocking (signals coalesce), so a writer can wake any
// number of followers with no channel operation per message. The zero
// value is ready to use.
type Bells struct {
	mu    sync.Mutex                      // serialises Watch and its stop functions
	bells atomic.Pointer[[]chan struct{}] // copy-on-write: Ring reads it lock-free
}

// Watch adds a doorbell and returns it with a function that removes it.
func (b *Bells) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	var next []chan struct{}
	if old := b.bells.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, ch)
	b.bells.Store(&next)
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		cur := *b.bells.Load()
		next := make([]chan struct{}, 0, len(cur))
		for _, c := range cur {
			if c != ch {
				next = append(next, c)
			}
		}
		b.bells.Store(&next)
	}
}

// Ring signals every doorbell.
func (b *Bells) Ring() {
	w := b.bells.Load()
	if w == nil {
		return
	}
	for _, c := range *w {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
