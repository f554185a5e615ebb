package commitlog

import (
	"maps"
	"time"
)

// The flusher is one goroutine owned by the Log. In sync mode it runs group
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
func (l *Log) flusher() {
	defer close(l.done)
	every := l.opts.FlushInterval
	if l.opts.Flush == FlushSync {
		every = l.opts.CheckpointInterval
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-l.stop:
			l.flushRound(true)
			return
		case <-l.flushBell:
		case <-ticker.C:
		}
		l.flushRound(false)
	}
}

func (l *Log) flushRound(final bool) {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	now := l.opts.Now()
	l.mu.Lock()
	target := l.writePos
	round := l.round
	l.round = make(chan struct{})
	failed := l.err != nil
	ckpt := !failed && target != l.checkpointedOffset &&
		(final || now.Sub(l.lastCheckpoint) >= l.opts.CheckpointInterval)
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
		l.ringWatchers()
	}
	if ckpt {
		if err := writeCheckpoint(l.fs, l.opts.Dir, checkpoint{offset: target, lastStoreTs: lastTs, queues: table}); err != nil {
			// The log is still correct; recovery just scans further back.
			l.log.Warn().Err(err).Msg("commitlog: checkpoint failed")
			return
		}
		l.lastCheckpoint = now
		l.checkpointedOffset = target
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
	l.ringFlusher()
	<-round
	if l.flushed.Load() >= end {
		return nil
	}
	if err := l.Err(); err != nil {
		return err
	}
	return ErrClosed
}
