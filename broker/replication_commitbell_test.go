package broker

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/internal/poll"
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
