package replica

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// TestReceiverCopiesTheLog: a fresh slave receives the master's log across
// several segment rolls while the master keeps appending, ends byte for
// byte equal to it, and acks what it has; the master sees the acks.
func TestReceiverCopiesTheLog(t *testing.T) {
	ml, m, mfs := newMaster(t, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	appendRandom(t, ml, rng, 150)
	var acked atomic.Int64
	addr := listen(t, SenderConfig{MaxFrame: 16 << 10, Idle: 20 * time.Millisecond, OnAck: func(a Ack) { acked.Store(a.Written) }}, ml, m)
	sfs := vfs.NewMem()
	sl := openLogOn(t, sfs)
	r := receive(t, sl, addr, &m.epoch, nil)

	var wg sync.WaitGroup
	wg.Go(func() {
		wrng := rand.New(rand.NewPCG(2, 2))
		for range 30 {
			appendRandom(t, ml, wrng, 5)
			runtimeYield()
		}
	})
	wg.Wait()
	end := ml.WrittenOffset()
	if end < 5*testSegment {
		t.Fatalf("the master's log should span several segments, ends at %d", end)
	}
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == end && acked.Load() == end })
	sameFiles(t, mfs, ml, sfs, sl)
	if h, _ := sl.Epochs(); !slices.Equal(h, []commitlog.EpochEntry{{Epoch: 1, StartOffset: 0}}) {
		t.Fatalf("slave history %v", h)
	}
	eventually(t, "the receiver's status", func() bool {
		st := r.Status()
		return st.Connected && st.Written == end && st.Streams == 1 && st.Epoch == 1
	})
}

// runtimeYield lets the stream run between bursts of appends.
func runtimeYield() { runtime.Gosched() }

// cutProxy forwards connections to addr; the first cuts of them are closed
// after after bytes from the master, in the middle of a frame.
type cutProxy struct {
	ln    net.Listener
	cuts  atomic.Int32
	after int64
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, addr string, cuts int32, after int64) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, after: after}
	p.cuts.Store(cuts)
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			cut := p.cuts.Add(-1) >= 0
			p.wg.Go(func() {
				_, _ = io.Copy(up, c)
				up.Close()
			})
			p.wg.Go(func() {
				if cut {
					_, _ = io.CopyN(c, up, p.after)
				} else {
					_, _ = io.Copy(c, up)
				}
				c.Close()
				up.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

// TestReceiverResumesAfterACut: connections killed in the middle of a
// frame; the slave reconnects and resumes from its end, without a gap or
// a duplicate (AppendRaw refuses either), and ends equal to the master.
func TestReceiverResumesAfterACut(t *testing.T) {
	ml, m, mfs := newMaster(t, 1)
	appendRandom(t, ml, rand.New(rand.NewPCG(3, 3)), 200)
	addr := listen(t, SenderConfig{MaxFrame: 16 << 10, Idle: 20 * time.Millisecond}, ml, m)
	proxy := newCutProxy(t, addr, 3, 100_003)
	sfs := vfs.NewMem()
	sl := openLogOn(t, sfs)
	r := receive(t, sl, proxy.ln.Addr().String(), &m.epoch, nil)
	end := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == end })
	sameFiles(t, mfs, ml, sfs, sl)
	if st := r.Status(); st.Streams < 4 {
		t.Fatalf("%d streams, want the 3 cut ones and one more", st.Streams)
	}
}

// TestReceiverTruncatesADivergentTail: the slave holds records of epoch 2
// from a master that was deposed before the new master (epoch 3) had them;
// it cuts them, takes the new master's, and ends equal to it.
func TestReceiverTruncatesADivergentTail(t *testing.T) {
	ml, m, mfs := newMaster(t, 1)
	rng := rand.New(rand.NewPCG(4, 4))
	appendRandom(t, ml, rng, 60)
	addr := listen(t, SenderConfig{MaxFrame: 16 << 10, Idle: 20 * time.Millisecond}, ml, m)
	sfs := vfs.NewMem()
	sl := openLogOn(t, sfs)
	r := receive(t, sl, addr, &m.epoch, nil)
	common := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == common })
	r.Close()

	// Epoch 2: the slave was master for a while and wrote records the
	// others never received, across a segment roll.
	if err := sl.StartEpoch(2, common); err != nil {
		t.Fatal(err)
	}
	appendRandom(t, sl, rand.New(rand.NewPCG(5, 5)), 40)
	if sl.WrittenOffset()/testSegment == common/testSegment {
		t.Fatal("the divergent tail should roll a segment")
	}
	// Epoch 3: the old master is elected again and writes other records.
	if err := ml.StartEpoch(3, common); err != nil {
		t.Fatal(err)
	}
	m.epoch.Store(3)
	appendRandom(t, ml, rng, 25)

	var cutAt atomic.Int64
	cutAt.Store(-1)
	receive(t, sl, addr, &m.epoch, func(c *ReceiverConfig) {
		c.BeforeTruncate = func(off int64) error { cutAt.Store(off); return nil }
	})
	end := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool {
		if sl.WrittenOffset() > end {
			return false
		}
		h, _ := sl.Epochs()
		return sl.WrittenOffset() == end && len(h) == 2
	})
	if cutAt.Load() != common {
		t.Fatalf("truncated at %d, the histories part at %d", cutAt.Load(), common)
	}
	sameFiles(t, mfs, ml, sfs, sl)
	if h, _ := sl.Epochs(); !slices.Equal(h, []commitlog.EpochEntry{{Epoch: 1, StartOffset: 0}, {Epoch: 3, StartOffset: common}}) {
		t.Fatalf("slave history %v", h)
	}
}

