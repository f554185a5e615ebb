package layout

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/internal/poll"
)

// Sentinel errors.
var (
	ErrUnknownLayout = errors.New("layout: unknown layout")
	ErrConfig        = errors.New("layout: invalid configuration")
	ErrMalformed     = errors.New("layout: malformed report")
)

// Config is one sweep: every layout × flush mode × topic count.
type Config struct {
	Layouts     []Layout
	Flush       []commitlog.FlushMode
	Topics      []int
	Queues      int           // queues (partitions) per topic
	MessageSize int           // body bytes
	Batch       int           // records per append call
	Producers   int           // goroutines appending
	Consumers   int           // goroutines reading; 0 turns consumption off
	BytesPerPt  int64         // stop a point once this many record bytes are stored…
	MaxDuration time.Duration // …or after this long, whichever comes first
	SegmentSize int64         // both layouts
	Dir         string        // each point runs in a fresh subdirectory, removed after it
	FS          vfs.FS        // default vfs.Default; a MemFS for tests
	// Progress, if set, is called after each point.
	Progress func(Point)
}

// Defaults.
const (
	DefaultQueues      = 8
	DefaultMessageSize = 1024
	DefaultBatch       = 16
	DefaultProducers   = 64
	DefaultConsumers   = 4
	DefaultBytesPerPt  = 8 << 30
	DefaultMaxDuration = 60 * time.Second
	DefaultSegmentSize = 1 << 30
	readBatch          = 32
)

// Validate fills in defaults and explains what it cannot accept.
func (c *Config) Validate() error {
	if len(c.Layouts) == 0 {
		c.Layouts = []Layout{Ferry, Kafka}
	}
	if len(c.Flush) == 0 {
		c.Flush = []commitlog.FlushMode{commitlog.FlushAsync, commitlog.FlushSync}
	}
	if len(c.Topics) == 0 {
		c.Topics = []int{1, 8, 64, 256, 1024}
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Queues, DefaultQueues)
	def(&c.MessageSize, DefaultMessageSize)
	def(&c.Batch, DefaultBatch)
	def(&c.Producers, DefaultProducers)
	if c.BytesPerPt == 0 {
		c.BytesPerPt = DefaultBytesPerPt
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = DefaultMaxDuration
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	for _, l := range c.Layouts {
		if l != Ferry && l != Kafka {
			return fmt.Errorf("%w: %q (want ferry or kafka)", ErrUnknownLayout, l)
		}
	}
	for _, t := range c.Topics {
		if t < 1 || t > 100000 {
			return fmt.Errorf("%w: topic count %d must be 1 to 100000", ErrConfig, t)
		}
	}
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: a data directory is required", ErrConfig)
	case c.Queues < 1 || c.Queues > 1024:
		return fmt.Errorf("%w: %d queues per topic; want 1 to 1024", ErrConfig, c.Queues)
	case c.MessageSize < 1 || c.MessageSize > 1<<20:
		return fmt.Errorf("%w: message size %d; want 1 B to 1 MiB", ErrConfig, c.MessageSize)
	case c.Batch < 1 || c.Batch > 1024:
		return fmt.Errorf("%w: batch %d; want 1 to 1024 records per append", ErrConfig, c.Batch)
	case c.Producers < 1 || c.Consumers < 0:
		return fmt.Errorf("%w: need at least one producer and no negative consumer count", ErrConfig)
	case c.BytesPerPt < 1<<20:
		return fmt.Errorf("%w: %d bytes per point is below 1 MiB", ErrConfig, c.BytesPerPt)
	case c.SegmentSize < 16<<20 || c.SegmentSize > 1<<32-1:
		return fmt.Errorf("%w: segment size %d; want 16 MiB to 4 GiB", ErrConfig, c.SegmentSize)
	}
	return nil
}

