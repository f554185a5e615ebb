package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/controller"
)

// SlaveLog is what the slave's side needs of its commitlog
// (*commitlog.Log).
type SlaveLog interface {
	AppendRaw(off int64, b []byte) error
	Truncate(off int64) error
	Reset(base int64) error
	Epochs() ([]commitlog.EpochEntry, error)
	StartEpoch(epoch, start int64) error
	WrittenOffset() int64
	FlushedOffset() int64
	Sync() error
}

// Defaults of ReceiverConfig.
const (
	DefaultAckInterval = 200 * time.Millisecond
	DefaultDeadTimeout = 3 * DefaultIdle
	DefaultMinBackoff  = 50 * time.Millisecond
	DefaultMaxBackoff  = 2 * time.Second
	DefaultDialTimeout = 3 * time.Second
)

// ReceiverConfig configures the slave's side.
type ReceiverConfig struct {
	Cluster    string
	BrokerName string
	ReplicaID  int64
	// Master returns the master's replication address and the group epoch
	// (both as the control plane has them); it is called before every
	// connection.
	Master func() (addr string, epoch int64)
	// RequireFlushed makes every ACK's flushed offset current: after
	// writing, the receiver syncs the log before it acks (for groups that
	// count flushed acks). Otherwise the flushed offset is whatever the
	// log's own flusher has synced. Either way it never passes a completed
	// fsync.
	RequireFlushed bool
	// AckInterval is the longest time between ACKs while nothing changes
	// (default 200 ms); a write is acked at once.
	AckInterval time.Duration
	// DeadTimeout is how long a stream may stay silent before the master
	// is taken for dead and the receiver reconnects (default three idle
	// intervals of the master).
	DeadTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between connections
	// (doubling from the minimum; a stream that made progress resets it).
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	DialTimeout time.Duration
	// Dial, if set, opens the connection to the master instead of a plain
	// TCP dial (for instance to authenticate it first).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// BeforeTruncate, if set, is called before the log is cut back to off,
	// or emptied to start over at off because the master no longer keeps
	// what follows the slave's end (the broker stops dispatching past it,
	// or drops its consume queues); an error ends the stream.
	BeforeTruncate func(off int64) error
	// OnCommit, if set, receives the commit offset of the COMMIT frames
	// (called from the receiving goroutine; it never passes the end of
	// what was received). A COMMIT read together with DATA frames behind
	// it is handed on once they are written and acked, and several such
	// COMMITs as the largest.
	OnCommit func(off int64)
	Logger   zerolog.Logger
}

func (c *ReceiverConfig) validate() error {
	if c.Master == nil {
		return errors.New("replica: ReceiverConfig.Master is required")
	}
	if len(c.Cluster) > 255 || len(c.BrokerName) > 255 {
		return errors.New("replica: cluster or broker name longer than 255 bytes")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AckInterval, DefaultAckInterval)
	def(&c.DeadTimeout, DefaultDeadTimeout)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.DialTimeout, DefaultDialTimeout)
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	return nil
}

// ReceiverStatus is a snapshot of the slave's side.
type ReceiverStatus struct {
	Connected bool
	Epoch     int64 // of the current or last stream
	Written   int64 // last acked written offset
	Flushed   int64 // last acked flushed offset
	Streams   int   // connections that got past the handshake
	Err       error // what ended the last stream (nil before any ended)
}

// Receiver is the slave's side: one goroutine, owned by it, that keeps a
// stream from the master open, reconnecting with back-off, until Close or
// the context given to StartReceiver ends.
type Receiver struct {
	cfg    ReceiverConfig
	log    SlaveLog
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status ReceiverStatus
}

// StartReceiver starts replicating into log.
func StartReceiver(ctx context.Context, cfg ReceiverConfig, log SlaveLog) (*Receiver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Receiver{cfg: cfg, log: log, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r, nil
}

// Close stops the receiver and waits for its goroutines.
func (r *Receiver) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// Status returns a snapshot of the receiver's state.
func (r *Receiver) Status() ReceiverStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Receiver) update(f func(*ReceiverStatus)) {
	r.mu.Lock()
	f(&r.status)
	r.mu.Unlock()
}

