package commitlog

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

const testSegSize = 4096

func newTestSegments(t *testing.T, fs vfs.FS) *segmentSet {
	t.Helper()
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	ss := newSegmentSet(&Options{FS: fs, Dir: "d", SegmentSize: testSegSize})
	t.Cleanup(ss.closeAll)
	return ss
}

func bases(ss *segmentSet) []int64 {
	var out []int64
	for _, s := range ss.list() {
		out = append(out, s.base)
	}
	return out
}

// writeSeg writes n bytes into the segment holding off.
func writeSeg(t *testing.T, ss *segmentSet, off int64, n int) {
	t.Helper()
	s := ss.at(off)
	if s == nil {
		t.Fatalf("no segment holds %d", off)
	}
	if _, err := s.file.WriteAt([]byte(strings.Repeat("x", n)), off-s.base); err != nil {
		t.Fatal(err)
	}
}

// filledSegments creates n segments from 0, each holding size bytes.
func filledSegments(t *testing.T, fs vfs.FS, n, size int) *segmentSet {
	t.Helper()
	ss := newTestSegments(t, fs)
	for i := range n {
		b := int64(i) * testSegSize
		if _, err := ss.create(b); err != nil {
			t.Fatal(err)
		}
		writeSeg(t, ss, b, size)
	}
	return ss
}

func TestSegmentSetCreateAndFind(t *testing.T) {
	ss := newTestSegments(t, vfs.NewMem())
	if ss.at(0) != nil || ss.minBase() != 0 {
		t.Fatal("an empty set finds a segment")
	}
	for _, b := range []int64{0, testSegSize, 2 * testSegSize} {
		if _, err := ss.create(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ off, base int64 }{{0, 0}, {testSegSize - 1, 0}, {testSegSize, testSegSize}, {3*testSegSize - 1, 2 * testSegSize}} {
		if s := ss.at(c.off); s == nil || s.base != c.base {
			t.Fatalf("at(%d) = %v, want the segment at %d", c.off, s, c.base)
		}
	}
	if ss.at(3*testSegSize) != nil || ss.at(-1) != nil {
		t.Fatal("an offset outside every segment is found")
	}
	if got := ss.infos(); len(got) != 3 || got[1].Base != testSegSize || !strings.HasSuffix(got[1].Name, segmentName(testSegSize)) {
		t.Fatalf("infos %+v", got)
	}
}

func TestSegmentSetOpen(t *testing.T) {
	fs := vfs.NewMem()
	ss := newTestSegments(t, fs)
	for _, b := range []int64{2 * testSegSize, 3 * testSegSize} {
		if _, err := ss.create(b); err != nil {
			t.Fatal(err)
		}
	}
	writeSeg(t, ss, 3*testSegSize, 100)

	again := newTestSegments(t, fs)
	got, err := again.open()
	if err != nil || !slices.Equal(got, []int64{2 * testSegSize, 3 * testSegSize}) {
		t.Fatalf("open: %v, %v", got, err)
	}
	if again.minBase() != 2*testSegSize {
		t.Fatalf("min base %d", again.minBase())
	}
	// within: up to the end of what the file holds.
	for _, c := range []struct {
		off  int64
		want bool
	}{{3*testSegSize + 100, true}, {3*testSegSize + 101, false}, {testSegSize, false}} {
		if again.within(c.off) != c.want {
			t.Fatalf("within(%d) = %v", c.off, !c.want)
		}
	}

	// A gap, or a base that is not a multiple of the size, is refused.
	if err := fs.Remove(fs.PathJoin("d", segmentName(3*testSegSize))); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []int64{5 * testSegSize, 6*testSegSize + 1} {
		f, err := fs.Create(fs.PathJoin("d", segmentName(bad)), vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, err := newTestSegments(t, fs).open(); err == nil {
			t.Fatalf("open accepted a segment at %d", bad)
		}
	}
}

func TestSegmentSetTruncateResetDelete(t *testing.T) {
	fs := vfs.NewMem()
	ss := filledSegments(t, fs, 4, 300)
	if err := ss.truncate(testSegSize + 10); err != nil {
		t.Fatal(err)
	}
	if got := bases(ss); !slices.Equal(got, []int64{0, testSegSize}) {
		t.Fatalf("after truncate: %v", got)
	}
	// Cut: truncated, or (on a file that cannot be) zeroed past the cut.
	got := make([]byte, 300)
	n, _ := ss.at(testSegSize).file.ReadAt(got, 0)
	if want := strings.Repeat("x", 10); n < 10 || string(got[:10]) != want || strings.Trim(string(got[10:n]), "\x00") != "" {
		t.Fatalf("the cut segment holds %q", got[:n])
	}
	if _, err := fs.Stat(fs.PathJoin("d", segmentName(2*testSegSize))); err == nil {
		t.Fatal("a segment past the cut is still there")
	}

	// deleteBefore never deletes the newest segment.
	if n, err := ss.deleteBefore(10 * testSegSize); n != 1 || err != nil {
		t.Fatalf("deleteBefore: %d, %v", n, err)
	}
	if got := bases(ss); !slices.Equal(got, []int64{testSegSize}) {
		t.Fatalf("after deleteBefore: %v", got)
	}

	if err := ss.reset(8 * testSegSize); err != nil {
		t.Fatal(err)
	}
	if got := bases(ss); !slices.Equal(got, []int64{8 * testSegSize}) {
		t.Fatalf("after reset: %v", got)
	}
	names, _ := fs.List("d")
	if len(names) != 1 || names[0] != segmentName(8*testSegSize) {
		t.Fatalf("files after reset: %v", names)
	}
}

func TestSegmentSetCutAfterAndDropAfter(t *testing.T) {
	fs := vfs.NewMem()
	ss := filledSegments(t, fs, 3, 200)
	// Recovery found the valid log ending in the first segment: the
	// segments after it are set aside, not deleted.
	if err := ss.cutAfter(100); err != nil {
		t.Fatal(err)
	}
	if got := bases(ss); !slices.Equal(got, []int64{0}) {
		t.Fatalf("after cutAfter: %v", got)
	}
	if _, err := fs.Stat(fs.PathJoin("d", segmentName(testSegSize)+".cut")); err != nil {
		t.Fatalf("the segment after the cut was not set aside: %v", err)
	}
	// At a segment boundary the next segment is created.
	if err := ss.cutAfter(testSegSize); err != nil {
		t.Fatal(err)
	}
	if got := bases(ss); !slices.Equal(got, []int64{0, testSegSize}) {
		t.Fatalf("after cutAfter at a boundary: %v", got)
	}

	if _, err := ss.create(2 * testSegSize); err != nil {
		t.Fatal(err)
	}
	ss.dropAfter(testSegSize + 5)
	if got := bases(ss); !slices.Equal(got, []int64{0, testSegSize}) {
		t.Fatalf("after dropAfter: %v", got)
	}
	if err := ss.syncRange(0, 2*testSegSize); err != nil {
		t.Fatal(err)
	}
}