// Point is the result of one (layout, flush, topics) run.
type Point struct {
	Layout       Layout  `json:"layout"`
	Flush        string  `json:"flush"`
	Topics       int     `json:"topics"`
	Queues       int     `json:"queues"`
	Messages     int64   `json:"messages"`
	RecordBytes  int64   `json:"record_bytes"`
	Seconds      float64 `json:"seconds"`
	MsgPerSec    float64 `json:"msg_per_sec"`
	MiBPerSec    float64 `json:"mib_per_sec"`
	P50Micros    int64   `json:"append_p50_us"`
	P99Micros    int64   `json:"append_p99_us"`
	Consumed     int64   `json:"consumed"`
	ConsumeRate  float64 `json:"consume_msg_per_sec"`
	DiskWritten  int64   `json:"disk_write_bytes"` // from /proc/self/io, -1 if unavailable
	OpenFiles    int     `json:"open_files"`       // from /proc/self/fd, -1 if unavailable
	HitByteLimit bool    `json:"hit_byte_limit"`   // false: stopped by MaxDuration
}

// Report is a whole sweep with the machine it ran on.
type Report struct {
	Date    string  `json:"date"`
	Machine Machine `json:"machine"`
	Config  struct {
		Queues      int    `json:"queues"`
		MessageSize int    `json:"message_size"`
		Batch       int    `json:"batch"`
		Producers   int    `json:"producers"`
		Consumers   int    `json:"consumers"`
		BytesPerPt  int64  `json:"bytes_per_point"`
		MaxDuration string `json:"max_duration"`
		SegmentSize int64  `json:"segment_size"`
	} `json:"config"`
	Points []Point `json:"points"`
}

// Run runs the sweep. Points run one after another, each in a fresh
// directory under cfg.Dir that is removed afterwards.
func Run(ctx context.Context, cfg Config) (Report, error) {
	var r Report
	if err := cfg.Validate(); err != nil {
		return r, err
	}
	r.Date = time.Now().UTC().Format("2006-01-02")
	r.Machine = probeMachine()
	r.Config.Queues, r.Config.MessageSize, r.Config.Batch = cfg.Queues, cfg.MessageSize, cfg.Batch
	r.Config.Producers, r.Config.Consumers = cfg.Producers, cfg.Consumers
	r.Config.BytesPerPt, r.Config.MaxDuration, r.Config.SegmentSize = cfg.BytesPerPt, cfg.MaxDuration.String(), cfg.SegmentSize
	for _, fl := range cfg.Flush {
		for _, topics := range cfg.Topics {
			for _, l := range cfg.Layouts {
				if err := ctx.Err(); err != nil {
					return r, err
				}
				p, err := runPoint(ctx, cfg, l, fl, topics)
				if err != nil {
					return r, fmt.Errorf("layout: %s %s %d topics: %w", l, fl, topics, err)
				}
				r.Points = append(r.Points, p)
				if cfg.Progress != nil {
					cfg.Progress(p)
				}
			}
		}
	}
	return r, nil
}

type pair struct {
	topic string
	queue int32
}