func (r *Receiver) run(ctx context.Context) {
	defer close(r.done)
	backoff := r.cfg.MinBackoff
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		progressed, err := r.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		r.update(func(s *ReceiverStatus) { s.Connected, s.Err = false, err })
		lg := r.cfg.Logger.Warn()
		if errors.Is(err, ErrStaleEpoch) {
			lg = r.cfg.Logger.Error()
		}
		lg.Err(err).Dur("retry_in", backoff).Msg("replica: stream from the master ended")
		if progressed {
			backoff = r.cfg.MinBackoff
		}
		t.Reset(backoff)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

// session is one connection to the master. The receiving goroutine may
// write an ERROR, the acking one ACKs: the writer's lock keeps frames
// whole.
type session struct {
	r     *Receiver
	epoch int64
	frameWriter
}

// read reads one frame within the dead timeout; an ERROR frame becomes a
// *RemoteError (wrapping ErrStaleEpoch for a stale epoch).
func (s *session) read(br *bufio.Reader, buf *[]byte) (Frame, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(s.r.cfg.DeadTimeout))
	f, err := ReadFrame(br, buf)
	if err != nil {
		return f, fmt.Errorf("replica: read from the master: %w", err)
	}
	if f.Type == FrameError {
		re := &RemoteError{Code: f.Code, Reason: f.Reason}
		if f.Code == CodeStaleEpoch {
			return f, fmt.Errorf("%w: %w", ErrStaleEpoch, re)
		}
		return f, re
	}
	return f, nil
}

