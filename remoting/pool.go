package remoting

import (
	"context"
	"sync"
	"time"
)

// workerIdle is how long a pool worker waits for work before it exits;
// maxWorkers bounds the workers of one endpoint (past it, requests get
// goroutines of their own).
const (
	workerIdle = 10 * time.Second
	maxWorkers = 256
)

// workerPool runs request handlers on long-lived goroutines. A fresh
// goroutine per request starts on a small stack and grows it on every
// request that goes deep (decode, validate, append, reply): the copying
// cost more CPU than the handler itself under load. A worker's stack has
// already grown. When no worker is idle and the pool is full, the request
// gets a goroutine of its own, so a handler that blocks (a sync-flush send
// waiting for its group commit) never holds up the others.
//
// Workers are owned by the endpoint: they exit after workerIdle without
// work, and all of them on close.
type workerPool struct {
	jobs chan func() // unbuffered: a send succeeds only if a worker is idle
	stop chan struct{}
	max  int

	mu      sync.Mutex
	n       int // workers running
	stopped bool
	wg      sync.WaitGroup
}

func newWorkerPool(max int) *workerPool {
	return &workerPool{jobs: make(chan func()), stop: make(chan struct{}), max: max}
}

// submit runs f on an idle worker, a new worker, or its own goroutine.
func (p *workerPool) submit(f func()) {
	select {
	case p.jobs <- f:
		return
	default:
	}
	p.mu.Lock()
	if !p.stopped && p.n < p.max {
		p.n++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.worker(f)
		return
	}
	p.mu.Unlock()
	go f()
}

func (p *workerPool) worker(f func()) {
	defer p.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-p.jobs:
		case <-idle.C:
			p.mu.Lock()
			p.n--
			p.mu.Unlock()
			return
		case <-p.stop:
			return
		}
	}
}

// close stops the workers and waits for them (at most until ctx ends).
func (p *workerPool) close(ctx context.Context) {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.stop)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
