package replica

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Log is what the master's side needs of its commitlog (*commitlog.Log).
type Log interface {
	ReadRecords(p []byte, off, limit int64) (n int, next int64, err error)
	ReadAt(p []byte, off int64) error
	WrittenOffset() int64
	MinOffset() int64
	Watch() (<-chan struct{}, func())
}

// Master is the master's replication state the sender reads.
type Master interface {
	// Epoch is the group epoch this broker is master in; it changes when
	// it stops being master (or is elected again), and every stream ends.
	Epoch() int64
	// History is the master's epoch history.
	History() History
}

// Ack is what a slave reported in an ACK frame.
type Ack struct {
	ReplicaID int64
	Epoch     int64
	Written   int64
	Flushed   int64
}

// Defaults of SenderConfig.
const (
	DefaultMaxFrame     = 1 << 20
	DefaultIdle         = time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// SenderConfig configures the master's side of the streams.
type SenderConfig struct {
	Cluster    string
	BrokerName string
	// SegmentSize is the commitlog's segment size (a frame never spans two
	// segments).
	SegmentSize int64
	// MaxFrame bounds the bytes of one DATA frame (default 1 MiB); a record
	// larger than it goes alone in its frame.
	MaxFrame int
	// Idle is how often an empty DATA frame is sent while there is nothing
	// to ship (default 1 s).
	Idle time.Duration
	// WriteTimeout bounds one frame's write (default 10 s); HandshakeTimeout
	// bounds reading HELLO and FETCH (default the same).
	WriteTimeout     time.Duration
	HandshakeTimeout time.Duration
	// OnAck receives every ACK (called from the stream's reading goroutine).
	OnAck func(Ack)
	// Commit, if set, returns the group's commit offset (what every
	// in-sync replica holds); the stream sends a COMMIT frame whenever it
	// has grown since the last one sent, so slaves dispatch no further.
	// CommitWatch, if set, signals (coalesced) when it may have grown;
	// without it slaves learn of it with the next DATA or idle frame.
	Commit      func() int64
	CommitWatch func() (<-chan struct{}, func())
	Logger      zerolog.Logger
}

func (c *SenderConfig) validate() error {
	if c.SegmentSize <= 0 {
		return errors.New("replica: SenderConfig.SegmentSize must be the commitlog's segment size")
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.MaxFrame > MaxFrameLength-dataHeaderLen {
		return fmt.Errorf("replica: MaxFrame %d exceeds the frame limit %d", c.MaxFrame, MaxFrameLength-dataHeaderLen)
	}
	if c.Idle <= 0 {
		c.Idle = DefaultIdle
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = c.WriteTimeout
	}
	return nil
}

// Sender is the master's side: it serves one slave connection at a time
// per Serve call, any number concurrently.
type Sender struct {
	cfg    SenderConfig
	log    Log
	master Master
}

// NewSender returns a sender of log's bytes for master.
func NewSender(cfg SenderConfig, log Log, master Master) (*Sender, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg, log: log, master: master}, nil
}

// Serve runs the protocol with the slave on conn until ctx ends, the
// master's epoch changes, the slave goes away or either side fails; it
// closes conn and returns why. It owns one goroutine besides the caller's,
// reading the slave's ACKs, gone when it returns.
func (s *Sender) Serve(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReaderSize(conn, 4096)
	st := &stream{s: s, frameWriter: frameWriter{conn: conn, timeout: s.cfg.WriteTimeout}}

	hello, from, err := st.handshake(r)
	if err != nil {
		return err
	}
	epoch := hello.Epoch
	lg := s.cfg.Logger.With().Int64("replica_id", hello.ReplicaID).Int64("epoch", epoch).Logger()
	lg.Info().Int64("offset", from).Msg("replica: slave streaming")

	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr <- st.readAcks(r, hello.ReplicaID, epoch)
	}()
	err = st.ship(ctx, from, epoch, readErr)
	conn.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// stream is one Serve's connection. The shipping goroutine writes DATA
// frames, the ACK reader may write an ERROR: the writer's lock keeps
// frames whole.
type stream struct {
	s *Sender
	frameWriter

	frame []byte // the DATA frame's bytes, read from the log (shipping goroutine)
	hdr   []byte // DATA headers (under the writer's lock)
}

// handshake reads HELLO, answers EPOCH_END and reads FETCH.
func (st *stream) handshake(r *bufio.Reader) (Frame, int64, error) {
	var buf []byte
	_ = st.conn.SetReadDeadline(time.Now().Add(st.s.cfg.HandshakeTimeout))
	defer st.conn.SetReadDeadline(time.Time{})
	hello, err := st.expect(r, &buf, FrameHello)
	if err != nil {
		return hello, 0, err
	}
	cfg := st.s.cfg
	epoch := st.s.master.Epoch()
	switch {
	case hello.Version != Version:
		return hello, 0, st.fail(CodeProtocol, "protocol version %d, this master speaks %d", hello.Version, Version)
	case hello.Cluster != cfg.Cluster || hello.BrokerName != cfg.BrokerName:
		return hello, 0, st.fail(CodeWrongGroup, "slave of %s/%s connected to the master of %s/%s",
			hello.Cluster, hello.BrokerName, cfg.Cluster, cfg.BrokerName)
	case hello.Epoch != epoch:
		return hello, 0, st.fail(CodeStaleEpoch, "slave %d is in epoch %d, this master in epoch %d", hello.ReplicaID, hello.Epoch, epoch)
	}
	e, end := st.s.master.History().EndOf(hello.LastEpoch, st.s.log.WrittenOffset())
	if err := st.write(&Frame{Type: FrameEpochEnd, Epoch: e, Offset: end, Start: st.s.log.MinOffset()}); err != nil {
		return hello, 0, err
	}
	fetch, err := st.expect(r, &buf, FrameFetch)
	if err != nil {
		return hello, 0, err
	}
	if lo, hi := st.s.log.MinOffset(), st.s.log.WrittenOffset(); fetch.Offset < lo || fetch.Offset > hi {
		return hello, 0, st.fail(CodeOutOfRange, "fetch from %d outside the master's log [%d, %d]", fetch.Offset, lo, hi)
	}
	return hello, fetch.Offset, nil
}

// expect reads a frame of type t; an ERROR frame or another type ends the
// stream.
func (st *stream) expect(r *bufio.Reader, buf *[]byte, t FrameType) (Frame, error) {
	f, err := ReadFrame(r, buf)
	switch {
	case err != nil:
		return f, fmt.Errorf("replica: read %s: %w", t, err)
	case f.Type == FrameError:
		return f, &RemoteError{Code: f.Code, Reason: f.Reason}
	case f.Type != t:
		return f, st.fail(CodeProtocol, "expected %s, got %s", t, f.Type)
	}
	return f, nil
}

// writeData writes a DATA frame whose bytes are sent from where they lie,
// after a COMMIT frame of commitEpoch and commit if commit >= 0, in one
// write.
func (st *stream) writeData(epoch, start int64, data []byte, commitEpoch, commit int64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.hdr = st.hdr[:0]
	if commit >= 0 {
		st.hdr = binary.BigEndian.AppendUint32(st.hdr, commitFrameLen-4)
		st.hdr = append(st.hdr, byte(FrameCommit))
		st.hdr = appendInt64s(st.hdr, commitEpoch, commit)
	}
	st.hdr = dataHeader(st.hdr, epoch, start, len(data))
	_ = st.conn.SetWriteDeadline(time.Now().Add(st.timeout))
	bufs := net.Buffers{st.hdr, data}
	_, err := bufs.WriteTo(st.conn)
	return err
}

// readAcks reads the slave's frames after FETCH: ACKs until the stream
// ends.
func (st *stream) readAcks(r *bufio.Reader, id, epoch int64) error {
	var buf []byte
	for {
		f, err := ReadFrame(r, &buf)
		switch {
		case err != nil:
			return fmt.Errorf("replica: slave %d: %w", id, err)
		case f.Type == FrameError:
			return &RemoteError{Code: f.Code, Reason: f.Reason}
		case f.Type != FrameAck:
			return st.fail(CodeProtocol, "expected ACK, got %s", f.Type)
		case f.Epoch != epoch:
			return st.fail(CodeStaleEpoch, "ACK in epoch %d on a stream of epoch %d", f.Epoch, epoch)
		case f.Flushed > f.Written:
			return st.fail(CodeProtocol, "ACK flushed %d beyond written %d", f.Flushed, f.Written)
		}
		if st.s.cfg.OnAck != nil {
			st.s.cfg.OnAck(Ack{ReplicaID: id, Epoch: f.Epoch, Written: f.Written, Flushed: f.Flushed})
		}
	}
}

// ship streams DATA frames from pos while the master's epoch stays epoch.
func (st *stream) ship(ctx context.Context, pos, epoch int64, readErr <-chan error) error {
	l := st.s.log
	wake, unwatch := l.Watch()
	defer unwatch()
	var commitWake <-chan struct{}
	if st.s.cfg.CommitWatch != nil {
		w, stop := st.s.cfg.CommitWatch()
		defer stop()
		commitWake = w
	}
	sentCommit := int64(-1)
	idle := time.NewTimer(st.s.cfg.Idle)
	defer idle.Stop()
	hist := st.s.master.History()
	for {
		if e := st.s.master.Epoch(); e != epoch {
			return st.fail(CodeStaleEpoch, "the master left epoch %d for %d", epoch, e)
		}
		commit := int64(-1) // a COMMIT to send
		if st.s.cfg.Commit != nil {
			// A slave dispatches only what it holds: the commit offset
			// it is told never passes the bytes sent on this stream.
			if c := min(st.s.cfg.Commit(), pos); c > sentCommit {
				commit = c
			}
		}
		if written := l.WrittenOffset(); pos < written {
			// The COMMIT goes in the same write as the DATA frame.
			next, err := st.shipFrame(pos, written, hist, epoch, commit)
			if err != nil {
				return err
			}
			pos = next
			sentCommit = max(sentCommit, commit)
			idle.Reset(st.s.cfg.Idle)
			select {
			case err := <-readErr:
				return err
			default:
			}
			continue
		}
		if commit >= 0 {
			if err := st.write(&Frame{Type: FrameCommit, Epoch: epoch, Offset: commit}); err != nil {
				return err
			}
			sentCommit = commit
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case <-wake:
		case <-commitWake:
		case <-idle.C:
			if err := st.writeData(epoch, pos, nil, -1, -1); err != nil {
				return err
			}
			idle.Reset(st.s.cfg.Idle)
		}
	}
}

// shipFrame sends one DATA frame of the whole records from pos (below
// written) within one segment and one epoch, read straight into the frame
// buffer, and returns the offset the next frame starts at.
func (st *stream) shipFrame(pos, written int64, hist History, streamEpoch, commit int64) (int64, error) {
	epoch, epochEnd := hist.At(pos)
	limit := written
	if epochEnd > pos {
		limit = min(limit, epochEnd)
	}
	if len(st.frame) < st.s.cfg.MaxFrame {
		st.frame = make([]byte, st.s.cfg.MaxFrame)
	}
	buf := st.frame
	for {
		n, next, err := st.s.log.ReadRecords(buf, pos, limit)
		if err != nil {
			return pos, st.fail(CodeMasterError, "read the log at %d: %v", pos, err)
		}
		if n > 0 {
			return next, st.writeData(epoch, pos, buf[:n], streamEpoch, commit)
		}
		// The record at pos is larger than a frame: it goes alone.
		var hdr [4]byte
		if err := st.s.log.ReadAt(hdr[:], pos); err != nil {
			return pos, st.fail(CodeMasterError, "read the log at %d: %v", pos, err)
		}
		size := int(protocol.RecordSize(hdr[:]))
		if size <= len(buf) || pos+int64(size) > limit {
			return pos, st.fail(CodeMasterError, "no record at %d (size %d, limit %d)", pos, size, limit)
		}
		buf = make([]byte, size) // for this record alone
	}
}
