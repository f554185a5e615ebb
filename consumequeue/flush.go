package consumequeue

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/rs/zerolog"
)

// syncfsThreshold is how many files must be due before one syncfs(2)
// replaces their fsyncs: thousands of queue files synced one by one cost
// one journal commit each, and compete with the commitlog's group commit.
const syncfsThreshold = 16

// A syncJob is one flush's durable part: the files whose entries it
// covers, the directories it created, and the checkpoint valid once they
// are synced.
type syncJob struct {
	files []*qfile
	dirs  []string
	ck    checkpoint
	done  chan error // non-nil: the flusher waits for the result
	// barrier jobs sync nothing: they only tell when every job before
	// them is done.
	barrier bool
}

// syncer is the goroutine (owned by the Store, started by Open, stopped
// by Close) that runs flush jobs in order, so fdatasyncs never stall the
// dispatcher: consumers keep getting entries while the previous second's
// entries become durable. Its only shared state is saved (the syncer's
// alone while it runs) and err, which the dispatcher turns into the
// sticky error. Before it starts, the flush runs its jobs inline.
type syncer struct {
	fs  vfs.FS
	dir string
	log zerolog.Logger

	saved checkpoint   // the last checkpoint written
	jobs  chan syncJob // nil until start
	done  chan struct{}
	err   atomic.Pointer[error] // the first failure of a job nobody waited for
}

// start starts the goroutine.
func (sy *syncer) start() {
	sy.jobs = make(chan syncJob, 4)
	sy.done = make(chan struct{})
	go sy.run()
}

// stop lets the goroutine finish the jobs queued and waits for it.
func (sy *syncer) stop() {
	close(sy.jobs)
	<-sy.done
}

// barrier returns once every job queued so far is done, so no file the
// syncer might touch is closed under it. Called with Store.writeMu held.
func (sy *syncer) barrier() {
	if sy.jobs == nil {
		return
	}
	done := make(chan error, 1)
	sy.jobs <- syncJob{barrier: true, done: done}
	<-done
}

func (sy *syncer) run() {
	defer close(sy.done)
	for job := range sy.jobs {
		var err error
		if !job.barrier {
			err = sy.runJob(job)
		}
		if job.done != nil {
			job.done <- err
		} else if err != nil {
			e := err
			sy.err.CompareAndSwap(nil, &e)
		}
	}
}

// runJob syncs a job's files (one syncfs for many of them on a Linux
// file system), then its directories, then writes its checkpoint.
func (sy *syncer) runJob(job syncJob) error {
	if synced, err := syncWholeFS(job.files); err != nil {
		return err
	} else if !synced {
		for _, f := range job.files {
			// A file closed meanwhile belonged to a deleted or trimmed
			// queue: nothing of it needs to be durable.
			if err := f.f.SyncData(); err != nil && !errors.Is(err, os.ErrClosed) {
				return fmt.Errorf("consumequeue: sync %s: %w", f.name, err)
			}
		}
	}
	for _, dir := range job.dirs {
		if err := syncDir(sy.fs, dir); err != nil {
			return err
		}
	}
	if job.ck == sy.saved {
		return nil
	}
	if err := commitlog.WriteFileAtomic(sy.fs, sy.dir, checkpointName, encodeCheckpoint(job.ck)); err != nil {
		// The queues are still correct; a restart re-dispatches more.
		sy.log.Warn().Err(err).Msg("consumequeue: checkpoint failed")
		return nil
	}
	sy.saved = job.ck
	return nil
}

// markSyncedLocked hands q's written entries to a sync job.
func markSyncedLocked(q *queue) {
	for i, f := range q.dirtyFiles {
		f.dirty = false
		q.dirtyFiles[i] = nil
	}
	q.dirtyFiles = q.dirtyFiles[:0]
	q.unsynced, q.inDirty, q.dirtyFrom = 0, false, -1
}