func runPoint(ctx context.Context, cfg Config, l Layout, fl commitlog.FlushMode, topics int) (Point, error) {
	pt := Point{Layout: l, Flush: fl.String(), Topics: topics, Queues: cfg.Queues}
	dir := cfg.FS.PathJoin(cfg.Dir, fmt.Sprintf("%s-%s-%d", l, fl, topics))
	if err := cfg.FS.RemoveAll(dir); err != nil {
		return pt, err
	}
	defer cfg.FS.RemoveAll(dir)
	names := make([]string, topics)
	pairs := make([]pair, 0, topics*cfg.Queues)
	for t := range names {
		names[t] = fmt.Sprintf("bench-%05d", t)
		for q := range cfg.Queues {
			pairs = append(pairs, pair{names[t], int32(q)})
		}
	}
	payload := make([]byte, cfg.MessageSize+4096)
	rand.Read(payload)
	recSize, err := (&commitlog.Message{Topic: names[len(names)-1], Body: payload[:cfg.MessageSize],
		Properties: benchProps, BornHost: bornHost, StoreHost: storeHost}).EncodedSize(0)
	if err != nil {
		return pt, err
	}
	st, err := openStore(l, storeConfig{fs: cfg.FS, dir: dir, flush: fl, segmentSize: cfg.SegmentSize,
		maxMessage: max(cfg.MessageSize, 1024), topics: names, queues: cfg.Queues, recordSize: recSize})
	if err != nil {
		return pt, err
	}
	closed := false
	defer func() {
		if !closed {
			st.Close()
		}
	}()
	// A broker serves topics that exist: give every (topic, queue) its
	// first record, unmeasured, so neither layout is timed creating
	// thousands of directories and files (each a journal operation that
	// waits behind the sync-mode commits).
	if err := warmUp(ctx, st, pairs, payload[:16]); err != nil {
		return pt, fmt.Errorf("warm-up: %w", err)
	}
	settleWriteback(cfg.FS)

	runCtx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	var (
		budget    atomic.Int64
		nextBatch atomic.Uint64
		produced  atomic.Int64
		stored    atomic.Int64
		firstErr  error
		errOnce   sync.Once
		wg        sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	budget.Store(cfg.BytesPerPt)
	hists := make([]*hdrhistogram.Histogram, cfg.Producers)
	ioBefore := readProcIO()
	start := time.Now()
	for p := range cfg.Producers {
		h := hdrhistogram.New(1, 60_000_000, 3)
		hists[p] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			produce(runCtx, st, cfg, pairs, payload, p, int64(recSize), &budget, &nextBatch, &produced, &stored, h, fail)
		}()
	}
	consumed := make([]atomic.Int64, max(cfg.Consumers, 1))
	producersDone := make(chan struct{})
	cs := &consumeState{produced: &produced, producersDone: producersDone, allRead: make(chan struct{})}
	var cwg sync.WaitGroup
	for c := range cfg.Consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			consume(ctx, st, pairs, c, cfg.Consumers, &consumed[c], cs, fail)
		}()
	}
	wg.Wait()
	writeSecs := time.Since(start).Seconds()
	close(producersDone)
	pt.OpenFiles = countOpenFiles()
	cwg.Wait()
	consumeSecs := time.Since(start).Seconds()
	closed = true
	cerr := st.Close()
	ioAfter := readProcIO()
	if firstErr != nil {
		return pt, firstErr
	}
	if cerr != nil {
		return pt, cerr
	}
	merged := hdrhistogram.New(1, 60_000_000, 3)
	for _, h := range hists {
		merged.Merge(h)
	}
	pt.Messages = produced.Load()
	pt.RecordBytes = stored.Load()
	pt.Seconds = writeSecs
	pt.MsgPerSec = float64(pt.Messages) / writeSecs
	pt.MiBPerSec = float64(pt.RecordBytes) / (1 << 20) / writeSecs
	pt.P50Micros = merged.ValueAtQuantile(50)
	pt.P99Micros = merged.ValueAtQuantile(99)
	for i := range consumed {
		pt.Consumed += consumed[i].Load()
	}
	if cfg.Consumers > 0 {
		pt.ConsumeRate = float64(pt.Consumed) / consumeSecs
	}
	pt.DiskWritten = -1
	if ioBefore >= 0 && ioAfter >= 0 {
		pt.DiskWritten = ioAfter - ioBefore
	}
	pt.HitByteLimit = budget.Load() <= 0
	return pt, nil
}

var (
	benchProps = []byte("TAGS\x01bench")
	bornHost   = netip.MustParseAddrPort("192.0.2.10:40000")
	storeHost  = netip.MustParseAddrPort("192.0.2.1:10911")
)

// produce appends batches until the byte budget is spent or ctx ends.
// Every batch goes to the next (topic, queue) in turn, so the producers
// together write across all of them.
func produce(ctx context.Context, st store, cfg Config, pairs []pair, payload []byte, id int, recSize int64,
	budget *atomic.Int64, nextBatch *atomic.Uint64, produced, stored *atomic.Int64, h *hdrhistogram.Histogram, fail func(error)) {
	batch := make([]commitlog.Message, cfg.Batch)
	res := make([]commitlog.AppendResult, 0, cfg.Batch)
	for ctx.Err() == nil {
		if budget.Add(-recSize*int64(cfg.Batch)) < -recSize*int64(cfg.Batch) {
			return
		}
		n := nextBatch.Add(1) - 1
		pr := pairs[n%uint64(len(pairs))]
		now := time.Now()
		for i := range batch {
			shift := int((n*uint64(cfg.Batch) + uint64(i)) % 4096)
			batch[i] = commitlog.Message{
				Topic: pr.topic, QueueID: pr.queue, Body: payload[shift : shift+cfg.MessageSize],
				Properties: benchProps, BornTimestamp: now.UnixMilli(), BornHost: bornHost, StoreHost: storeHost,
			}
		}
		var err error
		res, err = st.Append(batch, res[:0])
		if err != nil {
			fail(fmt.Errorf("producer %d: %w", id, err))
			return
		}
		h.RecordValue(max(1, time.Since(now).Microseconds()))
		produced.Add(int64(len(res)))
		var b int64
		for _, r := range res {
			b += int64(r.Size)
		}
		stored.Add(b)
	}
}

