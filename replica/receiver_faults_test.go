package replica

import (
	"bufio"
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// fakeHandshake is a fake master's side of the handshake: it reads HELLO,
// answers that the slave keeps its log (EPOCH_END at 0 of its last epoch)
// and reads FETCH.
func fakeHandshake(conn net.Conn, br *bufio.Reader, buf *[]byte) error {
	h, err := ReadFrame(br, buf)
	if err != nil {
		return err
	}
	b, _ := AppendFrame(nil, &Frame{Type: FrameEpochEnd, Epoch: h.LastEpoch, Offset: 0})
	if _, err := conn.Write(b); err != nil {
		return err
	}
	_, err = ReadFrame(br, buf)
	return err
}

// fakeMaster serves one scripted stream per connection: it reads HELLO,
// answers EPOCH_END(epoch, 0), reads FETCH, sends frames, then reads until
// the slave hangs up and reports the ERROR frame the slave sent, if any.
func fakeMasterServer(t *testing.T, frames []Frame) (string, <-chan Frame) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Frame, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				var buf []byte
				if fakeHandshake(conn, br, &buf) != nil {
					return
				}
				for _, f := range frames {
					b, _ := AppendFrame(nil, &f)
					if _, err := conn.Write(b); err != nil {
						return
					}
				}
				for {
					f, err := ReadFrame(br, &buf)
					if err != nil {
						return
					}
					if f.Type == FrameError {
						select {
						case got <- f:
						default:
						}
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), got
}

// TestReceiverRefusesBadStreams: a master that breaks the protocol or
// sends an older epoch's frames is refused with an ERROR and a clear
// error, and nothing it sent is written.
func TestReceiverRefusesBadStreams(t *testing.T) {
	// A valid frame of records at 0 in epoch 3, to send in bad company.
	src, _, _ := newMaster(t, 3)
	appendRandom(t, src, rand.New(rand.NewPCG(7, 7)), 3)
	data := make([]byte, src.WrittenOffset())
	if err := src.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	first := protocol.RecordSize(data)
	for _, tc := range []struct {
		name   string
		frames []Frame
		code   ErrorCode
		want   error
		keep   int64 // bytes written before the bad frame
	}{
		{"idle frame of an older epoch", []Frame{{Type: FrameData, Epoch: 2}}, CodeStaleEpoch, ErrStaleEpoch, 0},
		{"data of a newer epoch", []Frame{{Type: FrameData, Epoch: 4, Data: data}}, CodeProtocol, ErrProtocol, 0},
		{"data past the end", []Frame{{Type: FrameData, Epoch: 3, Offset: 10, Data: data}}, CodeProtocol, ErrProtocol, 0},
		{"corrupt data", []Frame{{Type: FrameData, Epoch: 3, Data: append(slices.Clone(data[:len(data)-1]), data[len(data)-1]^1)}}, CodeProtocol, ErrProtocol, 0},
		{"not data", []Frame{{Type: FrameFetch}}, CodeProtocol, ErrProtocol, 0},
		{"an older epoch after a newer", []Frame{{Type: FrameData, Epoch: 3, Data: data[:first]}, {Type: FrameData, Epoch: 2, Offset: int64(first), Data: data[first:]}}, CodeStaleEpoch, ErrStaleEpoch, int64(first)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sl := openLogOn(t, vfs.NewMem())
			addr, got := fakeMasterServer(t, tc.frames)
			var epoch atomic.Int64
			epoch.Store(3)
			r := receive(t, sl, addr, &epoch, nil)
			select {
			case f := <-got:
				if f.Code != tc.code || f.Reason == "" {
					t.Fatalf("slave sent %+v, want code %d", f, tc.code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the slave sent no ERROR")
			}
			eventually(t, "the error", func() bool { return errors.Is(r.Status().Err, tc.want) })
			if sl.WrittenOffset() != tc.keep {
				t.Fatalf("wrote %d bytes of a bad stream, want %d", sl.WrittenOffset(), tc.keep)
			}
		})
	}
}

// TestReceiverFlushedAckSurvivesCrash: with flushed acks required, power
// loss of the slave at any moment keeps every byte below the largest
// flushed offset it acked before the loss.
func TestReceiverFlushedAckSurvivesCrash(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		ml, m, mfs := newMaster(t, 1)
		rng := rand.New(rand.NewPCG(seed, 8))
		var flushed atomic.Int64
		addr := listen(t, SenderConfig{MaxFrame: 16 << 10, Idle: 20 * time.Millisecond, OnAck: func(a Ack) {
			if a.Flushed > flushed.Load() {
				flushed.Store(a.Flushed) // one reading goroutine per stream, one stream
			}
		}}, ml, m)
		sfs := vfs.NewCrashableMem()
		sl, err := commitlog.Open(commitlog.Options{FS: sfs, Dir: "cl", SegmentSize: testSegment, MaxMessageSize: 4096,
			NoPreallocate: true, FlushInterval: time.Hour, FlushDirtyBytes: 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		rcv := receive(t, sl, addr, &m.epoch, func(c *ReceiverConfig) { c.RequireFlushed = true })

		stopAppending := keepAppending(t, ml, rand.New(rand.NewPCG(seed, 9)))
		target := int64(2+rng.IntN(3))*testSegment + rng.Int64N(testSegment)
		eventually(t, "flushed acks", func() bool { return flushed.Load() >= target })
		acked := flushed.Load()
		clone := sfs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
		stopAppending()

		r := openLogOn(t, clone)
		if r.WrittenOffset() < acked {
			t.Fatalf("seed %d: acked flushed %d, recovered only %d", seed, acked, r.WrittenOffset())
		}
		mf, rf := segmentFiles(t, mfs, ml), segmentFiles(t, clone, r)
		for base := int64(0); base < acked; base += testSegment {
			n := min(acked-base, int64(len(mf[base])))
			if int64(len(rf[base])) < n || !bytes.Equal(mf[base][:n], rf[base][:n]) {
				t.Fatalf("seed %d: segment %d differs below the acked offset %d", seed, base, acked)
			}
		}
		t.Logf("seed %d: acked flushed %d, recovered %d, master at %d", seed, acked, r.WrittenOffset(), ml.WrittenOffset())
		r.Close()
		rcv.Close()
		sl.Close()
	}
}

// discardConn is a connection whose writes go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReceive: any byte stream from a master after FETCH ends the stream
// with an error, never a panic, and the slave's log stays a clean run of
// records.
func FuzzReceive(f *testing.F) {
	src, _, _ := newMaster(f, 3)
	for i := range 4 { // small records keep the seeds short
		if _, err := src.Append([]commitlog.Message{{Topic: "t", QueueID: int32(i % 2), Body: []byte("b")}}, nil); err != nil {
			f.Fatal(err)
		}
	}
	data := make([]byte, src.WrittenOffset())
	if err := src.ReadAt(data, 0); err != nil {
		f.Fatal(err)
	}
	first := protocol.RecordSize(data)
	seed := func(frames ...Frame) []byte {
		var b []byte
		for i := range frames {
			b, _ = AppendFrame(b, &frames[i])
		}
		return b
	}
	f.Add(seed(Frame{Type: FrameData, Epoch: 3, Data: data}))
	f.Add(seed(Frame{Type: FrameData, Epoch: 3, Data: data[:first]}, Frame{Type: FrameData, Epoch: 3, Offset: int64(first), Data: data[first:]}))
	f.Add(seed(Frame{Type: FrameData, Epoch: 3}, Frame{Type: FrameError, Code: CodeStaleEpoch, Reason: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := openLogOn(t, vfs.NewMem())
		r := &Receiver{cfg: ReceiverConfig{DeadTimeout: time.Second}, log: l}
		s := &session{r: r, epoch: 3, frameWriter: frameWriter{conn: discardConn{}, timeout: time.Second}}
		var buf []byte
		err := s.receive(bufio.NewReader(bytes.NewReader(b)), &buf, 0, -1, make(chan struct{}, 1))
		if err == nil {
			t.Fatal("receive returned nil at the end of the stream")
		}
		var rbuf []byte
		end, err := l.Scan(0, l.WrittenOffset(), &rbuf, func(int64, []byte) error { return nil })
		if err != nil || end != l.WrittenOffset() {
			t.Fatalf("the slave's log: scan ends at %d of %d: %v", end, l.WrittenOffset(), err)
		}
	})
}
