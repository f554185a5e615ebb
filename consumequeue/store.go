package consumequeue

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/rs/zerolog"
)

// Source is what the store needs from the commitlog; *commitlog.Log
// satisfies it.
type Source interface {
	// Scan calls fn for every record in [from, limit); see commitlog.Log.Scan.
	Scan(from, limit int64, bufp *[]byte, fn func(off int64, rec []byte) error) (int64, error)
	// ReadAt reads len(p) bytes of one record at off.
	ReadAt(p []byte, off int64) error
	// VisibleOffset is how far the dispatcher may go.
	VisibleOffset() int64
	// WrittenOffset is the end of the readable log.
	WrittenOffset() int64
	// MinOffset is the first offset still kept.
	MinOffset() int64
	// Watch signals (coalesced) when VisibleOffset advances.
	Watch() (<-chan struct{}, func())
}

var _ Source = (*commitlog.Log)(nil)

// Record is one dispatched commitlog record as listeners see it. Topic and
// Properties (wire form, checksum property included) are valid only during
// the Listener.Dispatch call.
type Record struct {
	Entry
	Topic          []byte
	QueueID        int32
	StoreTimestamp int64
	Properties     []byte
}

// Listener is another index derived from the commitlog (the key index, the
// timer index). The feeder goroutine calls it, in log order, after the
// records' entries are visible in the queues, never two calls at once.
//
// Dispatch indexes a batch; its work need not be durable yet. On an error
// the listener stays at its position and is fed the same records again at
// the next tick, so nothing is lost.
//
// Sync makes the work of every Dispatch that returned before it durable.
// The feeder calls it when ListenerSyncBytes of log were dispatched to the
// listener since its last sync, or the oldest of them has waited
// ListenerSyncInterval, and before the final checkpoint. Only a successful
// Sync moves the listener's durable point; the checkpoint never passes it,
// and a restart feeds every listener again from the lowest durable point.
// Delivery is therefore at least once: a listener must be idempotent for
// records it sees again (see the package doc).
type Listener interface {
	Dispatch(batch []Record) error
	Sync() error
}

// Defaults for Options.
const (
	DefaultFlushInterval = time.Second
	DefaultSyncBytes     = 8 << 10
	DefaultMaxSyncDelay  = 10 * time.Second

	DefaultListenerSyncInterval = 100 * time.Millisecond
	DefaultListenerSyncBytes    = 4 << 20
)

// Options configures a Store. The zero value of every field but Dir and
// Source means its default.
type Options struct {
	FS             vfs.FS // default vfs.Default
	Dir            string // holds <topic>/<queueId>/<files> and the checkpoint
	Source         Source
	EntriesPerFile int // default DefaultEntriesPerFile; part of the on-disk layout
	// FlushInterval is how often the dispatcher writes buffered entries,
	// syncs queue files and writes its checkpoint.
	FlushInterval time.Duration
	// SyncBytes: at a flush, a queue with at least this many bytes of
	// unsynced entries is synced; a quieter queue waits, up to
	// MaxSyncDelay, so thousands of idle queues do not cost thousands of
	// fsyncs a second. The checkpoint cannot pass an unsynced entry, so
	// MaxSyncDelay bounds how much of the log a restart re-dispatches.
	SyncBytes    int
	MaxSyncDelay time.Duration
	Logger       zerolog.Logger
	Listeners    []Listener
	// A listener is synced once ListenerSyncBytes of log were dispatched
	// to it since its last sync, or the oldest of them has waited
	// ListenerSyncInterval: a crash makes a restart feed it again at most
	// about that much.
	ListenerSyncInterval time.Duration
	ListenerSyncBytes    int64
	// OnNotify, if set, is called on the goroutine dispatching (the
	// dispatcher, or the appender that published the records; see pump)
	// right after it closes a queue's Notify channel because entries were
	// appended, so a waiter can be answered without a goroutine of its own
	// being woken.
	// It may read the store (Get, MaxOffset, Notify) but must not block for
	// long: the next batch waits for it.
	OnNotify func(topic string, queueID int32)
}