// stream connects, runs the handshake and receives until the stream ends;
// progressed reports whether it got past the handshake.
func (r *Receiver) stream(ctx context.Context) (progressed bool, err error) {
	addr, epoch := r.cfg.Master()
	var conn net.Conn
	if r.cfg.Dial != nil {
		dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
		conn, err = r.cfg.Dial(dctx, addr)
		cancel()
	} else {
		d := net.Dialer{Timeout: r.cfg.DialTimeout}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return false, fmt.Errorf("replica: dial the master at %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s := &session{r: r, epoch: epoch, frameWriter: frameWriter{conn: conn, timeout: r.cfg.DeadTimeout}}
	br := bufio.NewReaderSize(conn, 256<<10)
	var buf []byte

	hist, last, err := r.history()
	if err != nil {
		return false, err
	}
	if err := s.write(&Frame{Type: FrameHello, Version: Version, Epoch: epoch, LastEpoch: last,
		ReplicaID: r.cfg.ReplicaID, Cluster: r.cfg.Cluster, BrokerName: r.cfg.BrokerName}); err != nil {
		return false, fmt.Errorf("replica: send HELLO: %w", err)
	}
	f, err := s.read(br, &buf)
	if err != nil {
		return false, err
	}
	if f.Type != FrameEpochEnd {
		return false, s.fail(CodeProtocol, "expected EPOCH_END, got %s", f.Type)
	}
	if f.Epoch > last {
		return false, s.fail(CodeProtocol, "EPOCH_END names epoch %d, above the last one asked for (%d)", f.Epoch, last)
	}
	from, err := r.truncate(f.Epoch, f.Offset, hist)
	if err != nil {
		return false, fmt.Errorf("replica: truncate to the master's history: %w", err)
	}
	if from < f.Start {
		if from, err = r.restart(f.Start); err != nil {
			return false, fmt.Errorf("replica: start over at the master's oldest offset %d: %w", f.Start, err)
		}
	}
	if _, last, err = r.history(); err != nil {
		return false, err
	}
	if err := s.write(&Frame{Type: FrameFetch, Offset: from}); err != nil {
		return false, fmt.Errorf("replica: send FETCH: %w", err)
	}
	r.update(func(st *ReceiverStatus) { st.Connected, st.Epoch = true, epoch; st.Streams++ })
	r.cfg.Logger.Info().Str("master", addr).Int64("epoch", epoch).Int64("offset", from).Msg("replica: streaming from the master")

	bell := make(chan struct{}, 1)
	bell <- struct{}{} // the first ACK tells the master where the slave is
	quit := make(chan struct{})
	ackErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := s.acks(bell, quit)
		ackErr <- err
		if err != nil {
			conn.Close() // ends the receiving loop
		}
	}()
	err = s.receive(br, &buf, from, last, bell)
	close(quit)
	wg.Wait()
	if aerr := <-ackErr; aerr != nil && ctx.Err() == nil {
		err = aerr
	}
	return true, err
}

// history returns the log's epoch history and its last epoch (-1 when
// empty).
func (r *Receiver) history() ([]commitlog.EpochEntry, int64, error) {
	h, err := r.log.Epochs()
	if err != nil || len(h) == 0 {
		return h, -1, err
	}
	return h, h[len(h)-1].Epoch, nil
}

// truncate cuts the log where the master's history (its EPOCH_END answer
// for epoch e: the end of e on the master) leaves the slave's, and returns
// where to fetch from. Entries of the history without bytes go too.
func (r *Receiver) truncate(e, masterEnd int64, hist []commitlog.EpochEntry) (int64, error) {
	written := r.log.WrittenOffset()
	cut := masterEnd
	if e >= 0 {
		_, own := toHistory(hist).EndOf(e, written)
		cut = min(cut, own)
	}
	if cut < written {
		r.cfg.Logger.Warn().Int64("from", written).Int64("to", cut).Int64("epoch", e).
			Msg("replica: truncating what the master never had")
		if r.cfg.BeforeTruncate != nil {
			if err := r.cfg.BeforeTruncate(cut); err != nil {
				return 0, err
			}
		}
	}
	if err := r.log.Truncate(min(cut, written)); err != nil {
		return 0, err
	}
	return r.log.WrittenOffset(), nil
}

// restart empties the log to start it at the master's oldest offset: the
// master no longer keeps what follows the slave's end.
func (r *Receiver) restart(start int64) (int64, error) {
	r.cfg.Logger.Warn().Int64("end", r.log.WrittenOffset()).Int64("master_start", start).
		Msg("replica: too far behind the master; starting over from its oldest segment")
	if r.cfg.BeforeTruncate != nil {
		if err := r.cfg.BeforeTruncate(start); err != nil {
			return 0, err
		}
	}
	if err := r.log.Reset(start); err != nil {
		return 0, err
	}
	return r.log.WrittenOffset(), nil
}

func toHistory(h []commitlog.EpochEntry) History {
	out := make(History, len(h))
	for i, e := range h {
		out[i] = controller.EpochEntry{Epoch: e.Epoch, StartOffset: e.StartOffset}
	}
	return out
}

// receive writes DATA frames into the log until the stream fails. last is
// the epoch of the history's last entry.
//
// A COMMIT that arrives with more frames behind it (the master sends the
// commit offset in the same write as the next DATA frame) is handed to
// OnCommit only once the frames read with it are written and acked: the
// slave's dispatch of committed records would otherwise run before the
// write and the ACK that an acks=all send on the master is waiting for.
func (s *session) receive(br *bufio.Reader, buf *[]byte, pos, last int64, bell chan<- struct{}) error {
	log := s.r.log
	commit := int64(-1) // a COMMIT not yet handed to OnCommit
	takeCommit := func() {
		if commit >= 0 && s.r.cfg.OnCommit != nil {
			s.r.cfg.OnCommit(commit)
		}
		commit = -1
	}
	for {
		if br.Buffered() == 0 {
			takeCommit() // nothing more has arrived
		}
		f, err := s.read(br, buf)
		if err != nil {
			return err
		}
		if f.Type == FrameCommit {
			switch {
			case f.Epoch != s.epoch:
				return s.fail(CodeStaleEpoch, "COMMIT of epoch %d on a stream of epoch %d", f.Epoch, s.epoch)
			case f.Offset > pos:
				return s.fail(CodeProtocol, "COMMIT at %d beyond the received end %d", f.Offset, pos)
			}
			commit = max(commit, f.Offset)
			continue
		}
		switch {
		case f.Type != FrameData:
			return s.fail(CodeProtocol, "expected DATA or COMMIT, got %s", f.Type)
		case f.Epoch > s.epoch:
			return s.fail(CodeProtocol, "DATA of epoch %d on a stream of epoch %d", f.Epoch, s.epoch)
		case len(f.Data) == 0 && f.Epoch != s.epoch:
			return s.fail(CodeStaleEpoch, "idle DATA of epoch %d on a stream of epoch %d", f.Epoch, s.epoch)
		case f.Offset != pos:
			return s.fail(CodeProtocol, "DATA at %d, the log ends at %d", f.Offset, pos)
		case len(f.Data) == 0:
			continue
		case f.Epoch < last:
			return s.fail(CodeStaleEpoch, "DATA of epoch %d after bytes of epoch %d", f.Epoch, last)
		case f.Epoch > last:
			if err := log.StartEpoch(f.Epoch, pos); err != nil {
				return err
			}
			last = f.Epoch
		}
		if err := log.AppendRaw(pos, f.Data); err != nil {
			if errors.Is(err, protocol.ErrCorrupt) || errors.Is(err, commitlog.ErrNotContiguous) {
				return s.fail(CodeProtocol, "DATA at %d: %v", pos, err)
			}
			return err
		}
		pos = log.WrittenOffset()
		if !s.r.cfg.RequireFlushed {
			// Acked from here, not handed to the acking goroutine: on a
			// busy machine every wake-up on the way back to the master
			// adds to an acks=all send's wait.
			if err := s.ack(); err != nil {
				return err
			}
		} else {
			select {
			case bell <- struct{}{}:
			default:
			}
		}
		// Acked (or handed to the acking goroutine): a COMMIT that came
		// before these bytes is taken now, even if more frames wait, so
		// that a steady stream does not hold the slave's dispatch back.
		takeCommit()
	}
}

// ack sends an ACK of the log's written and flushed offsets as they are
// now. The offsets are read under the writer's lock, so the ACKs of the two
// goroutines that send them leave in the order of their offsets.
func (s *session) ack() error {
	log := s.r.log
	s.mu.Lock()
	written := log.WrittenOffset()
	flushed := min(log.FlushedOffset(), written)
	if s.r.cfg.RequireFlushed {
		// The receiving goroutine keeps writing while this one syncs:
		// what it wrote since is acked after the next sync, so an ACK of
		// a slave that must flush never names bytes that are not on disk.
		written = flushed
	}
	b, err := AppendFrame(s.buf[:0], &Frame{Type: FrameAck, Epoch: s.epoch, Written: written, Flushed: flushed})
	if err == nil {
		s.buf = b
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
		_, err = s.conn.Write(b)
	}
	if err == nil {
		s.r.update(func(st *ReceiverStatus) { st.Written, st.Flushed = written, flushed })
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("replica: send ACK: %w", err)
	}
	return nil
}

// acks sends an ACK every AckInterval and, when flushed acks are required,
// after every write (coalesced), syncing the log first, until quit.
// Without flushed acks the receiving goroutine acks its writes itself.
func (s *session) acks(bell <-chan struct{}, quit <-chan struct{}) error {
	cfg, log := s.r.cfg, s.r.log
	t := time.NewTicker(cfg.AckInterval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return nil
		case <-bell:
		case <-t.C:
		}
		if cfg.RequireFlushed && log.FlushedOffset() < log.WrittenOffset() {
			if err := log.Sync(); err != nil {
				return fmt.Errorf("replica: sync the slave's log: %w", err)
			}
		}
		if err := s.ack(); err != nil {
			return err
		}
	}
}
