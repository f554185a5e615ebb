package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/protocol"
)

var errAbandoned = errors.New("commitlog: abandoned by a test")

// abandon simulates a killed process: it stops the flusher without the
// final sync and checkpoint and releases the files and the lock. Whatever
// was written stays in the files (the page cache survives a kill).
func (l *Log) abandon() {
	l.mu.Lock()
	l.closed = true
	if l.err == nil {
		l.err = errAbandoned // makes the flusher's last round skip sync and checkpoint
	}
	l.mu.Unlock()
	close(l.flush.stop)
	<-l.flush.done
	l.segs.closeAll()
	l.lock.Close()
}

// ack is an acknowledged append: the message and where it went.
type ack struct {
	m   Message
	res AppendResult
}

// want is the exact record the log must hold for a.
func (a *ack) want(t testing.TB) []byte {
	return sealed(t, &a.m, a.res.QueueOffset, a.res.Offset, a.res.StoreTimestamp)
}

// checkAcked requires every ack to be stored, byte for byte, at its offset.
func checkAcked(t testing.TB, l *Log, acks []ack) {
	t.Helper()
	var buf []byte
	for i := range acks {
		a := &acks[i]
		got, err := l.Read(a.res.Offset, a.res.Size, buf)
		if err != nil {
			t.Fatalf("acknowledged record at %d (%d bytes, end %d) unreadable; written %d: %v",
				a.res.Offset, a.res.Size, a.res.End(), l.WrittenOffset(), err)
		}
		if want := a.want(t); !bytes.Equal(got, want) {
			t.Fatalf("acknowledged record at %d differs from what was appended", a.res.Offset)
		}
		buf = got
	}
}

type scanned struct {
	off   int64
	topic string
	queue int32
	qo    int64
	size  int32
}

// verifyLog scans the whole log: every record below WrittenOffset decodes
// at its own physical offset, the scan ends exactly at WrittenOffset, queue
// offsets are dense from 0 per (topic, queue) and the log's next queue
// offsets match. It returns what it saw.
func verifyLog(t testing.TB, l *Log) []scanned {
	t.Helper()
	var out []scanned
	next := map[queueKey]int64{}
	var buf []byte
	end, err := l.Scan(l.MinOffset(), l.WrittenOffset(), &buf, func(off int64, b []byte) error {
		r, err := protocol.Decode(b)
		if err != nil {
			return fmt.Errorf("record at %d: %w", off, err)
		}
		if r.PhysicalOffset != off {
			return fmt.Errorf("record at %d says it is at %d", off, r.PhysicalOffset)
		}
		if off/l.opts.SegmentSize != (off+int64(r.Size)-1)/l.opts.SegmentSize {
			return fmt.Errorf("record at %d (%d bytes) spans segments", off, r.Size)
		}
		if off%l.opts.SegmentSize+int64(r.Size)+protocol.BlankMarkerSize > l.opts.SegmentSize {
			return fmt.Errorf("record at %d (%d bytes) leaves no room for a blank marker", off, r.Size)
		}
		k := queueKey{string(r.Topic), r.QueueID}
		if r.QueueOffset != next[k] {
			return fmt.Errorf("record at %d: %s/%d queue offset %d, want %d (gap or duplicate)", off, k.topic, k.queue, r.QueueOffset, next[k])
		}
		next[k]++
		out = append(out, scanned{off, k.topic, k.queue, r.QueueOffset, r.Size})
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if end != l.WrittenOffset() {
		t.Fatalf("scan ended at %d, written offset %d: not a record boundary", end, l.WrittenOffset())
	}
	if l.MinOffset() == 0 {
		for k, n := range next {
			if got := l.NextQueueOffset(k.topic, k.queue); got != n {
				t.Fatalf("%s/%d: next queue offset %d, the log holds %d records", k.topic, k.queue, got, n)
			}
		}
		for topic, qs := range l.QueueOffsets() {
			for q, n := range qs {
				if n != next[queueKey{topic, q}] {
					t.Fatalf("%s/%d: next queue offset %d, the log holds %d records", topic, q, n, next[queueKey{topic, q}])
				}
			}
		}
	}
	return out
}

// checkContinues appends one message to every queue seen and requires the
// queue offsets to continue densely.
func checkContinues(t testing.TB, l *Log, seen []scanned) {
	t.Helper()
	next := map[queueKey]int64{}
	for _, s := range seen {
		next[queueKey{s.topic, s.queue}] = s.qo + 1
	}
	for k, n := range next {
		res, err := l.Append([]Message{testMsg(k.topic, k.queue, "after recovery")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].QueueOffset != n {
			t.Fatalf("%s/%d: new append got queue offset %d, want %d", k.topic, k.queue, res[0].QueueOffset, n)
		}
	}
	verifyLog(t, l)
}

// randMsg is a message of random size on one of a few queues.
func randMsg(rng *rand.Rand, topics int, maxBody int) Message {
	m := testMsg(fmt.Sprintf("T%d", rng.IntN(topics)), int32(rng.IntN(4)), "")
	m.Body = make([]byte, rng.IntN(maxBody+1))
	for i := range m.Body {
		m.Body[i] = byte(rng.Uint32())
	}
	m.BornTimestamp = rng.Int64N(1 << 42)
	return m
}

// appendAll appends msgs one by one and returns the acks.
func appendAll(t testing.TB, l *Log, msgs []Message) []ack {
	t.Helper()
	var acks []ack
	for _, m := range msgs {
		res, err := l.Append([]Message{m}, nil)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack{m, res[0]})
	}
	return acks
}

// segmentNames lists the files in dir that are segments or set-aside
// segments.
func listDir(t testing.TB, fs vfs.FS, dir string) map[string]bool {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}
