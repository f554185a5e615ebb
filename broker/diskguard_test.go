package broker

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// usageFS reports the disk usage it is given.
type usageFS struct {
	vfs.FS
	usage atomic.Pointer[vfs.DiskUsage]
}

func (fs *usageFS) GetDiskUsage(string) (vfs.DiskUsage, error) { return *fs.usage.Load(), nil }

// freeBytes sets the disk to total bytes with free of them available.
func (fs *usageFS) freeBytes(total, free uint64) {
	fs.usage.Store(&vfs.DiskUsage{TotalBytes: total, UsedBytes: total - free, AvailBytes: free})
}

type fakeNoSpace struct{ atomic.Bool }

func (f *fakeNoSpace) NoSpace() bool { return f.Load() }

type fakeReserve struct {
	spent      bool
	restoreErr error
	restores   int
}

func (r *fakeReserve) Spent() bool { return r.spent }

func (r *fakeReserve) restore() error {
	r.restores++
	if r.restoreErr != nil {
		return r.restoreErr
	}
	r.spent = false
	return nil
}

type guardTest struct {
	g        *diskGuard
	fs       *usageFS
	clog, cq *fakeNoSpace
	reserve  *fakeReserve
	flips    int
}

// newGuardTest is a guard of a 1 GiB disk, half free, refusing sends
// above 90% used, with 200 MiB of room after a failed write.
func newGuardTest() *guardTest {
	cfg := DefaultConfig()
	cfg.DiskMaxUsedRatio = 0.9
	gt := &guardTest{fs: &usageFS{FS: vfs.NewMem()}, clog: &fakeNoSpace{}, cq: &fakeNoSpace{}, reserve: &fakeReserve{}}
	gt.fs.freeBytes(1<<30, 1<<29)
	gt.g = &diskGuard{fs: gt.fs, dir: "data", conf: func() *Config { return &cfg }, roomAfterFull: 200 << 20,
		clog: gt.clog, cq: gt.cq, reserve: gt.reserve, changed: func() { gt.flips++ }, log: zerolog.Nop()}
	return gt
}

// TestDiskGuardRatio: the state follows the used ratio, and each flip,
// and only a flip, is told.
func TestDiskGuardRatio(t *testing.T) {
	gt := newGuardTest()
	steps := []struct {
		free  uint64
		full  bool
		flips int
	}{
		{1 << 29, false, 0},
		{50 << 20, true, 1}, // 95% used
		{40 << 20, true, 1},
		{200 << 20, false, 2}, // 81% used
		{200 << 20, false, 2},
	}
	for i, s := range steps {
		gt.fs.freeBytes(1<<30, s.free)
		gt.g.check()
		if gt.g.fullNow() != s.full || gt.flips != s.flips {
			t.Fatalf("step %d (%d MiB free): full %v after %d flips, want %v after %d", i, s.free>>20, gt.g.fullNow(), gt.flips, s.full, s.flips)
		}
	}
}

// TestDiskGuardFailedWrite: a write that found the disk full keeps the
// state full, whatever the ratio, until the room after a failed write is
// free; the guard looks at the disk at once when asked after such a write.
func TestDiskGuardFailedWrite(t *testing.T) {
	gt := newGuardTest()
	if gt.g.fullNow() || gt.g.seen.Load() != 0 {
		t.Fatal("a disk with room was looked at, or is full")
	}
	gt.fs.freeBytes(1<<30, 150<<20) // 85% used
	gt.g.check()
	if gt.g.fullNow() {
		t.Fatal("150 MiB free, 85% used: full")
	}
	gt.cq.Store(true)
	if !gt.g.fullNow() {
		t.Fatal("150 MiB free after a failed consume-queue write: not full")
	}
	if got := gt.g.reason(); got != "data disk is full; new messages are indexed once it has room" {
		t.Fatalf("reason %q", got)
	}
	gt.cq.Store(false)
	gt.clog.Store(true)
	if got := gt.g.reason(); got != "data disk is full" {
		t.Fatalf("reason %q", got)
	}
	gt.fs.freeBytes(1<<30, 300<<20)
	gt.g.check()
	if gt.g.fullNow() {
		t.Fatal("300 MiB free, more than the room after a failed write: still full")
	}
	if gt.flips != 2 {
		t.Fatalf("%d flips, want 2", gt.flips)
	}
}

// TestDiskGuardReserve: with the metadata store's reserve spent, the room
// needed includes the reserve, which is made again on leaving the state;
// while it cannot be, the state stays full.
func TestDiskGuardReserve(t *testing.T) {
	gt := newGuardTest()
	gt.reserve.spent = true
	gt.fs.freeBytes(1<<30, 204<<20) // room for a message, not for the reserve too
	gt.g.check()
	if !gt.g.fullNow() || gt.reserve.restores != 0 {
		t.Fatalf("reserve spent, 204 MiB free: full %v, %d restores", gt.g.fullNow(), gt.reserve.restores)
	}
	gt.fs.freeBytes(1<<30, 1<<29)
	gt.reserve.restoreErr = errors.New("no space")
	gt.g.check()
	if !gt.g.fullNow() || gt.reserve.restores == 0 {
		t.Fatalf("reserve not made again: full %v, %d restores", gt.g.fullNow(), gt.reserve.restores)
	}
	gt.reserve.restoreErr = nil
	gt.g.check()
	if gt.g.fullNow() || gt.reserve.spent {
		t.Fatalf("reserve made again: full %v, spent %v", gt.g.fullNow(), gt.reserve.spent)
	}
}
