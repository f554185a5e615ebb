package commitlog

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCheckRawRollsAndQueues: for bytes shipped from another log, checkRaw
// reports the segment rolls their blank markers make and the next queue
// offsets they reach, and rawSpan how far they move the log's end.
func TestCheckRawRollsAndQueues(t *testing.T) {
	master := openTest(t, vfs.NewMem(), nil)
	defer master.Close()
	fillRandom(t, master, rand.New(rand.NewPCG(3, 4)), 3*testSeg+100)
	chunks, starts := rawChunks(t, master, 0, 9000)
	seg := master.opts.SegmentSize
	table := map[queueKey]int64{}
	var allRolls []int64
	for i, c := range chunks {
		rolls, tb, _, err := checkRaw(starts[i], c, seg)
		if err != nil {
			t.Fatalf("chunk %d at %d: %v", i, starts[i], err)
		}
		end := master.WrittenOffset()
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		if got := starts[i] + rawSpan(starts[i], c, seg); got != end {
			t.Fatalf("chunk %d spans to %d, the next starts at %d", i, got, end)
		}
		if len(rolls) > 0 && rolls[len(rolls)-1] != end {
			t.Fatalf("chunk %d rolls to %v, the next chunk starts at %d", i, rolls, end)
		}
		allRolls = append(allRolls, rolls...)
		for k, n := range tb {
			table[k] = max(table[k], n)
		}
	}
	var bases []int64
	for _, s := range master.Segments()[1:] {
		bases = append(bases, s.Base)
	}
	if !slices.Equal(allRolls, bases) {
		t.Fatalf("rolls %v, the master's segments after the first start at %v", allRolls, bases)
	}
	for topic, qs := range master.QueueOffsets() {
		for q, n := range qs {
			if table[queueKey{topic, q}] != n {
				t.Fatalf("%s/%d: the raw bytes reach %d, the master %d", topic, q, table[queueKey{topic, q}], n)
			}
		}
	}
	// Bytes placed one record late are refused.
	if _, _, _, err := checkRaw(starts[1], chunks[0], seg); err == nil {
		t.Fatal("checkRaw accepted records at the wrong offset")
	}
}

// TestReplicaWriterRefusesWhileAppending: the writer's rewrites and raw
// appends refuse to interleave with a local write in progress, and with a
// closed log.
func TestReplicaWriterRefusesWhileAppending(t *testing.T) {
	l := openTest(t, vfs.NewMem(), nil)
	mustAppend(t, l, testMsg("T", 0, "a"))
	w := l.replica
	l.mu.Lock()
	l.writing = true // a leader is writing
	l.mu.Unlock()
	if err := w.truncate(0); err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("truncate during a write: %v", err)
	}
	if err := w.reset(8 * testSeg); err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("reset during a write: %v", err)
	}
	if err := w.appendRaw(l.WrittenOffset(), nil); err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("raw append during a write: %v", err)
	}
	l.mu.Lock()
	l.writing = false
	l.writeIdle.Broadcast()
	l.mu.Unlock()

	if err := w.truncate(0); err != nil {
		t.Fatalf("truncate once the write is over: %v", err)
	}
	if l.WrittenOffset() != 0 || l.NextQueueOffset("T", 0) != 0 {
		t.Fatalf("after truncate(0): end %d, next queue offset %d", l.WrittenOffset(), l.NextQueueOffset("T", 0))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.truncate(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("truncate of a closed log: %v", err)
	}
	if err := w.appendRaw(0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("raw append to a closed log: %v", err)
	}
}
