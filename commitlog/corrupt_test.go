package commitlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/protocol"
)

const testSeg = 64 << 10

func seg0(fs vfs.FS) string { return fs.PathJoin("log", segmentName(0)) }

// slowCheckpoints keeps the flusher from checkpointing, so after abandon
// recovery scans from the checkpoint Open wrote (offset 0).
func slowCheckpoints(o *Options) { o.CheckpointInterval = 1 << 40 }

// buildAbandoned writes n random records and abandons the log (no final
// sync or checkpoint).
func buildAbandoned(t testing.TB, fs vfs.FS, n, maxBody int, seed uint64) []ack {
	t.Helper()
	l := openTest(t, fs, slowCheckpoints)
	rng := rand.New(rand.NewPCG(seed, 1))
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = randMsg(rng, 3, maxBody)
	}
	acks := appendAll(t, l, msgs)
	l.abandon()
	return acks
}

func rewriteFile(t testing.TB, fs vfs.FS, name string, edit func([]byte) []byte) {
	t.Helper()
	b, err := ReadFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	b = edit(b)
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// reopenExpect opens the damaged log and requires it to end at wantEnd with
// every ack below it intact, then checks a second reopen sees the same log
// and that appends continue the queues.
func reopenExpect(t *testing.T, fs vfs.FS, acks []ack, wantEnd int64) {
	t.Helper()
	l := openTest(t, fs, nil)
	if got := l.WrittenOffset(); got != wantEnd {
		l.Close()
		t.Fatalf("recovered end %d, want %d", got, wantEnd)
	}
	var kept []ack
	for _, a := range acks {
		if a.res.End() <= wantEnd {
			kept = append(kept, a)
		}
	}
	checkAcked(t, l, kept)
	seen := verifyLog(t, l)
	if len(seen) != len(kept) {
		t.Fatalf("%d records recovered, want %d", len(seen), len(kept))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, fs, nil)
	defer l.Close()
	if got := l.WrittenOffset(); got != wantEnd {
		t.Fatalf("second reopen: end %d, want %d", got, wantEnd)
	}
	if again := verifyLog(t, l); len(again) != len(seen) {
		t.Fatalf("second reopen: %d records, want %d", len(again), len(seen))
	}
	checkContinues(t, l, seen)
}

func TestTornTail(t *testing.T) {
	cases := []struct {
		name string
		edit func(b []byte, last AppendResult) []byte
		keep bool // whether the last record survives
	}{
		{"flip a header byte", func(b []byte, last AppendResult) []byte { b[last.Offset+13] ^= 0x40; return b }, false},
		{"flip a body byte", func(b []byte, last AppendResult) []byte { b[last.Offset+100] ^= 1; return b }, false},
		{"flip a checksum digit", func(b []byte, last AppendResult) []byte { b[last.End()-3] ^= 1; return b }, false},
		{"flip the size", func(b []byte, last AppendResult) []byte { b[last.Offset+3] ^= 2; return b }, false},
		{"truncate after 1 byte", func(b []byte, last AppendResult) []byte { return b[:last.Offset+1] }, false},
		{"truncate after 3 bytes", func(b []byte, last AppendResult) []byte { return b[:last.Offset+3] }, false},
		{"truncate after 7 bytes", func(b []byte, last AppendResult) []byte { return b[:last.Offset+7] }, false},
		{"truncate after 8 bytes", func(b []byte, last AppendResult) []byte { return b[:last.Offset+8] }, false},
		{"truncate mid-record", func(b []byte, last AppendResult) []byte { return b[:last.Offset+int64(last.Size)/2] }, false},
		{"truncate the last byte", func(b []byte, last AppendResult) []byte { return b[:last.End()-1] }, false},
		{"zero the tail", func(b []byte, last AppendResult) []byte {
			clear(b[last.Offset+40:])
			return append(b, make([]byte, 5000)...)
		}, false},
		{"zero a block inside the record", func(b []byte, last AppendResult) []byte { clear(b[last.Offset+60 : last.Offset+90]); return b }, false},
		{"zeros after the last record", func(b []byte, last AppendResult) []byte { return append(b, make([]byte, 9000)...) }, true},
		{"1 garbage byte", func(b []byte, _ AppendResult) []byte { return append(b, 0xAB) }, true},
		{"2 garbage bytes", func(b []byte, _ AppendResult) []byte { return append(b, 0xAB, 0xCD) }, true},
		{"3 garbage bytes", func(b []byte, _ AppendResult) []byte { return append(b, 1, 2, 3) }, true},
		{"4 garbage bytes", func(b []byte, _ AppendResult) []byte { return append(b, 0, 0, 1, 0) }, true},
		{"7 garbage bytes", func(b []byte, _ AppendResult) []byte { return append(b, 0, 0, 0, 200, 9, 9, 9) }, true},
		{"garbage claiming a huge record", func(b []byte, _ AppendResult) []byte {
			return append(b, 0x7F, 0xFF, 0xFF, 0xFF, 0xDA, 0xA3, 0x20, 0xA7, 1, 2, 3, 4)
		}, true},
		{"garbage claiming a record just past the file end", func(b []byte, _ AppendResult) []byte {
			return append(b, 0, 0, 0x10, 0, 0xDA, 0xA3, 0x20, 0xA7, 1, 2, 3, 4)
		}, true},
		{"random garbage", func(b []byte, _ AppendResult) []byte {
			g := make([]byte, 3000)
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range g {
				g[i] = byte(rng.Uint32())
			}
			return append(b, g...)
		}, true},
		{"a copy of the last record after it", func(b []byte, last AppendResult) []byte {
			return append(b, bytes.Clone(b[last.Offset:last.End()])...) // misplaced: PHYSICALOFFSET is wrong
		}, true},
		{"a blank marker of the wrong size", func(b []byte, _ AppendResult) []byte {
			var m [protocol.BlankMarkerSize]byte
			putBlank(m[:], 100)
			return append(b, m[:]...)
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMem()
			acks := buildAbandoned(t, fs, 20, 400, 1)
			last := acks[len(acks)-1].res
			if last.Size < 150 {
				t.Fatalf("last record too small for the edits: %d", last.Size)
			}
			rewriteFile(t, fs, seg0(fs), func(b []byte) []byte { return c.edit(b, last) })
			want := last.Offset
			if c.keep {
				want = last.End()
			}
			reopenExpect(t, fs, acks, want)
		})
	}
}

// TestTornTailAfterCheckpoint: the damage is after a checkpoint that is not
// at offset 0, so recovery starts from the checkpoint's table.
func TestTornTailAfterCheckpoint(t *testing.T) {
	fs := vfs.NewMem()
	l := openTest(t, fs, nil)
	rng := rand.New(rand.NewPCG(5, 6))
	var acks []ack
	for range 15 {
		acks = append(acks, appendAll(t, l, []Message{randMsg(rng, 2, 300)})...)
	}
	if err := l.Close(); err != nil { // checkpoint at the end
		t.Fatal(err)
	}
	l = openTest(t, fs, slowCheckpoints)
	for range 5 {
		acks = append(acks, appendAll(t, l, []Message{randMsg(rng, 2, 300)})...)
	}
	l.abandon()
	last := acks[len(acks)-1].res
	rewriteFile(t, fs, seg0(fs), func(b []byte) []byte { return b[:last.End()-5] })
	reopenExpect(t, fs, acks, last.Offset)
}

func TestBadCheckpoint(t *testing.T) {
	ckpt := func(fs vfs.FS) string { return fs.PathJoin("log", checkpointName) }
	cases := []struct {
		name string
		edit func(t *testing.T, fs vfs.FS, end int64, table map[queueKey]int64)
	}{
		{"flipped byte", func(t *testing.T, fs vfs.FS, _ int64, _ map[queueKey]int64) {
			rewriteFile(t, fs, ckpt(fs), func(b []byte) []byte { b[14] ^= 1; return b })
		}},
		{"truncated", func(t *testing.T, fs vfs.FS, _ int64, _ map[queueKey]int64) {
			rewriteFile(t, fs, ckpt(fs), func(b []byte) []byte { return b[:len(b)/2] })
		}},
		{"empty", func(t *testing.T, fs vfs.FS, _ int64, _ map[queueKey]int64) {
			rewriteFile(t, fs, ckpt(fs), func([]byte) []byte { return nil })
		}},
		{"missing", func(t *testing.T, fs vfs.FS, _ int64, _ map[queueKey]int64) {
			if err := fs.Remove(ckpt(fs)); err != nil {
				t.Fatal(err)
			}
		}},
		{"behind the end with an empty table", func(t *testing.T, fs vfs.FS, _ int64, _ map[queueKey]int64) {
			if err := writeCheckpoint(fs, "log", checkpoint{queues: map[queueKey]int64{}}); err != nil {
				t.Fatal(err)
			}
		}},
		{"beyond the written end, inside the segment", func(t *testing.T, fs vfs.FS, end int64, table map[queueKey]int64) {
			if err := writeCheckpoint(fs, "log", checkpoint{offset: end + 1000, queues: table}); err != nil {
				t.Fatal(err)
			}
		}},
		{"beyond the last segment", func(t *testing.T, fs vfs.FS, end int64, table map[queueKey]int64) {
			if err := writeCheckpoint(fs, "log", checkpoint{offset: 10 * testSeg, queues: table}); err != nil {
				t.Fatal(err)
			}
		}},
		{"negative", func(t *testing.T, fs vfs.FS, end int64, table map[queueKey]int64) {
			if err := writeCheckpoint(fs, "log", checkpoint{offset: -end, queues: table}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMem()
			l := openTest(t, fs, nil)
			rng := rand.New(rand.NewPCG(7, 8))
			var msgs []Message
			for range 150 { // a few segments
				msgs = append(msgs, randMsg(rng, 3, 1500))
			}
			acks := appendAll(t, l, msgs)
			end := l.WrittenOffset()
			table := map[queueKey]int64{}
			for k, v := range l.queues {
				table[k] = v
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			c.edit(t, fs, end, table)
			reopenExpect(t, fs, acks, end)
		})
	}
}

// TestCorruptOlderSegment: damage in the middle of the first of several
// segments cuts the log there; the later segments are set aside as .cut
// and never served, not even after new appends refill those offsets.
func TestCorruptOlderSegment(t *testing.T) {
	fs := vfs.NewMem()
	acks := buildAbandoned(t, fs, 400, 1200, 9)
	if acks[len(acks)-1].res.Offset < 3*testSeg {
		t.Fatalf("want at least 4 segments, end %d", acks[len(acks)-1].res.End())
	}
	victim := acks[20].res
	if victim.Offset >= testSeg {
		t.Fatal("victim not in the first segment")
	}
	rewriteFile(t, fs, seg0(fs), func(b []byte) []byte { b[victim.Offset+int64(victim.Size)/2] ^= 0x10; return b })

	l := openTest(t, fs, nil)
	if got := l.WrittenOffset(); got != victim.Offset {
		t.Fatalf("recovered end %d, want the damaged record's offset %d", got, victim.Offset)
	}
	names := listDir(t, fs, "log")
	for base := int64(testSeg); base <= acks[len(acks)-1].res.Offset; base += testSeg {
		if names[segmentName(base)] || !names[segmentName(base)+".cut"] {
			t.Errorf("segment %d not set aside: %v", base, names)
		}
	}
	checkAcked(t, l, acks[:20])
	if err := l.ReadAt(make([]byte, 8), testSeg); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read in a set-aside segment: %v", err)
	}
	if _, _, err := l.ReadRecord(acks[21].res.Offset, nil); err == nil {
		t.Fatal("a record after the cut is still served")
	}
	seen := verifyLog(t, l)
	if len(seen) != 20 {
		t.Fatalf("%d records, want 20", len(seen))
	}
	// Refill past the old segment boundaries: only new records are served.
	rng := rand.New(rand.NewPCG(10, 11))
	var more []Message
	for range 250 {
		more = append(more, randMsg(rng, 3, 1200))
	}
	newAcks := appendAll(t, l, more)
	if l.WrittenOffset() < 2*testSeg {
		t.Fatal("did not refill past the set-aside segments")
	}
	verifyLog(t, l)
	l.abandon()
	l = openTest(t, fs, nil)
	defer l.Close()
	checkAcked(t, l, append(acks[:20:20], newAcks...))
	if n := len(verifyLog(t, l)); n != 20+len(newAcks) {
		t.Fatalf("%d records after reopen, want %d", n, 20+len(newAcks))
	}
}
