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
	mu    sync.Mutex                      // serialises Watch, WatchFunc and their stop functions
	bells atomic.Pointer[[]chan struct{}] // copy-on-write: Ring reads it lock-free
	funcs atomic.Pointer[[]*func()]       // the same, for WatchFunc
}

// WatchFunc adds fn, called by every Ring on the ringing goroutine, and
// returns a function that removes it (after which fn may still be running
// in a Ring that began before). fn must not block: the ringer waits for it.
func (b *Bells) WatchFunc(fn func()) func() {
	f := &fn
	b.mu.Lock()
	var next []*func()
	if old := b.funcs.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, f)
	b.funcs.Store(&next)
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		cur := *b.funcs.Load()
		next := make([]*func(), 0, len(cur))
		for _, g := range cur {
			if g != f {
				next = append(next, g)
			}
		}
		b.funcs.Store(&next)
	}
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

// Ring signals every doorbell and calls every function watching.
func (b *Bells) Ring() {
	if w := b.bells.Load(); w != nil {
		for _, c := range *w {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
	if fs := b.funcs.Load(); fs != nil {
		for _, f := range *fs {
			(*f)()
		}
	}
}
