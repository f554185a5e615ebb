package replica

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/commitlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSegment = 64 << 10

func openLog(t *testing.T) *commitlog.Log {
	t.Helper()
	l, err := commitlog.Open(commitlog.Options{FS: vfs.NewMem(), Dir: "cl", SegmentSize: testSegment, MaxMessageSize: 4096, NoPreallocate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendN appends n messages with bodies of varied sizes (some larger
// than a small frame) and returns where each went.
func appendN(t *testing.T, l *commitlog.Log, n int) []commitlog.AppendResult {
	t.Helper()
	var out []commitlog.AppendResult
	for i := range n {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, 100+(i*397)%3000)
		res, err := l.Append([]commitlog.Message{{Topic: "t", Body: body}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res...)
	}
	return out
}

type fakeMaster struct {
	epoch atomic.Int64
	hist  History
}

func (m *fakeMaster) Epoch() int64     { return m.epoch.Load() }
func (m *fakeMaster) History() History { return m.hist }

// slaveConn is the test's side of a stream.
type slaveConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

func (s *slaveConn) send(f Frame) {
	s.t.Helper()
	b, err := AppendFrame(nil, &f)
	if err != nil {
		s.t.Fatal(err)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.conn.Write(b); err != nil {
		s.t.Fatal(err)
	}
}

func (s *slaveConn) read() Frame {
	s.t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ReadFrame(s.r, &s.buf)
	if err != nil {
		s.t.Fatal(err)
	}
	return f
}

// serve starts Serve on one end of a pipe and returns the other end and
// Serve's result.
func serve(t *testing.T, cfg SenderConfig, l Log, m Master) (*slaveConn, <-chan error, context.CancelFunc) {
	t.Helper()
	cfg.Cluster, cfg.BrokerName, cfg.SegmentSize = "c", "g", testSegment
	snd, err := NewSender(cfg, l, m)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- snd.Serve(ctx, a)
	}()
	t.Cleanup(func() {
		cancel()
		b.Close()
		<-finished
	})
	return &slaveConn{t: t, conn: b, r: bufio.NewReader(b)}, done, cancel
}

func hello(epoch, last int64) Frame {
	return Frame{Type: FrameHello, Version: Version, Epoch: epoch, LastEpoch: last, ReplicaID: 2, Cluster: "c", BrokerName: "g"}
}

// TestSenderStreamsTheLog: a slave that fetches from 0 receives the
// master's log byte for byte, in frames that stay within one segment and
// one epoch, with the blank markers that end segments; new appends follow;
// ACKs reach the master; an epoch change ends the stream.
func TestSenderStreamsTheLog(t *testing.T) {
	l := openLog(t)
	res := appendN(t, l, 120)
	epoch2 := res[70].Offset
	m := &fakeMaster{hist: History{{Epoch: 1, StartOffset: 0}, {Epoch: 2, StartOffset: epoch2}}}
	m.epoch.Store(2)
	acks := make(chan Ack, 8)
	s, done, _ := serve(t, SenderConfig{MaxFrame: 1500, OnAck: func(a Ack) { acks <- a }}, l, m)

	// The slave's history ends in epoch 1: the master says where epoch 1
	// ends on its side.
	s.send(hello(2, 1))
	if f := s.read(); f.Type != FrameEpochEnd || f.Epoch != 1 || f.Offset != epoch2 {
		t.Fatalf("EPOCH_END: %+v", f)
	}
	s.send(Frame{Type: FrameFetch, Offset: 0})

	pos, markers, frames := int64(0), 0, 0
	readUntil := func(end int64) {
		t.Helper()
		for pos < end {
			f := s.read()
			if f.Type != FrameData {
				t.Fatalf("got %+v", f)
			}
			if len(f.Data) == 0 {
				continue // idle frame
			}
			frames++
			if f.Offset != pos {
				t.Fatalf("frame at %d, expected %d", f.Offset, pos)
			}
			last := f.Offset + int64(len(f.Data))
			if f.Offset/testSegment != (last-1)/testSegment {
				t.Fatalf("frame [%d, %d) spans two segments", f.Offset, last)
			}
			if f.Offset < epoch2 && last > epoch2 {
				t.Fatalf("frame [%d, %d) spans the start of epoch 2 at %d", f.Offset, last, epoch2)
			}
			if want := map[bool]int64{true: 1, false: 2}[f.Offset < epoch2]; f.Epoch != want {
				t.Fatalf("frame at %d in epoch %d, want %d", f.Offset, f.Epoch, want)
			}
			want := make([]byte, len(f.Data))
			if err := l.ReadAt(want, f.Offset); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Data, want) {
				t.Fatalf("frame at %d differs from the log", f.Offset)
			}
			pos = last
			if tail := f.Data[len(f.Data)-protocol.BlankMarkerSize:]; binary.BigEndian.Uint32(tail[4:]) == protocol.BlankMagic {
				markers++
				pos = (f.Offset/testSegment + 1) * testSegment
			}
		}
		if pos != end {
			t.Fatalf("stream at %d, log at %d", pos, end)
		}
	}
	readUntil(l.WrittenOffset())
	if markers < 2 || frames < 2*markers {
		t.Fatalf("%d frames, %d segment ends: the log should span several segments", frames, markers)
	}

	// What is appended now follows.
	appendN(t, l, 5)
	readUntil(l.WrittenOffset())

	w := l.WrittenOffset()
	s.send(Frame{Type: FrameAck, Epoch: 2, Written: w, Flushed: w - 10})
	select {
	case a := <-acks:
		if a != (Ack{ReplicaID: 2, Epoch: 2, Written: w, Flushed: w - 10}) {
			t.Fatalf("ack %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ack")
	}

	// The master leaves epoch 2: the stream ends with stale-epoch.
	m.epoch.Store(3)
	appendN(t, l, 1)
	for {
		f := s.read()
		if f.Type == FrameError {
			if f.Code != CodeStaleEpoch {
				t.Fatalf("error %+v", f)
			}
			break
		}
	}
	if err := <-done; err == nil {
		t.Fatal("Serve returned nil after the epoch changed")
	}
}

func TestSenderRefusals(t *testing.T) {
	l := openLog(t)
	appendN(t, l, 3)
	cases := []struct {
		name  string
		first Frame
		fetch *Frame
		code  ErrorCode
	}{
		{"stale slave", hello(1, 1), nil, CodeStaleEpoch},
		{"deposed master", hello(3, 3), nil, CodeStaleEpoch},
		{"other group", func() Frame { f := hello(2, 2); f.BrokerName = "h"; return f }(), nil, CodeWrongGroup},
		{"other version", func() Frame { f := hello(2, 2); f.Version = 9; return f }(), nil, CodeProtocol},
		{"no hello", Frame{Type: FrameFetch}, nil, CodeProtocol},
		{"fetch past the end", hello(2, 2), &Frame{Type: FrameFetch, Offset: 1 << 40}, CodeOutOfRange},
		{"fetch before the start", hello(2, 2), &Frame{Type: FrameFetch, Offset: -1}, CodeOutOfRange},
		{"ack before fetch", hello(2, 2), &Frame{Type: FrameAck, Epoch: 2}, CodeProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeMaster{hist: History{{Epoch: 2, StartOffset: 0}}}
			m.epoch.Store(2)
			s, done, _ := serve(t, SenderConfig{}, l, m)
			s.send(tc.first)
			f := s.read()
			if tc.fetch != nil {
				if f.Type != FrameEpochEnd {
					t.Fatalf("got %+v", f)
				}
				s.send(*tc.fetch)
				f = s.read()
			}
			if f.Type != FrameError || f.Code != tc.code || f.Reason == "" {
				t.Fatalf("got %+v, want ERROR %d", f, tc.code)
			}
			if err := <-done; err == nil {
				t.Fatal("Serve returned nil")
			}
		})
	}
}

func TestSenderAckChecks(t *testing.T) {
	l := openLog(t)
	appendN(t, l, 3)
	for _, tc := range []struct {
		name string
		ack  Frame
		code ErrorCode
	}{
		{"ack of another epoch", Frame{Type: FrameAck, Epoch: 1, Written: 10, Flushed: 10}, CodeStaleEpoch},
		{"flushed beyond written", Frame{Type: FrameAck, Epoch: 2, Written: 10, Flushed: 11}, CodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeMaster{hist: History{{Epoch: 2, StartOffset: 0}}}
			m.epoch.Store(2)
			s, done, _ := serve(t, SenderConfig{}, l, m)
			s.send(hello(2, 2))
			s.read()
			s.send(Frame{Type: FrameFetch, Offset: l.WrittenOffset()})
			s.send(tc.ack)
			for {
				f := s.read()
				if f.Type == FrameError {
					if f.Code != tc.code {
						t.Fatalf("got %+v", f)
					}
					break
				}
			}
			if err := <-done; err == nil {
				t.Fatal("Serve returned nil")
			}
		})
	}
}

// TestSenderIdleAndCancel: a caught-up slave gets empty DATA frames at the
// idle interval; cancelling the context ends Serve.
func TestSenderIdleAndCancel(t *testing.T) {
	l := openLog(t)
	appendN(t, l, 2)
	m := &fakeMaster{hist: History{{Epoch: 5, StartOffset: 0}}}
	m.epoch.Store(5)
	s, done, cancel := serve(t, SenderConfig{Idle: 20 * time.Millisecond}, l, m)
	s.send(hello(5, 5))
	if f := s.read(); f.Type != FrameEpochEnd || f.Epoch != 5 || f.Offset != l.WrittenOffset() {
		t.Fatalf("EPOCH_END %+v", f)
	}
	end := l.WrittenOffset()
	s.send(Frame{Type: FrameFetch, Offset: end})
	for range 3 {
		if f := s.read(); f.Type != FrameData || len(f.Data) != 0 || f.Offset != end || f.Epoch != 5 {
			t.Fatalf("idle frame %+v", f)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

func TestHistory(t *testing.T) {
	h := History{{Epoch: 1, StartOffset: 0}, {Epoch: 3, StartOffset: 100}, {Epoch: 4, StartOffset: 100}, {Epoch: 6, StartOffset: 250}}
	if !h.Valid() || (History{{Epoch: 2}, {Epoch: 2, StartOffset: 5}}).Valid() || (History{{Epoch: 1, StartOffset: 9}, {Epoch: 2, StartOffset: 5}}).Valid() {
		t.Fatal("Valid")
	}
	for _, c := range []struct{ epoch, wantEpoch, wantEnd int64 }{
		{1, 1, 100}, {2, 1, 100}, {3, 3, 100}, {4, 4, 250}, {5, 4, 250}, {6, 6, 999}, {9, 6, 999}, {0, -1, 0},
	} {
		if e, end := h.EndOf(c.epoch, 999); e != c.wantEpoch || end != c.wantEnd {
			t.Errorf("EndOf(%d) = %d, %d; want %d, %d", c.epoch, e, end, c.wantEpoch, c.wantEnd)
		}
	}
	if e, end := (History{}).EndOf(3, 50); e != -1 || end != 50 {
		t.Errorf("empty EndOf = %d, %d", e, end)
	}
	for _, c := range []struct{ off, wantEpoch, wantNext int64 }{
		{0, 1, 100}, {99, 1, 100}, {100, 4, 250}, {300, 6, -1},
	} {
		if e, next := h.At(c.off); e != c.wantEpoch || next != c.wantNext {
			t.Errorf("At(%d) = %d, %d; want %d, %d", c.off, e, next, c.wantEpoch, c.wantNext)
		}
	}
	if e, next := (History{{Epoch: 2, StartOffset: 10}}).At(5); e != -1 || next != 10 {
		t.Errorf("At before the first entry = %d, %d", e, next)
	}
}
