package broker

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/replica"
)

// TestCommitPointDispatchesAtOnce: on a replicated broker the consume
// queues see the log only up to the commit point. When a slave's ACK moves
// the commit point, what it covers is dispatched then and there, not at
// the next append or flush tick (an hour here): a consumer's held pull is
// answered as soon as the message is committed.
func TestCommitPointDispatchesAtOnce(t *testing.T) {
	fs := vfs.NewMem()
	l, err := commitlog.Open(commitlog.Options{FS: fs, Dir: "log", SegmentSize: 64 << 10, MaxMessageSize: 16 << 10,
		NoPreallocate: true, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	src := newCommitSource(l, true)
	cq, err := consumequeue.Open(consumequeue.Options{FS: fs, Dir: "cq", Source: src, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cq.Close()

	host := netip.MustParseAddrPort("127.0.0.1:10911")
	msg := commitlog.Message{Topic: "T", Body: []byte("hello"), BornHost: host, StoreHost: host}
	if _, err := l.Append([]commitlog.Message{msg, msg}, nil); err != nil {
		t.Fatal(err)
	}
	end := l.WrittenOffset()
	// Nothing is committed yet: the append itself dispatches nothing.
	if err := poll.Until(context.Background(), 200*time.Millisecond, 5*time.Millisecond, func() bool {
		return cq.DispatchedOffset() > 0
	}); err == nil {
		t.Fatalf("dispatched to %d before anything was committed", cq.DispatchedOffset())
	}

	r := &replication{src: src}
	if !r.raiseCommit(end) {
		t.Fatal("raiseCommit did not move the commit point")
	}
	if err := poll.Until(context.Background(), 30*time.Second, time.Millisecond, func() bool {
		return cq.DispatchedOffset() == end
	}); err != nil {
		t.Fatalf("the commit point moved to %d; the consume queues dispatched to %d: they did not follow the commit bells", end, cq.DispatchedOffset())
	}
	if n := cq.MaxOffset("T", 0); n != 2 {
		t.Fatalf("queue T/0 holds %d entries, want 2", n)
	}
}

// TestAppendsMoveTheCommitPointInline: on a master alone in its in-sync
// set an append is committed before Append returns, on the appending
// goroutine (no goroutine hand-off before the answer or the dispatch);
// with a slave in the set an append rings no commit bell (it would wake
// every stream and the dispatch for nothing), and the slave's ACK commits.
func TestAppendsMoveTheCommitPointInline(t *testing.T) {
	l, err := commitlog.Open(commitlog.Options{FS: vfs.NewMem(), Dir: "log", SegmentSize: 64 << 10, MaxMessageSize: 16 << 10,
		NoPreallocate: true, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := &Broker{clog: l}
	b.cfg.ReplicaID = 1
	r := &replication{b: b, src: newCommitSource(l, true), role: RoleMaster, epoch: 3, inSync: []int64{1},
		slaves: map[int64]*slaveProgress{}, lease: controller.BrokerLease{Epoch: 3, Until: time.Now().Add(time.Hour)}}
	r.masterEpoch.Store(3)
	var rings atomic.Int64
	defer r.src.bells.WatchFunc(func() { rings.Add(1) })()
	defer r.followLog()()

	host := netip.MustParseAddrPort("127.0.0.1:10911")
	msg := []commitlog.Message{{Topic: "T", Body: []byte("hello"), BornHost: host, StoreHost: host}}
	if _, err := l.Append(msg, nil); err != nil {
		t.Fatal(err)
	}
	end := l.WrittenOffset()
	if c, n := r.commit.Load(), rings.Load(); c != end || n != 1 {
		t.Fatalf("alone in the in-sync set: after the append the commit point is %d (want %d), the bells rang %d times (want 1)", c, end, n)
	}

	r.mu.Lock()
	r.inSync = []int64{1, 2}
	r.mu.Unlock()
	if _, err := l.Append(msg, nil); err != nil {
		t.Fatal(err)
	}
	if c, n := r.commit.Load(), rings.Load(); c != end || n != 1 {
		t.Fatalf("with a slave in the in-sync set: after the append the commit point is %d (want %d), the bells rang %d times (want 1)", c, end, n)
	}
	r.onAck(replica.Ack{ReplicaID: 2, Epoch: 3, Written: l.WrittenOffset()})
	if c, n := r.commit.Load(), rings.Load(); c != l.WrittenOffset() || n != 2 {
		t.Fatalf("after the slave's ACK the commit point is %d (want %d), the bells rang %d times (want 2)", c, l.WrittenOffset(), n)
	}
}
