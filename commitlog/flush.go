package commitlog

import (
	"maps"
	"sync"
	"time"
)

// flusher is one goroutine owned by the Log, started by Open and stopped
// by Close. In sync mode it runs group
// commits back to back:
//
//	appenders:  write ─┐ write ─┐ write ─┐            write ─┐ ...
//	                   ▼        ▼        ▼                   ▼
//	flusher:     [take target=written, swap round] fdatasync [close round] [take target …]
//
// Every appender picks up the current round channel under the append lock
// right after its write, and the flusher swaps the channel under the same
// lock when it reads its target, so a closed round covers every appender
// that waited on it: one fdatasync and one channel close per round, never
// per message. In async mode the same round runs every FlushInterval, or
// early when FlushDirtyBytes are waiting.
type flusher struct {
	l    *Log
	bell chan struct{} // 1-slot doorbell
	stop chan struct{}
	done chan struct{}

	mu sync.Mutex // held by a round; Truncate and Reset take it to keep rounds out
	// Guarded by mu (before run starts, owned by recovery).
	lastCheckpoint     time.Time
	checkpointedOffset int64
}

func newFlusher(l *Log) flusher {
	return flusher{l: l, bell: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (f *flusher) run() {
	l := f.l
	defer close(f.done)
	every := l.opts.FlushInterval
	if l.opts.Flush == FlushSync {
		every = l.opts.CheckpointInterval
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-f.stop:
			f.round(true)
			return
		case <-f.bell:
		case <-ticker.C:
		}
		f.round(false)
	}
}

func (f *flusher) round(final bool) {
	l := f.l
	f.mu.Lock()
	defer f.mu.Unlock()
	now := l.opts.Now()
	l.mu.Lock()
	target := l.writePos
	round := l.round
	l.round = make(chan struct{})
	failed := l.err != nil
	ckpt := !failed && target != f.checkpointedOffset &&
		(final || now.Sub(f.lastCheckpoint) >= l.opts.CheckpointInterval)
	var table map[queueKey]int64
	var lastTs int64
	if ckpt {
		table = maps.Clone(l.pubQueues)
		lastTs = l.lastStoreTs
	}
	l.mu.Unlock()

	from := l.flushed.Load()
	advanced := false
	if target > from && !failed {
		if err := l.segs.syncRange(from, target); err != nil {
			l.mu.Lock()
			l.setStickyLocked(err)
			l.mu.Unlock()
			ckpt = false
		} else {
			l.flushed.Store(target)
			advanced = true
		}
	}
	close(round)
	if advanced && l.opts.Flush == FlushSync {
		l.watchers.Ring()
	}
	if ckpt {
		if err := writeCheckpoint(l.fs, l.opts.Dir, checkpoint{offset: target, lastStoreTs: lastTs, queues: table}); err != nil {
			// The log is still correct; recovery just scans further back.
			l.log.Warn().Err(err).Msg("commitlog: checkpoint failed")
			return
		}
		f.lastCheckpoint = now
		f.checkpointedOffset = target
	}
}

// Sync forces a flush round and waits for it: everything appended before
// the call is durable when it returns nil.
func (l *Log) Sync() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	round := l.round
	end := l.writePos
	l.mu.Unlock()
	l.flush.ring()
	<-round
	if l.flushed.Load() >= end {
		return nil
	}
	if err := l.Err(); err != nil {
		return err
	}
	return ErrClosed
}

func (f *flusher) ring() {
	select {
	case f.bell <- struct{}{}:
	default:
	}
}

var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// wait waits up to the sync timeout for round to end and reports whether
// it made the log durable up to end.
func (f *flusher) wait(round chan struct{}, end int64) error {
	l := f.l
	t := timerPool.Get().(*time.Timer)
	t.Reset(l.opts.SyncTimeout)
	defer func() {
		t.Stop()
		timerPool.Put(t)
	}()
	select {
	case <-round:
	case <-t.C:
		return ErrFlushTimeout
	}
	if l.flushed.Load() >= end {
		return nil
	}
	if err := l.Err(); err != nil {
		return err
	}
	return ErrClosed
}