// Validate fills in defaults and explains any value it cannot accept.
func (o *Options) Validate() error {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrOptions)
	}
	if o.Source == nil {
		return fmt.Errorf("%w: Source is required", ErrOptions)
	}
	if o.EntriesPerFile == 0 {
		o.EntriesPerFile = DefaultEntriesPerFile
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.SyncBytes == 0 {
		o.SyncBytes = DefaultSyncBytes
	}
	if o.MaxSyncDelay == 0 {
		o.MaxSyncDelay = max(DefaultMaxSyncDelay, o.FlushInterval)
	}
	if o.ListenerSyncInterval == 0 {
		o.ListenerSyncInterval = DefaultListenerSyncInterval
	}
	if o.ListenerSyncBytes == 0 {
		o.ListenerSyncBytes = DefaultListenerSyncBytes
	}
	if o.EntriesPerFile < 1 || int64(o.EntriesPerFile)*EntrySize > 1<<30 {
		return fmt.Errorf("%w: EntriesPerFile %d must be between 1 and %d (a file of at most 1 GiB)", ErrOptions, o.EntriesPerFile, (1<<30)/EntrySize)
	}
	if o.FlushInterval < 0 || o.SyncBytes < 0 || o.MaxSyncDelay < 0 || o.ListenerSyncInterval < 0 || o.ListenerSyncBytes < 0 {
		return fmt.Errorf("%w: intervals and sizes must not be negative", ErrOptions)
	}
	return nil
}

// Sentinel errors.
var (
	ErrOptions       = errors.New("consumequeue: invalid options")
	ErrClosed        = errors.New("consumequeue: store closed")
	ErrOutOfRange    = errors.New("consumequeue: offset out of range")
	ErrCorrupt       = errors.New("consumequeue: corrupt queue directory")
	ErrBadCheckpoint = errors.New("consumequeue: checkpoint unreadable")
	ErrFailed        = errors.New("consumequeue: dispatcher stopped after a write error")
	ErrNoSpace       = errors.New("consumequeue: no space left on the data disk; dispatch resumes when there is room")
)

// Tuning; not part of the format.
const (
	batchRecords   = 4096    // records per dispatch batch
	batchBytes     = 4 << 20 // log bytes per dispatch batch
	stageLimit     = 32 << 10
	tailFlushBytes = 4 << 10 // write a queue's tail to its file once it holds this much
	scanBufSize    = 1 << 20
)

type queueKey struct {
	topic string
	queue int32
}

// topic is the set of queues of one topic.
type topic struct {
	name   string
	dir    string
	queues map[int32]*queue
}

// qfile is one queue file. f is closed only with the queue's mu held for
// writing, so readers holding it for reading may use f.
type qfile struct {
	first int64 // entry number of its first entry
	name  string
	f     vfs.File
	dirty bool // written since the last sync; owned by the writer
}

// queue is one (topic, queue id). Entries [low, fileEnd) are in files,
// [fileEnd, max) in tail.
type queue struct {
	topic string
	id    int32
	dir   string
	epf   int64

	// Owned by the holder of Store.writeMu.
	stage      []byte // entries not yet committed, contiguous from stageFrom
	stageFrom  int64
	touched    bool // in queueWriter.touched
	inDirty    bool // in queueWriter.dirty
	dirtyFrom  int64
	dirtySince time.Time
	unsynced   int
	dirtyFiles []*qfile

	mu       sync.RWMutex
	files    []*qfile // sorted by first
	low      int64    // no entry below it exists
	max      int64    // exclusive: entries ever written
	fileEnd  int64
	tail     []byte
	notify   chan struct{} // closed at the next append; nil unless asked for
	gone     bool          // deleted or closed, files closed; set with writeMu held too
	minCache atomic.Pointer[minCache]
}

type minCache struct{ srcMin, low, val int64 }

type listenerState struct {
	l       Listener
	pos     atomic.Int64 // every record below it was accepted; written under feeder.mu
	durable atomic.Int64 // every record below it is durable (≤ pos); written under feeder.mu
	failed  bool         // the last call failed: retry at the next tick; feeder.mu
	// dirtySince is when pos first passed durable after the last sync;
	// feeder.mu.
	dirtySince time.Time
}

// Store is the set of consume queues of one commitlog and the dispatcher
// that builds them. All methods are safe for concurrent use.
//
// Besides the dispatcher goroutine (dispatch.go) it owns its parts:
// writer, the queue file writes of the holder of writeMu; syncer, the
// goroutine that makes flushed entries durable and writes the checkpoint;
// feed, the goroutine that feeds the listeners; progress, the wake-up of
// WaitDispatched.
type Store struct {
	opts Options
	fs   vfs.FS
	src  Source
	log  zerolog.Logger
	epf  int64

	// writeMu serialises everything that changes queue files or the queue
	// set: dispatch batches, flushes, DeleteTopic, TrimBefore, Close. The
	// fields up to mu are owned by its holder.
	writeMu   sync.Mutex
	pos       int64 // the queues hold every record below it
	buf       []byte
	writer    queueWriter
	lastFlush time.Time
	last      *queue // the queue of the previous record
	werr      error  // sticky write error
	spaceErr  error  // the disk was full at the last try (dispatch.go)
	backoff   time.Duration
	retryAt   time.Time
	retry     *time.Timer // wakes the dispatcher at retryAt

	// mu guards the queue set. Changes hold writeMu too, so the writer
	// reads it holding writeMu alone.
	mu      sync.RWMutex
	topics  map[string]*topic
	waiting map[queueKey]chan struct{} // Notify on queues not created yet
	closed  bool

	dispatched atomic.Int64
	failed     atomic.Pointer[error]
	noSpace    atomic.Bool // dispatch waits for disk space

	feed *feeder

	progress progress // wakes WaitDispatched when dispatched advances

	fed commitlog.Bells // rung when FedOffset may have advanced (fed.go)

	unwatch func()
	watch   <-chan struct{}
	bell    chan struct{} // the dispatcher's doorbell when pump is rung (nil: watch is the source's)
	stop    chan struct{}
	done    chan struct{}

	syncer syncer
}