// TestReceiverRefusesAStaleMaster: a master in an older epoch than the
// slave knows is refused and nothing is written; once the master is in
// the slave's epoch, the slave catches up.
func TestReceiverRefusesAStaleMaster(t *testing.T) {
	ml, m, mfs := newMaster(t, 2)
	appendRandom(t, ml, rand.New(rand.NewPCG(6, 6)), 20)
	addr := listen(t, SenderConfig{Idle: 20 * time.Millisecond}, ml, m)
	sfs := vfs.NewMem()
	sl := openLogOn(t, sfs)
	var epoch atomic.Int64
	epoch.Store(3)
	r := receive(t, sl, addr, &epoch, nil)
	eventually(t, "the refusal", func() bool { return errors.Is(r.Status().Err, ErrStaleEpoch) })
	if sl.WrittenOffset() != 0 || r.Status().Streams != 0 {
		t.Fatalf("a stale master's stream was taken: end %d, %+v", sl.WrittenOffset(), r.Status())
	}
	if err := ml.StartEpoch(3, ml.WrittenOffset()); err != nil {
		t.Fatal(err)
	}
	m.epoch.Store(3)
	end := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == end })
	sameFiles(t, mfs, ml, sfs, sl)
}

// TestReceiverStopsAndRestarts: a receiver whose context ends stops (its
// goroutine gone, see TestMain), and a slave restarted on its log resumes
// from its end. Before that, with no master listening it keeps retrying.
func TestReceiverStopsAndRestarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	sfs := vfs.NewMem()
	sl := openLogOn(t, sfs)
	var epoch atomic.Int64
	epoch.Store(1)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := StartReceiver(ctx, ReceiverConfig{Cluster: "c", BrokerName: "g", ReplicaID: 2,
		Master:     func() (string, int64) { return deadAddr, epoch.Load() },
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, sl)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a dial error", func() bool { return r.Status().Err != nil })
	cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver did not stop with its context")
	}
	r.Close()

	ml, m, mfs := newMaster(t, 1)
	appendRandom(t, ml, rand.New(rand.NewPCG(11, 11)), 60)
	addr := listen(t, SenderConfig{MaxFrame: 16 << 10, Idle: 20 * time.Millisecond}, ml, m)
	r = receive(t, sl, addr, &m.epoch, nil)
	half := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == half })
	r.Close()
	if err := sl.Close(); err != nil {
		t.Fatal(err)
	}
	appendRandom(t, ml, rand.New(rand.NewPCG(12, 12)), 60)
	sl = openLogOn(t, sfs)
	receive(t, sl, addr, &m.epoch, nil)
	end := ml.WrittenOffset()
	eventually(t, "the restarted slave to catch up", func() bool { return sl.WrittenOffset() == end })
	sameFiles(t, mfs, ml, sfs, sl)
}

// TestReceiverStartsOverWhenTooFarBehind: the master has deleted the
// segments that follow the slave's end; the slave empties its log and
// copies the master's from its oldest segment.
func TestReceiverStartsOverWhenTooFarBehind(t *testing.T) {
	ml, m, mfs := newMaster(t, 1)
	rng := rand.New(rand.NewPCG(13, 13))
	appendRandom(t, ml, rng, 40)
	addr := listen(t, SenderConfig{MaxFrame: 16 << 10, Idle: 20 * time.Millisecond}, ml, m)
	sfs := vfs.NewMem()
	sl := openLogOn(t, sfs)
	r := receive(t, sl, addr, &m.epoch, nil)
	behind := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == behind })
	r.Close()
	for ml.WrittenOffset() < 6*testSegment {
		appendRandom(t, ml, rng, 20)
	}
	if _, err := ml.DeleteSegmentsBefore(3 * testSegment); err != nil {
		t.Fatal(err)
	}
	var restartAt atomic.Int64
	receive(t, sl, addr, &m.epoch, func(c *ReceiverConfig) {
		c.BeforeTruncate = func(off int64) error { restartAt.Store(off); return nil }
	})
	end := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == end })
	if restartAt.Load() != 3*testSegment || sl.MinOffset() != 3*testSegment {
		t.Fatalf("started over at %d, the slave's log starts at %d", restartAt.Load(), sl.MinOffset())
	}
	sameFiles(t, mfs, ml, sfs, sl)
}

