package kafkalayout

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// Defaults for Options. The flush settings match commitlog's.
const (
	DefaultSegmentSize     = 1 << 30
	DefaultIndexInterval   = 4096
	DefaultFlushInterval   = commitlog.DefaultFlushInterval
	DefaultFlushDirtyBytes = commitlog.DefaultFlushDirtyBytes
	DefaultSyncTimeout     = commitlog.DefaultSyncTimeout
	DefaultMaxMessageSize  = commitlog.DefaultMaxMessageSize
)

// Sentinel errors.
var (
	ErrClosed       = errors.New("kafkalayout: store closed")
	ErrReadOnly     = errors.New("kafkalayout: store is read-only after a write or sync error")
	ErrFlushTimeout = errors.New("kafkalayout: flush timed out (the message is written and may still become durable)")
	ErrOutOfRange   = errors.New("kafkalayout: offset out of range")
	ErrNoPartition  = errors.New("kafkalayout: no such partition")
	ErrLocked       = errors.New("kafkalayout: directory is in use by another process")
	ErrCorrupt      = errors.New("kafkalayout: corrupt file")
)

// Options configures a Store. The zero value of every field but Dir means
// its default.
type Options struct {
	FS              vfs.FS // default vfs.Default
	Dir             string
	SegmentSize     int64 // a segment is rolled before it would grow past this
	IndexInterval   int   // bytes of log between two index entries
	Flush           commitlog.FlushMode
	FlushInterval   time.Duration // async: longest time a write stays unsynced
	FlushDirtyBytes int64         // async: flush early once this much is waiting
	SyncTimeout     time.Duration // sync: an append waits this long, then ErrFlushTimeout
	SyncWorkers     int           // goroutines issuing fdatasyncs; default 4 × GOMAXPROCS, at least 8
	MaxMessageSize  int
	Now             func() time.Time
}

// Validate fills in defaults and explains any value it cannot accept.
func (o *Options) Validate() error {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Dir == "" {
		return errors.New("kafkalayout: Options.Dir is required")
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.IndexInterval == 0 {
		o.IndexInterval = DefaultIndexInterval
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
	if o.SyncWorkers == 0 {
		o.SyncWorkers = max(8, 4*runtime.GOMAXPROCS(0))
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SegmentSize > 1<<32-1 {
		return fmt.Errorf("kafkalayout: segment size %d: index positions are 32 bits, so at most 4 GiB", o.SegmentSize)
	}
	if o.SegmentSize < 4096 || int64(o.MaxMessageSize)+256+protocol.MaxTopicLen+protocol.MaxPropertiesLen > o.SegmentSize {
		return fmt.Errorf("kafkalayout: segment size %d must be at least 4096 and hold a message of %d bytes with headers", o.SegmentSize, o.MaxMessageSize)
	}
	if o.IndexInterval < 0 || o.FlushInterval < 0 || o.FlushDirtyBytes < 0 || o.SyncTimeout < 0 || o.SyncWorkers < 0 || o.MaxMessageSize < 0 {
		return errors.New("kafkalayout: intervals, sizes, timeouts and worker counts must not be negative")
	}
	if o.Flush != commitlog.FlushAsync && o.Flush != commitlog.FlushSync {
		return fmt.Errorf("kafkalayout: unknown flush mode %d", o.Flush)
	}
	return nil
}

type partKey struct {
	topic string
	id    int32
}

// Store is a set of per-partition logs. All methods are safe for concurrent
// use.
//
// Concurrency: gate is held shared by every append while it writes and
// exclusively by Close, so Close sees no write in progress. pmu guards the
// partition map; each partition has its own append lock (partition.mu).
// Lock order: gate, then pmu or partition.mu, never both of the latter.
// The sync workers and, in async mode, the interval flusher are goroutines
// owned by the Store and gone after Close.
type Store struct {
	opts Options
	fs   vfs.FS
	lock io.Closer

	gate   sync.RWMutex
	closed bool // guarded by gate

	pmu   sync.RWMutex
	parts map[partKey]*partition // guarded by pmu
	list  []*partition           // guarded by pmu, in creation order

	sticky atomic.Pointer[error]
	dirty  atomic.Int64 // async: bytes written since the last flush round was queued

	syncq    syncQueue
	tickBell chan struct{}
	watchers commitlog.Bells

	stop chan struct{}
	wg   sync.WaitGroup
	bufs sync.Pool
}

// Open opens or creates the store in opts.Dir, recovering every partition,
// and starts its flush goroutines.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		opts:     opts,
		fs:       opts.FS,
		parts:    make(map[partKey]*partition),
		tickBell: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	s.syncq.bell = make(chan struct{}, 1)
	if err := s.fs.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("kafkalayout: create %s: %w", opts.Dir, err)
	}
	// The directory entry of Dir must be durable before anything in it is.
	if err := syncDir(s.fs, s.fs.PathDir(opts.Dir)); err != nil {
		return nil, err
	}
	lock, err := s.fs.Lock(s.fs.PathJoin(opts.Dir, "LOCK"))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLocked, opts.Dir, err)
	}
	s.lock = lock
	if err := s.recoverAll(); err != nil {
		s.closeFiles()
		lock.Close()
		return nil, err
	}
	for range opts.SyncWorkers {
		s.wg.Add(1)
		go s.syncWorker()
	}
	if opts.Flush == commitlog.FlushAsync {
		s.wg.Add(1)
		go s.intervalFlusher()
	}
	return s, nil
}

