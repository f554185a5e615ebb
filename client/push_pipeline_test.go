package client

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestPushPullsWhileHandlerBusy: with the only consume worker blocked, the
// pull loop keeps pulling up to the flow-control limit (it does not wait
// for a batch to be consumed before the next pull), and once released the
// worker consumes every message in queue order.
func TestPushPullsWhileHandlerBusy(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("busy", 1)
	release := make(chan struct{})
	var r recorder
	h := func(ctx context.Context, msgs []*MessageExt) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return r.handler(ctx, msgs)
	}
	const n = 20
	pc := startConsumer(t, c.endpoint(), "busy", h, WithGroup("g-busy"), WithPullBatchSize(2),
		WithConsumeBatchSize(1), WithConsumeGoroutines(1), WithMaxCachedMessagesPerQueue(100))
	eng := pc.eng.(*rmqPush)
	waitFor(t, 10*time.Second, "queue owned", func() bool { return len(pc.Assigned()) >= 1 })
	p := newTestProducer(t, c.endpoint())
	sendN(t, p, "busy", "m", n)
	cachedOf := func() int {
		for _, q := range eng.owned() {
			if q.mq.Topic == "busy" {
				k, _ := q.cached()
				return k
			}
		}
		return 0
	}
	waitFor(t, 10*time.Second, "every message pulled while the handler is blocked", func() bool { return cachedOf() == n })
	close(release)
	waitFor(t, 10*time.Second, "all consumed", func() bool { return r.count() == n })
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.msgs {
		if want := fmt.Sprintf("m-%d", i); string(m.Body) != want {
			t.Fatalf("message %d is %q, want %q", i, m.Body, want)
		}
	}
}

// TestTaskFIFO: tasks come out in order, to any number of waiting workers,
// across the compaction of a queue that is never empty; take gives up when
// done ends.
func TestTaskFIFO(t *testing.T) {
	f := newTaskFIFO()
	done := make(chan struct{})
	q := &processQueue{}
	var next int
	mk := func() consumeTask { next++; return consumeTask{q: q, msgs: make([]*MessageExt, next)} }
	// Never empty: put two for every one taken, past the compaction point.
	f.put(mk())
	want := 1
	for i := 0; i < 300; i++ {
		f.put(mk(), mk())
		got, ok := f.take(done)
		if !ok || len(got.msgs) != want {
			t.Fatalf("take %d: %d messages, %v; want %d", i, len(got.msgs), ok, want)
		}
		want++
	}
	if len(f.tasks)-f.head != next-want+1 || cap(f.tasks) > 2*next {
		t.Fatalf("%d waiting in a slice of %d (cap %d)", len(f.tasks)-f.head, len(f.tasks), cap(f.tasks))
	}
	for want <= next {
		got, _ := f.take(done)
		if len(got.msgs) != want {
			t.Fatalf("drain: %d, want %d", len(got.msgs), want)
		}
		want++
	}
	// Several workers waiting: one put of many wakes enough of them.
	const workers, tasks = 4, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, ok := f.take(done); !ok {
					return
				}
				mu.Lock()
				seen++
				mu.Unlock()
			}
		}()
	}
	batch := make([]consumeTask, tasks)
	f.put(batch...)
	waitFor(t, 5*time.Second, "every task taken", func() bool { mu.Lock(); defer mu.Unlock(); return seen == tasks })
	close(done)
	wg.Wait()
	if _, ok := f.take(done); ok {
		t.Fatal("take on an empty FIFO after done returned a task")
	}
}