// TestCommitFrames: the master's commit offset reaches the slave in COMMIT
// frames as it grows, never beyond what the slave has received.
func TestCommitFrames(t *testing.T) {
	ml, m, _ := newMaster(t, 1)
	rng := rand.New(rand.NewPCG(3, 3))
	appendRandom(t, ml, rng, 20)
	var commit atomic.Int64
	bell := make(chan struct{}, 1)
	addr := listen(t, SenderConfig{Idle: time.Hour,
		Commit:      commit.Load,
		CommitWatch: func() (<-chan struct{}, func()) { return bell, func() {} },
	}, ml, m)
	sl := openLogOn(t, vfs.NewMem())
	var got atomic.Int64
	got.Store(-1)
	var bad atomic.Bool
	receive(t, sl, addr, &m.epoch, func(c *ReceiverConfig) {
		c.OnCommit = func(off int64) {
			if off > sl.WrittenOffset() || off < got.Load() {
				bad.Store(true)
			}
			got.Store(off)
		}
	})
	eventually(t, "the first COMMIT", func() bool { return got.Load() == 0 })
	end := ml.WrittenOffset()
	eventually(t, "the slave to catch up", func() bool { return sl.WrittenOffset() == end })
	// Only a commit signal wakes the idle stream (the idle interval is an
	// hour): the new commit offset must arrive at once.
	commit.Store(end / 2)
	bell <- struct{}{}
	eventually(t, "the grown commit offset", func() bool { return got.Load() == end/2 })
	commit.Store(end + 1000) // beyond what was sent: capped at the stream's end
	bell <- struct{}{}
	eventually(t, "the commit offset capped at the end", func() bool { return got.Load() == end })
	if bad.Load() {
		t.Fatal("a COMMIT went beyond the slave's log or backwards")
	}
}

// TestCommitWaitsForTheAckOfTheFramesBehindIt: the master sends a COMMIT
// in the same write as the next DATA frame. The slave writes and acks
// that frame before it hands the COMMIT on (to its dispatch): the ACK an
// acks=all send on the master waits for does not wait for the slave's
// dispatch of what was committed before.
func TestCommitWaitsForTheAckOfTheFramesBehindIt(t *testing.T) {
	src, _, _ := newMaster(t, 3)
	appendRandom(t, src, rand.New(rand.NewPCG(5, 5)), 3)
	end := src.WrittenOffset()
	data := make([]byte, end)
	if err := src.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	first := int64(protocol.RecordSize(data))
	var burst []byte
	for _, f := range []Frame{
		{Type: FrameData, Epoch: 3, Data: data[:first]},
		{Type: FrameCommit, Epoch: 3, Offset: first},
		{Type: FrameData, Epoch: 3, Offset: first, Data: data[first:]},
	} {
		var err error
		if burst, err = AppendFrame(burst, &f); err != nil {
			t.Fatal(err)
		}
	}

	// The master's end of a pipe: a single Write reaches the slave's
	// reader whole, so the COMMIT and the DATA behind it are read together.
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	var rcv atomic.Pointer[Receiver]
	started := make(chan struct{})
	dial := func(context.Context, string) (net.Conn, error) {
		<-started
		slave, master := net.Pipe()
		wg.Go(func() { // ends when the slave closes its end
			defer master.Close()
			br := bufio.NewReader(master)
			var buf []byte
			if fakeHandshake(master, br, &buf) != nil {
				return
			}
			if _, err := master.Write(burst); err != nil {
				return
			}
			for {
				if _, err := ReadFrame(br, &buf); err != nil { // ACKs
					return
				}
			}
		})
		return slave, nil
	}
	type seen struct{ commit, acked int64 }
	commits := make(chan seen, 16)
	sl := openLogOn(t, vfs.NewMem())
	var epoch atomic.Int64
	epoch.Store(3)
	r := receive(t, sl, "master", &epoch, func(c *ReceiverConfig) {
		c.Dial = dial
		c.AckInterval = time.Hour
		c.OnCommit = func(off int64) { commits <- seen{off, rcv.Load().Status().Written} }
	})
	rcv.Store(r)
	close(started)
	select {
	case s := <-commits:
		if s.commit != first {
			t.Fatalf("COMMIT %d handed on, want %d", s.commit, first)
		}
		if s.acked != end {
			t.Fatalf("COMMIT %d handed on with %d acked: the DATA frame read with it (to %d) was not written and acked first", s.commit, s.acked, end)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no COMMIT handed on")
	}
}