// consumeState is shared by the consumers of one point.
type consumeState struct {
	total         atomic.Int64  // records read by all consumers
	produced      *atomic.Int64 // final once producersDone is closed
	producersDone <-chan struct{}
	allRead       chan struct{} // closed once total reaches produced after the producers stopped
	once          sync.Once
}

func (cs *consumeState) checkDone() bool {
	select {
	case <-cs.producersDone:
		if cs.total.Load() >= cs.produced.Load() {
			cs.once.Do(func() { close(cs.allRead) })
			return true
		}
	default:
	}
	return false
}

// drainTimeout bounds how long consumers go on after the producers stop.
const drainTimeout = 10 * time.Second

// consume reads the queues assigned to consumer id (every n-th) until the
// producers are done and everything they stored has been read, or for at
// most drainTimeout after the producers stopped.
func consume(ctx context.Context, st store, pairs []pair, id, n int, consumed *atomic.Int64, cs *consumeState, fail func(error)) {
	bell, unwatch := st.Watch()
	defer unwatch()
	var mine []pair
	for i := id; i < len(pairs); i += n {
		mine = append(mine, pairs[i])
	}
	next := make([]int64, len(mine))
	for i := range next {
		next[i] = 1 // past the warm-up record
	}
	buf := make([]byte, 0, 256<<10)
	var drain <-chan time.Time
	for {
		progress := false
		for i, pr := range mine {
			var got int
			var err error
			buf, got, err = st.Read(pr.topic, pr.queue, next[i], readBatch, buf[:0])
			if err != nil {
				fail(fmt.Errorf("consumer %d: %w", id, err))
				return
			}
			if got > 0 {
				next[i] += int64(got)
				consumed.Add(int64(got))
				cs.total.Add(int64(got))
				progress = true
			}
		}
		if cs.checkDone() {
			return
		}
		if progress {
			continue
		}
		if drain == nil {
			select {
			case <-cs.producersDone:
				t := time.NewTimer(drainTimeout)
				defer t.Stop()
				drain = t.C
			default:
			}
		}
		select {
		case <-bell:
		case <-cs.allRead:
			return
		case <-drain:
			return
		case <-ctx.Done():
			return
		case <-cs.producersDone:
			if drain != nil {
				// Already draining: wait for data, the others or the deadline.
				select {
				case <-bell:
				case <-cs.allRead:
					return
				case <-drain:
					return
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// warmUp appends one small record to every (topic, queue) and waits until
// each is readable, so queue files and directories exist before a point
// is measured.
func warmUp(ctx context.Context, st store, pairs []pair, body []byte) error {
	msgs := make([]commitlog.Message, 0, 256)
	for i, p := range pairs {
		msgs = append(msgs, commitlog.Message{Topic: p.topic, QueueID: p.queue, Body: body,
			Properties: benchProps, BornHost: bornHost, StoreHost: storeHost})
		if len(msgs) == cap(msgs) || i == len(pairs)-1 {
			if _, err := st.Append(msgs, nil); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for _, p := range pairs {
		var readErr error
		err := poll.Until(ctx, time.Until(deadline), time.Millisecond, func() bool {
			_, got, err := st.Read(p.topic, p.queue, 0, 1, nil)
			readErr = err
			return err != nil || got == 1
		})
		if readErr != nil {
			return readErr
		}
		if err != nil {
			return fmt.Errorf("%s/%d not readable after its warm-up record", p.topic, p.queue)
		}
	}
	return nil
}
