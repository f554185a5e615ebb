package commitlog

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/protocol"
)

// msgOfSize returns a message whose record is exactly size bytes.
func msgOfSize(t testing.TB, topic string, q int32, size int) Message {
	t.Helper()
	m := testMsg(topic, q, "")
	base, err := m.EncodedSize(0)
	if err != nil {
		t.Fatal(err)
	}
	if size < base {
		t.Fatalf("cannot make a %d-byte record (minimum %d)", size, base)
	}
	m.Body = make([]byte, size-base)
	for i := range m.Body {
		m.Body[i] = byte(i)
	}
	if got, _ := m.EncodedSize(0); got != size {
		t.Fatalf("record of %d bytes, want %d", got, size)
	}
	return m
}

// fillTo appends records until the room left in the first segment is
// below limit, and returns the acks.
func fillTo(t testing.TB, l *Log, limit int64) []ack {
	t.Helper()
	var acks []ack
	for i := 0; testSeg-l.WrittenOffset() > limit; i++ {
		acks = append(acks, appendAll(t, l, []Message{msgOfSize(t, "F", int32(i%3), 1000)})...)
	}
	return acks
}

func checkBlank(t testing.TB, l *Log, at int64) {
	t.Helper()
	var b [protocol.BlankMarkerSize]byte
	if err := l.ReadAt(b[:], at); err != nil {
		t.Fatal(err)
	}
	want := (at/testSeg+1)*testSeg - at
	if got := int64(binary.BigEndian.Uint32(b[:])); got != want || binary.BigEndian.Uint32(b[4:]) != protocol.BlankMagic {
		t.Fatalf("blank marker at %d: size %d magic %#x, want size %d", at, got, binary.BigEndian.Uint32(b[4:]), want)
	}
}

// TestRollBoundaries: a record that leaves exactly the 8 bytes of a blank
// marker stays in the segment; one byte more rolls first; one byte less
// stays and leaves 9. Then a small record after it, a scan across the
// roll, and a reopen both cleanly and after a kill.
func TestRollBoundaries(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra int  // bytes beyond "ends exactly BlankMarkerSize before the segment end"
		rolls bool // whether the sized record itself goes to the next segment
	}{
		{"ends 8 before the end", 0, false},
		{"one byte more", 1, true},
		{"one byte less", -1, false},
	} {
		for _, kill := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/kill=%v", c.name, kill), func(t *testing.T) {
				fs := vfs.NewMem()
				l := openTest(t, fs, slowCheckpoints)
				acks := fillTo(t, l, 3000)
				pos := l.WrittenOffset()
				size := int(testSeg-pos) - protocol.BlankMarkerSize + c.extra
				a := appendAll(t, l, []Message{msgOfSize(t, "S", 0, size)})[0]
				if c.rolls {
					if a.res.Offset != testSeg {
						t.Fatalf("record of %d bytes at %d with %d left: stored at %d, want the next segment", size, pos, testSeg-pos, a.res.Offset)
					}
					checkBlank(t, l, pos)
				} else {
					if a.res.Offset != pos || a.res.End() != testSeg-int64(protocol.BlankMarkerSize-c.extra) {
						t.Fatalf("record stored at %d..%d, want %d..%d", a.res.Offset, a.res.End(), pos, testSeg-protocol.BlankMarkerSize+c.extra)
					}
				}
				acks = append(acks, a)
				small := appendAll(t, l, []Message{testMsg("S", 0, "small")})[0]
				if !c.rolls {
					if small.res.Offset != testSeg {
						t.Fatalf("record after the boundary at %d, want %d", small.res.Offset, testSeg)
					}
					checkBlank(t, l, a.res.End())
				} else if small.res.Offset != a.res.End() {
					t.Fatalf("small record at %d, want %d", small.res.Offset, a.res.End())
				}
				acks = append(acks, small)
				end := l.WrittenOffset()
				checkAcked(t, l, acks)
				if n := len(verifyLog(t, l)); n != len(acks) {
					t.Fatalf("scan saw %d records, want %d", n, len(acks))
				}
				if kill {
					l.abandon() // recovery must cross the blank marker from offset 0
				} else if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = openTest(t, fs, nil)
				defer l.Close()
				if l.WrittenOffset() != end {
					t.Fatalf("reopened at %d, want %d", l.WrittenOffset(), end)
				}
				checkAcked(t, l, acks)
				seen := verifyLog(t, l)
				if len(seen) != len(acks) {
					t.Fatalf("after reopen %d records, want %d", len(seen), len(acks))
				}
				checkContinues(t, l, seen)
			})
		}
	}
}

