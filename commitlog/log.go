package commitlog

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/protocol"
	"github.com/rs/zerolog"
)

// FlushMode says when an append is acknowledged.
type FlushMode int

const (
	// FlushAsync acknowledges once the bytes are in the page cache; a
	// flusher syncs them in the background. Survives a killed process.
	FlushAsync FlushMode = iota
	// FlushSync acknowledges after the group commit's fdatasync that covers
	// the record. Survives power loss.
	FlushSync
)

func (m FlushMode) String() string {
	if m == FlushSync {
		return "sync"
	}
	return "async"
}

// ParseFlushMode parses "async" or "sync".
func ParseFlushMode(s string) (FlushMode, error) {
	switch s {
	case "async", "ASYNC_FLUSH":
		return FlushAsync, nil
	case "sync", "SYNC_FLUSH":
		return FlushSync, nil
	}
	return 0, fmt.Errorf("commitlog: flush mode %q: want async or sync", s)
}

// Defaults for Options.
const (
	DefaultSegmentSize        = 1 << 30
	DefaultFlushInterval      = 500 * time.Millisecond
	DefaultFlushDirtyBytes    = 16 << 20
	DefaultSyncTimeout        = 5 * time.Second
	DefaultCheckpointInterval = time.Second
	DefaultMaxMessageSize     = 4 << 20
)

// Options configures a Log. The zero value of every field but Dir means its
// default.
type Options struct {
	FS                 vfs.FS // default vfs.Default
	Dir                string // holds the segments, the checkpoint and the lock file
	SegmentSize        int64
	Flush              FlushMode
	FlushInterval      time.Duration // async: longest time a write stays unsynced
	FlushDirtyBytes    int64         // async: sync early once this much is waiting
	SyncTimeout        time.Duration // sync: an append waits this long, then ErrFlushTimeout
	CheckpointInterval time.Duration
	MaxMessageSize     int  // largest body accepted
	NoPreallocate      bool // do not fallocate new segments
	Logger             zerolog.Logger
	Now                func() time.Time
}