// recoverAll opens every partition directory found in Dir.
func (s *Store) recoverAll() error {
	names, err := s.fs.List(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("kafkalayout: list %s: %w", s.opts.Dir, err)
	}
	sort.Strings(names)
	for _, n := range names {
		i := strings.LastIndexByte(n, '-')
		if i <= 0 {
			continue
		}
		id, err := strconv.ParseInt(n[i+1:], 10, 32)
		if err != nil || id < 0 {
			continue
		}
		p, err := s.openPartition(partKey{n[:i], int32(id)}, false)
		if err != nil {
			return err
		}
		s.parts[p.key] = p
		s.list = append(s.list, p)
	}
	return nil
}

// Options returns the options in force (defaults filled in).
func (s *Store) Options() Options { return s.opts }

// Err returns the sticky error that made the store read-only, if any.
func (s *Store) Err() error {
	if e := s.sticky.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *Store) setSticky(err error) error {
	e := fmt.Errorf("%w: %w", ErrReadOnly, err)
	if s.sticky.CompareAndSwap(nil, &e) {
		return e
	}
	return *s.sticky.Load()
}

// partition returns the partition of key, creating it if create is set.
func (s *Store) partition(key partKey, create bool) (*partition, error) {
	s.pmu.RLock()
	p := s.parts[key]
	s.pmu.RUnlock()
	if p != nil || !create {
		if p == nil {
			return nil, fmt.Errorf("%w: %s-%d", ErrNoPartition, key.topic, key.id)
		}
		return p, nil
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if p := s.parts[key]; p != nil {
		return p, nil
	}
	if len(key.topic) == 0 || len(key.topic) > protocol.MaxTopicLen || strings.ContainsAny(key.topic, "/\\\x00") || key.topic == "." || key.topic == ".." || key.id < 0 {
		return nil, fmt.Errorf("kafkalayout: invalid partition %q-%d", key.topic, key.id)
	}
	p, err := s.openPartition(key, true)
	if err != nil {
		return nil, err
	}
	s.parts[key] = p
	s.list = append(s.list, p)
	return p, nil
}

// CreatePartitions creates partitions 0..n-1 of topic ahead of the first
// append, as creating a topic does in Kafka.
func (s *Store) CreatePartitions(topic string, n int) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed {
		return ErrClosed
	}
	for i := range n {
		if _, err := s.partition(partKey{topic, int32(i)}, true); err != nil {
			return err
		}
	}
	return nil
}

// Partitions returns the number of partitions.
func (s *Store) Partitions() int {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return len(s.list)
}

func (s *Store) snapshot() []*partition {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return append([]*partition(nil), s.list...)
}

func (s *Store) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (s *Store) putBuf(b *[]byte) {
	if cap(*b) <= 8<<20 {
		s.bufs.Put(b)
	}
}