// TestRollEndsSegmentExactly: the roll happens when the log is exactly at
// a segment boundary after a reopen (the last record of the previous run
// was followed by its blank marker and nothing else).
func TestRollEndsSegmentExactly(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, slowCheckpoints)
	acks := fillTo(t, l, 3000)
	pos := l.WrittenOffset()
	acks = append(acks, appendAll(t, l, []Message{msgOfSize(t, "S", 0, int(testSeg-pos)-protocol.BlankMarkerSize+1)})...)
	// The log now ends in segment 1 right after one record; kill it and
	// cut that record away so the recovered end is exactly the boundary.
	l.abandon()
	rewriteFile(t, fs, fs.PathJoin("log", segmentName(testSeg)), func(b []byte) []byte { return b[:0] })
	l = openTest(t, fs, nil)
	defer l.Close()
	if l.WrittenOffset() != testSeg {
		t.Fatalf("recovered end %d, want the boundary %d", l.WrittenOffset(), testSeg)
	}
	checkAcked(t, l, acks[:len(acks)-1])
	seen := verifyLog(t, l)
	checkContinues(t, l, seen)
	if got := appendAll(t, l, []Message{testMsg("S", 0, "x")})[0].res.Offset; got < testSeg {
		t.Fatalf("append went to %d, below the boundary", got)
	}
}

// TestBatchStraddlesRoll: one Append whose records cross one and then two
// segment boundaries; every record stays inside a segment and the batch's
// offsets are contiguous except at the rolls.
func TestBatchStraddlesRoll(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, slowCheckpoints)
	var acks []ack
	for _, n := range []int{80, 140} { // ~80 KB: one roll; then ~140 KB: two rolls
		var batch []Message
		for i := range n {
			batch = append(batch, msgOfSize(t, fmt.Sprintf("B%d", i%5), int32(i%2), 900+i%200))
		}
		res, err := l.Append(batch, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != n {
			t.Fatalf("%d results for %d messages", len(res), n)
		}
		rolls := 0
		for i := range res {
			acks = append(acks, ack{batch[i], res[i]})
			if i == 0 {
				continue
			}
			if res[i].Offset != res[i-1].End() {
				if res[i].Offset%testSeg != 0 || res[i].Offset/testSeg != res[i-1].Offset/testSeg+1 {
					t.Fatalf("record %d at %d after one ending at %d", i, res[i].Offset, res[i-1].End())
				}
				checkBlank(t, l, res[i-1].End())
				rolls++
			}
		}
		if rolls == 0 {
			t.Fatalf("batch of %d did not roll", n)
		}
	}
	checkAcked(t, l, acks)
	if n := len(verifyLog(t, l)); n != len(acks) {
		t.Fatalf("%d records scanned, want %d", n, len(acks))
	}
	// Scan from the start of the second segment, and in small steps.
	var buf []byte
	count := 0
	if _, err := l.Scan(testSeg, l.WrittenOffset(), &buf, func(int64, []byte) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, a := range acks {
		if a.res.Offset >= testSeg {
			want++
		}
	}
	if count != want {
		t.Fatalf("scan from the second segment saw %d records, want %d", count, want)
	}
	count = 0
	for pos := int64(0); pos < l.WrittenOffset(); {
		next, err := l.Scan(pos, pos+3000, &buf, func(int64, []byte) error { count++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if next == pos { // the next record ends past pos+3000: take it alone
			a := findAck(acks, pos)
			next, err = l.Scan(pos, a.res.End(), &buf, func(int64, []byte) error { count++; return nil })
			if err != nil || next == pos {
				t.Fatalf("scan stuck at %d: %v", pos, err)
			}
		}
		pos = next
	}
	if count != len(acks) {
		t.Fatalf("stepwise scan saw %d records, want %d", count, len(acks))
	}
	l.abandon()
	l = openTest(t, fs, nil)
	defer l.Close()
	checkAcked(t, l, acks)
	checkContinues(t, l, verifyLog(t, l))
}

func findAck(acks []ack, off int64) *ack {
	for i := range acks {
		if acks[i].res.Offset >= off {
			return &acks[i]
		}
	}
	return nil
}