// Validate fills in defaults and explains any value it cannot accept.
func (o *Options) Validate() error {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Dir == "" {
		return errors.New("commitlog: Options.Dir is required")
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.SegmentSize < 4096 {
		return fmt.Errorf("commitlog: segment size %d is below the minimum of 4096 bytes", o.SegmentSize)
	}
	if int64(o.MaxMessageSize)+fixedHeaderIPv4+protocol.MaxTopicLen+protocol.MaxPropertiesLen+40+protocol.BlankMarkerSize > o.SegmentSize {
		// Every acceptable message must fit in an empty segment.
		return fmt.Errorf("commitlog: segment size %d cannot hold a message of the maximum size %d plus headers", o.SegmentSize, o.MaxMessageSize)
	}
	if o.Flush != FlushAsync && o.Flush != FlushSync {
		return fmt.Errorf("commitlog: unknown flush mode %d", o.Flush)
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.FlushDirtyBytes == 0 {
		o.FlushDirtyBytes = DefaultFlushDirtyBytes
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.FlushInterval < 0 || o.FlushDirtyBytes < 0 || o.SyncTimeout < 0 || o.CheckpointInterval < 0 || o.MaxMessageSize < 0 {
		return errors.New("commitlog: intervals, sizes and timeouts must not be negative")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Sentinel errors.
var (
	ErrClosed       = errors.New("commitlog: log closed")
	ErrReadOnly     = errors.New("commitlog: log is read-only after a write or sync error")
	ErrFlushTimeout = errors.New("commitlog: flush timed out (the message is written and may still become durable)")
	ErrOutOfRange   = errors.New("commitlog: offset out of range")
	ErrLocked       = errors.New("commitlog: directory is in use by another process")
	// ErrNoSpace is a write the disk had no room for. Unlike other write
	// errors it is not sticky: the failed write is undone (its bytes
	// zeroed, its offsets given back) and a later append is tried again.
	ErrNoSpace = errors.New("commitlog: no space left on the data disk; the write was undone")
)

type queueKey struct {
	topic string
	queue int32
}

// Log is the shared commitlog. Append, the read methods and the offset
// accessors are safe for concurrent use.
//
// The Log owns its parts, as pebble's DB owns its log writer and version
// set: segs, the segment files; flush, the goroutine that syncs and
// checkpoints (started by Open, stopped by Close); epochs, the epoch
// history; replica, the writes of a slave (raw appends, truncation,
// reset).
//
// Concurrency: mu is the append lock; segs changes only under it. Lock
// order: flush.mu, then mu, then epochs.mu. Readers never take mu: they
// read below written, which only grows, from the segment list published in
// segs.
type Log struct {
	opts Options
	fs   vfs.FS
	log  zerolog.Logger
	lock io.Closer

	segs *segmentSet

	mu           sync.Mutex
	writePos     int64              // end of the published (written) records; equal to written
	reserved     int64              // end of the reserved records, written or queued
	queues       map[queueKey]int64 // next queue offsets, reservations included
	pubQueues    map[queueKey]int64 // next queue offsets of the published records (for checkpoints)
	pending      []pendingWrite     // reserved, not yet written (write combining)
	pendingSpare []pendingWrite
	qsArena      []batchQueue // backs the pending items' qs; swapped with qsSpare per round
	qsSpare      []batchQueue
	itemsScratch []pendingWrite
	writing      bool        // a leader is writing
	roundJoins   int         // appenders whose records are in pending
	shared       bool        // the last round written carried several appenders' records
	writeIdle    sync.Cond   // on mu; broadcast when writing turns false (Close waits on it)
	wround       *writeRound // the round the next queued bytes belong to
	scratch      []byte      // the leader's buffer for joining chunks
	lastStoreTs  int64
	err          error         // sticky write/sync error
	spaceErr     error         // a write of the current leader's rounds found no space: fail the rest, then roll back
	round        chan struct{} // closed when the flush round covering the writes so far ends
	closed       bool
	minOffset    int64

	written atomic.Int64 // end of the last complete record
	// encoding counts appenders in Append that have not reserved their
	// bytes yet (see Append's write combining).
	encoding atomic.Int32
	flushed  atomic.Int64 // end of the synced prefix
	sticky   atomic.Pointer[error]
	noSpace  atomic.Bool // the last write failed with ErrNoSpace

	flush    flusher
	watchers Bells
	tail     tailCache // the last bytes written, for readers of the log's end

	bufs bufPool

	// Replication (replica.go, epochs.go).
	epochs      epochHistory
	replica     replicaWriter
	appendGuard atomic.Pointer[func() error] // SetAppendGuard
}

// SetAppendGuard makes every later Append first call guard and fail with
// its error, appending nothing, when it returns one (nil removes the
// guard). A replicated broker's slave refuses local writes this way: its
// log only grows by AppendRaw, at the master's offsets.
func (l *Log) SetAppendGuard(guard func() error) {
	if guard == nil {
		l.appendGuard.Store(nil)
		return
	}
	l.appendGuard.Store(&guard)
}

// Open opens or creates the log in opts.Dir, recovering it if it was not
// closed cleanly, and starts its flusher.
func Open(opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	l := &Log{
		opts:      opts,
		fs:        opts.FS,
		log:       opts.Logger,
		queues:    make(map[queueKey]int64),
		pubQueues: make(map[queueKey]int64),
		round:     make(chan struct{}),
		wround:    &writeRound{done: make(chan struct{})},
		segs:      newSegmentSet(&opts),
		epochs:    epochHistory{fs: opts.FS, dir: opts.Dir},
	}
	l.flush = newFlusher(l)
	l.replica = replicaWriter{l}
	l.writeIdle.L = &l.mu
	if err := mkdirAllDurable(l.fs, opts.Dir); err != nil {
		return nil, fmt.Errorf("commitlog: create %s: %w", opts.Dir, err)
	}
	lock, err := l.fs.Lock(l.fs.PathJoin(opts.Dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLocked, opts.Dir, err)
	}
	l.lock = lock
	if err := l.recover(); err != nil {
		l.segs.closeAll()
		lock.Close()
		return nil, err
	}
	go l.flush.run()
	return l, nil
}

// Options returns the options in force (defaults filled in).
func (l *Log) Options() Options { return l.opts }

// WrittenOffset is the end of the last complete record: every byte below
// it can be read.
func (l *Log) WrittenOffset() int64 { return l.written.Load() }

// FlushedOffset is the end of the synced prefix of the log.
func (l *Log) FlushedOffset() int64 { return l.flushed.Load() }

// VisibleOffset is how far consumers may see: the flushed offset in sync
// mode (a crash cannot take it back), the written offset in async mode.
func (l *Log) VisibleOffset() int64 {
	if l.opts.Flush == FlushSync {
		return l.flushed.Load()
	}
	return l.written.Load()
}

// MinOffset is the offset of the first segment still kept.
func (l *Log) MinOffset() int64 { return l.segs.minBase() }

// Err returns the sticky error that made the log read-only, if any.
func (l *Log) Err() error {
	if e := l.sticky.Load(); e != nil {
		return *e
	}
	return nil
}

// NoSpace reports whether the last write found the disk full (no write
// has succeeded since).
func (l *Log) NoSpace() bool { return l.noSpace.Load() }

// NextQueueOffset returns the offset the next message appended to (topic,
// queue) will get.
func (l *Log) NextQueueOffset(topic string, queue int32) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queues[queueKey{topic, queue}]
}

// QueueOffsets returns a copy of the next queue offset of every (topic,
// queue) that has ever been appended to, keyed by topic then queue.
func (l *Log) QueueOffsets() map[string]map[int32]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]map[int32]int64)
	for k, v := range l.queues {
		m := out[k.topic]
		if m == nil {
			m = make(map[int32]int64)
			out[k.topic] = m
		}
		m[k.queue] = v
	}
	return out
}

// RaiseQueueOffset makes the next offset of (topic, queue) at least next.
// The broker uses it when a consume queue knows of more entries than the
// log's checkpoint (after old segments were deleted and the table rebuilt).
func (l *Log) RaiseQueueOffset(topic string, queue int32, next int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := queueKey{topic, queue}
	if l.queues[k] < next {
		l.queues[k] = next
	}
	if l.pubQueues[k] < next {
		l.pubQueues[k] = next
	}
}

// DeleteQueue forgets the offsets of every queue of topic (the topic was
// deleted). Its records stay in the log until their segments expire.
func (l *Log) DeleteQueue(topic string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.queues {
		if k.topic == topic {
			delete(l.queues, k)
			delete(l.pubQueues, k)
		}
	}
}

// Watch returns a 1-slot channel that receives a signal whenever
// VisibleOffset advances (signals coalesce), and a function to stop.
func (l *Log) Watch() (<-chan struct{}, func()) { return l.watchers.Watch() }

// WatchFunc has fn called whenever VisibleOffset advances, on the
// goroutine that advanced it (in async mode the appender that wrote the
// records, in sync mode the flusher, on a replica the applier), right
// after it did, and returns a function to stop. It lets a reader follow
// the log without a goroutine wake-up per write. fn must not block and
// must not append to the log (the appender calling it may be the one
// whose write the append would wait for).
func (l *Log) WatchFunc(fn func()) func() { return l.watchers.WatchFunc(fn) }

// failLocked makes err sticky unless it is ErrNoSpace, which only fails
// the write at hand.
func (l *Log) failLocked(err error) error {
	if errors.Is(err, ErrNoSpace) {
		return err
	}
	return l.setStickyLocked(err)
}

func (l *Log) setStickyLocked(err error) error {
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", ErrReadOnly, err)
		e := l.err
		l.sticky.Store(&e)
		l.log.Error().Err(err).Msg("commitlog: write failed; the log is read-only until restart")
	}
	return l.err
}

// mkdirAllDurable creates dir and any missing parents, and syncs the
// parent of every directory it created so the new entries survive a crash.
func mkdirAllDurable(fs vfs.FS, dir string) error {
	var created []string
	for d := dir; ; {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		parent := fs.PathDir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(fs, fs.PathDir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("commitlog: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("commitlog: sync dir %s: %w", dir, err)
	}
	return nil
}

// Close stops the flusher after a last sync and checkpoint, and closes the
// files. Appends after Close fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	// Let a leader finish writing what was queued before the close.
	for l.writing {
		l.writeIdle.Wait()
	}
	l.mu.Unlock()
	close(l.flush.stop)
	<-l.flush.done
	err := l.Err()
	l.segs.closeAll()
	if cerr := l.lock.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// Segments lists the kept segments, oldest first.
func (l *Log) Segments() []SegmentInfo { return l.segs.infos() }

// DeleteSegmentsBefore deletes every whole segment that ends at or before
// off, never the active one, oldest first, and returns how many went.
// Readers holding an offset in a deleted segment get ErrOutOfRange.
func (l *Log) DeleteSegmentsBefore(off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	n, err := l.segs.deleteBefore(off)
	if n > 0 {
		l.minOffset = l.segs.minBase()
	}
	return n, err
}