// Append stores msgs, each in the partition (Topic, QueueID), and returns
// where each went (appended to res[:0]): QueueOffset is the offset in the
// partition and Offset the byte position in its segment. A run of messages
// for the same partition is written with one pwrite. In sync mode Append
// returns after the group commits covering every run. Validation errors
// reject the whole batch before anything is written.
func (s *Store) Append(msgs []commitlog.Message, res []commitlog.AppendResult) ([]commitlog.AppendResult, error) {
	res = res[:0]
	if len(msgs) == 0 {
		return res, nil
	}
	bufp := s.getBuf()
	defer s.putBuf(bufp)
	buf := *bufp
	for i := range msgs {
		size, err := msgs[i].EncodedSize(s.opts.MaxMessageSize)
		if err != nil {
			return res, fmt.Errorf("message %d: %w", i, err)
		}
		buf = appendRecord(buf, &msgs[i], size)
	}
	*bufp = buf

	type wait struct {
		p     *partition
		round chan struct{}
		end   int64
	}
	var waitsArr [4]wait
	waits := waitsArr[:0]

	s.gate.RLock()
	if s.closed {
		s.gate.RUnlock()
		return res, ErrClosed
	}
	var err error
	pos := 0
	for start := 0; start < len(msgs); {
		key := partKey{msgs[start].Topic, msgs[start].QueueID}
		from, end := pos, start
		for end < len(msgs) && msgs[end].Topic == key.topic && msgs[end].QueueID == key.id {
			pos += int(protocol.RecordSize(buf[pos:]))
			end++
		}
		var p *partition
		if p, err = s.partition(key, true); err != nil {
			break
		}
		var round chan struct{}
		var last int64
		if res, round, last, err = p.append(buf[from:pos], res); err != nil {
			break
		}
		if s.opts.Flush == commitlog.FlushSync {
			waits = append(waits, wait{p, round, last})
		}
		start = end
	}
	s.gate.RUnlock()
	if err != nil {
		return res[:0], err
	}
	if s.opts.Flush == commitlog.FlushAsync {
		if s.dirty.Add(int64(len(buf))) >= s.opts.FlushDirtyBytes {
			ring(s.tickBell)
		}
		s.ringWatchers()
		return res, nil
	}
	for _, w := range waits {
		if err := s.waitRound(w.p, w.round, w.end); err != nil {
			return res, err
		}
	}
	return res, nil
}

var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func (s *Store) waitRound(p *partition, round chan struct{}, end int64) error {
	t := timerPool.Get().(*time.Timer)
	t.Reset(s.opts.SyncTimeout)
	defer func() {
		t.Stop()
		timerPool.Put(t)
	}()
	select {
	case <-round:
	case <-t.C:
		return ErrFlushTimeout
	}
	if p.flushed.Load() >= end {
		return nil
	}
	if err := s.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Watch returns a 1-slot channel that receives a signal whenever more of
// the store becomes readable (after appends in async mode, after flushes in
// sync mode; signals coalesce), and a function to stop.
func (s *Store) Watch() (<-chan struct{}, func()) { return s.watchers.Watch() }

func (s *Store) ringWatchers() { s.watchers.Ring() }

func ring(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Sync makes everything appended before the call durable.
func (s *Store) Sync() error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.syncAll()
}

func (s *Store) syncAll() error {
	var first error
	for _, p := range s.snapshot() {
		if err := s.flushPartition(p); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close syncs every partition, stops the flush goroutines and closes the
// files. Appends after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.gate.Lock()
	if s.closed {
		s.gate.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.gate.Unlock()
	close(s.stop)
	s.wg.Wait()
	// No appender writes any more; release every waiter with a last round.
	err := s.syncAll()
	for _, p := range s.snapshot() {
		if e := p.closeFiles(); err == nil && e != nil {
			err = e
		}
	}
	if e := s.Err(); err == nil {
		err = e
	}
	if e := s.lock.Close(); err == nil && e != nil {
		err = e
	}
	return err
}

func (s *Store) closeFiles() {
	for _, p := range s.list {
		p.closeFiles()
	}
}
