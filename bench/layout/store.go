package layout

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/bench/kafkalayout"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
)

// Layout names one of the two stores.
type Layout string

// The layouts.
const (
	Ferry Layout = "ferry" // one shared commitlog plus consume queues
	Kafka Layout = "kafka" // one log per (topic, partition)
)

// store is what the harness drives.
type store interface {
	Append(msgs []commitlog.Message, res []commitlog.AppendResult) ([]commitlog.AppendResult, error)
	// Read appends up to max whole records of (topic, queue) from offset on
	// to dst and returns dst and how many it appended.
	Read(topic string, queue int32, offset int64, max int, dst []byte) ([]byte, int, error)
	// Watch signals when more may be readable.
	Watch() (<-chan struct{}, func())
	Close() error
}

type storeConfig struct {
	fs          vfs.FS
	dir         string
	flush       commitlog.FlushMode
	segmentSize int64
	maxMessage  int
	topics      []string
	queues      int
	recordSize  int // of the benchmark's records, for the fetch byte limit
}

func openStore(l Layout, c storeConfig) (store, error) {
	switch l {
	case Ferry:
		return openFerry(c)
	case Kafka:
		ks, err := kafkalayout.Open(kafkalayout.Options{
			FS: c.fs, Dir: c.dir, Flush: c.flush, SegmentSize: c.segmentSize, MaxMessageSize: c.maxMessage,
		})
		if err != nil {
			return nil, err
		}
		for _, t := range c.topics {
			if err := ks.CreatePartitions(t, c.queues); err != nil {
				ks.Close()
				return nil, err
			}
		}
		return kafkaStore{ks, c.recordSize}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownLayout, l)
}

type kafkaStore struct {
	*kafkalayout.Store
	recordSize int
}

func (k kafkaStore) Read(topic string, queue int32, offset int64, max int, dst []byte) ([]byte, int, error) {
	// Ask for about max records' worth of bytes, as a fetch with a byte
	// limit would.
	return k.Store.Read(topic, queue, offset, max, max*k.recordSize, dst)
}

// ferryStore is Ferry's consume path: the shared commitlog, the consume
// queues its dispatcher builds, and reads that look entries up in a queue
// and fetch the records from the log.
//
// A watcher goroutine owned by the store turns "the dispatcher has indexed
// everything visible" into the coalesced signal Watch hands out; it stops
// in Close.
type ferryStore struct {
	log *commitlog.Log
	cq  *consumequeue.Store

	watchers atomic.Pointer[[]chan struct{}]
	watchMu  sync.Mutex
	stop     context.CancelFunc
	done     chan struct{}
}

func openFerry(c storeConfig) (*ferryStore, error) {
	log, err := commitlog.Open(commitlog.Options{
		FS: c.fs, Dir: c.fs.PathJoin(c.dir, "commitlog"), Flush: c.flush,
		SegmentSize: c.segmentSize, MaxMessageSize: c.maxMessage,
	})
	if err != nil {
		return nil, err
	}
	cq, err := consumequeue.Open(consumequeue.Options{FS: c.fs, Dir: c.fs.PathJoin(c.dir, "consumequeue"), Source: log})
	if err != nil {
		log.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &ferryStore{log: log, cq: cq, stop: cancel, done: make(chan struct{})}
	go f.watchDispatch(ctx)
	return f, nil
}

func (f *ferryStore) watchDispatch(ctx context.Context) {
	defer close(f.done)
	bell, unwatch := f.log.Watch()
	defer unwatch()
	for {
		if err := f.cq.WaitDispatched(ctx, f.log.VisibleOffset()); err != nil {
			return
		}
		f.ring()
		select {
		case <-bell:
		case <-ctx.Done():
			return
		}
	}
}

func (f *ferryStore) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.watchMu.Lock()
	var next []chan struct{}
	if old := f.watchers.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, ch)
	f.watchers.Store(&next)
	f.watchMu.Unlock()
	return ch, func() {
		f.watchMu.Lock()
		defer f.watchMu.Unlock()
		var keep []chan struct{}
		for _, w := range *f.watchers.Load() {
			if w != ch {
				keep = append(keep, w)
			}
		}
		f.watchers.Store(&keep)
	}
}

func (f *ferryStore) ring() {
	if w := f.watchers.Load(); w != nil {
		for _, ch := range *w {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (f *ferryStore) Append(msgs []commitlog.Message, res []commitlog.AppendResult) ([]commitlog.AppendResult, error) {
	return f.log.Append(msgs, res)
}

// Read looks the records up in the consume queue and reads them from the
// commitlog, one pread per run of adjacent records (a batch appended to one
// queue is one run).
func (f *ferryStore) Read(topic string, queue int32, offset int64, max int, dst []byte) ([]byte, int, error) {
	var ents [readBatch]consumequeue.Entry
	e, err := f.cq.Get(topic, queue, offset, max, ents[:0])
	if err != nil || len(e) == 0 {
		return dst, 0, err
	}
	seg := f.log.Options().SegmentSize
	for i := 0; i < len(e); {
		start, end := e[i].Offset, e[i].Offset+int64(e[i].Size)
		j := i + 1
		for j < len(e) && e[j].Offset == end && e[j].Offset/seg == start/seg {
			end += int64(e[j].Size)
			j++
		}
		n := len(dst)
		dst = grow(dst, int(end-start))
		if err := f.log.ReadAt(dst[n:], start); err != nil {
			return dst[:n], i, err
		}
		i = j
	}
	return dst, len(e), nil
}

func (f *ferryStore) Close() error {
	f.stop()
	<-f.done
	err := f.cq.Close()
	if e := f.log.Close(); err == nil {
		err = e
	}
	return err
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