// Open loads the queues in opts.Dir, drops entries that point past the
// log's written end, dispatches everything from the checkpoint up to the
// log's visible end, and starts the dispatcher.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		opts:      opts,
		fs:        opts.FS,
		src:       opts.Source,
		log:       opts.Logger,
		epf:       int64(opts.EntriesPerFile),
		buf:       make([]byte, scanBufSize),
		writer:    queueWriter{fs: opts.FS, epf: int64(opts.EntriesPerFile), onNotify: opts.OnNotify, dirtyDirs: make(map[string]struct{})},
		topics:    make(map[string]*topic),
		waiting:   make(map[queueKey]chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		lastFlush: time.Now(),
		retry:     time.NewTimer(time.Hour),
		syncer:    syncer{fs: opts.FS, dir: opts.Dir, log: opts.Logger},
	}
	s.retry.Stop()
	if err := s.fs.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("consumequeue: create %s: %w", opts.Dir, err)
	}
	// Make Dir's own directory entry durable: the checkpoint is useless if
	// Dir can vanish.
	if err := syncDir(s.fs, s.fs.PathDir(opts.Dir)); err != nil {
		return nil, err
	}
	started := time.Now()
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	ck := s.readCheckpoint()
	s.pos, s.syncer.saved = ck.queues, ck
	s.feed = newFeeder(s, opts.Listeners, ck.listeners)
	s.dispatched.Store(s.pos)
	if fw, ok := s.src.(funcWatcher); ok {
		bell := make(chan struct{}, 1)
		s.watch, s.bell = bell, bell
		s.unwatch = fw.WatchFunc(s.pump)
	} else {
		s.watch, s.unwatch = s.src.Watch()
	}
	s.writeMu.Lock()
	from := s.pos
	err := s.drainLocked()
	if err == nil {
		err = s.flushLocked(false)
	}
	s.writeMu.Unlock()
	if err != nil && s.spaceErr == nil {
		s.unwatch()
		s.closeFiles()
		return nil, err
	}
	s.log.Info().Int64("from", from).Int64("to", s.pos).Int("topics", len(s.topics)).
		Int64("took_ms", time.Since(started).Milliseconds()).Msg("consumequeue: opened")
	s.syncer.start()
	go s.feed.run()
	go s.run()
	return s, nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("consumequeue: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("consumequeue: sync dir %s: %w", dir, err)
	}
	return nil
}

func (q *queue) closeFiles() {
	for _, f := range q.files {
		f.f.Close()
	}
}

// closeFiles closes every queue's files and wakes every waiter.
func (s *Store) closeFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.topics {
		for _, q := range t.queues {
			q.mu.Lock()
			q.closeFiles()
			q.files, q.tail, q.gone = nil, nil, true
			if q.notify != nil {
				close(q.notify)
				q.notify = nil
			}
			q.mu.Unlock()
		}
	}
	for k, ch := range s.waiting {
		close(ch)
		delete(s.waiting, k)
	}
}

// Close stops the dispatcher after it has dispatched what is visible,
// written and synced every entry and written the checkpoint; then it
// closes the files. Queries after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.feed.done
	<-s.done
	s.feed.timer.Stop() // the final drain may have armed it
	s.syncer.stop()
	s.unwatch()
	s.writeMu.Lock()
	err := s.werr
	s.closeFiles()
	s.writeMu.Unlock()
	s.progress.wake()
	return err
}

// NoSpace reports whether the dispatcher is waiting for disk space: a
// queue write found the disk full, and it tries again until one goes
// through. The queues serve what they hold meanwhile.
func (s *Store) NoSpace() bool { return s.noSpace.Load() }

// Err returns the write error that stopped the dispatcher, if any.
func (s *Store) Err() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}