// flushLocked writes the tails of the queues that have enough unsynced
// entries or have waited long enough (all of them if final) and hands
// their files, the new directories and the checkpoint they make valid (the
// lowest log offset whose entry may still be unsynced) to the syncer. A
// final flush waits for its job; before the syncer runs, it syncs inline.
func (s *Store) flushLocked(final bool) error {
	if s.werr != nil {
		return s.werr
	}
	if p := s.syncer.err.Load(); p != nil {
		// A failed sync may have lost written pages: never retried.
		return s.stickLocked(*p)
	}
	now := time.Now()
	s.lastFlush = now
	ckq := s.pos
	keep := s.writer.dirty[:0]
	var job syncJob
	var werr error
	for _, q := range s.writer.dirty {
		if q.gone {
			continue
		}
		if werr == nil && (final || q.unsynced >= s.opts.SyncBytes || now.Sub(q.dirtySince) >= s.opts.MaxSyncDelay) {
			if werr = s.writer.writeTail(q); werr == nil {
				job.files = append(job.files, q.dirtyFiles...)
				markSyncedLocked(q)
				continue
			}
		}
		// Not due, or not written: it stays dirty and holds the
		// checkpoint back.
		keep = append(keep, q)
		ckq = min(ckq, q.dirtyFrom)
	}
	clear(s.writer.dirty[len(keep):])
	s.writer.dirty = keep
	for dir := range s.writer.dirtyDirs {
		job.dirs = append(job.dirs, dir)
		delete(s.writer.dirtyDirs, dir)
	}
	job.ck = checkpoint{queues: ckq, listeners: ckq}
	for _, l := range s.feed.listeners {
		job.ck.listeners = min(job.ck.listeners, l.durable.Load())
	}
	var err error
	switch {
	case s.syncer.jobs == nil:
		err = s.syncer.runJob(job)
	case final:
		job.done = make(chan error, 1)
		s.syncer.jobs <- job
		err = <-job.done
	default:
		s.syncer.jobs <- job
	}
	if err != nil {
		return s.stickLocked(err)
	}
	if werr != nil {
		return s.failLocked(werr)
	}
	return nil
}

// A write that finds the disk full (or the quota used up) is retried with
// back-off, from the same log offset: the queues keep every entry they
// have, in memory what could not be written, and the checkpoint does not
// pass an entry that is not on the disk. Reads go on meanwhile.
const (
	noSpaceRetryMin = 100 * time.Millisecond
	noSpaceRetryMax = 2 * time.Second
)

func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// failLocked stops the dispatcher for err: until there is room if the disk
// is full, for good otherwise.
func (s *Store) failLocked(err error) error {
	if s.werr == nil && noSpace(err) {
		return s.pauseLocked(err)
	}
	return s.stickLocked(err)
}

// pauseLocked has the dispatcher try again after a back-off that doubles
// while the disk stays full. Only the first failure is logged.
func (s *Store) pauseLocked(err error) error {
	if s.spaceErr == nil {
		s.backoff = noSpaceRetryMin
		s.noSpace.Store(true)
		s.log.Error().Err(err).Int64("offset", s.pos).Msg("consumequeue: the data disk is full; dispatch waits for room")
	} else {
		s.backoff = min(2*s.backoff, noSpaceRetryMax)
	}
	s.spaceErr = fmt.Errorf("%w: %w", ErrNoSpace, err)
	s.retryAt = time.Now().Add(s.backoff)
	s.retry.Reset(s.backoff)
	return s.spaceErr
}

// resumeLocked ends a full-disk pause after a dispatch and a flush went
// through.
func (s *Store) resumeLocked() {
	s.log.Info().Int64("offset", s.pos).Msg("consumequeue: the data disk has room again; dispatch resumed")
	s.spaceErr = nil
	s.noSpace.Store(false)
}

// stickLocked makes err sticky: the dispatcher stops; reads go on.
func (s *Store) stickLocked(err error) error {
	if s.werr == nil {
		s.werr = fmt.Errorf("%w: %w", ErrFailed, err)
		e := s.werr
		s.failed.Store(&e)
		s.log.Error().Err(err).Int64("offset", s.pos).Msg("consumequeue: dispatch failed; the queues stop growing until restart")
		s.progress.wake()
	}
	return s.werr
}
