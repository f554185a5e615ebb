package commitlog

import (
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestEpochHistory(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	h := &epochHistory{fs: fs, dir: "d"}
	if got, err := h.get(); err != nil || len(got) != 0 {
		t.Fatalf("a history without a file: %v, %v; want empty", got, err)
	}
	for _, e := range []EpochEntry{{1, 0}, {3, 100}, {4, 100}, {7, 250}} {
		if err := h.start(e.Epoch, e.StartOffset, 300); err != nil {
			t.Fatalf("start %v: %v", e, err)
		}
	}
	for _, bad := range []struct {
		epoch, start, written int64
		out                   bool
	}{
		{7, 300, 300, false}, // the epoch does not increase
		{6, 300, 300, false}, // nor here
		{8, 200, 300, false}, // the start goes back
		{8, 301, 300, true},  // past the log's end
	} {
		err := h.start(bad.epoch, bad.start, bad.written)
		if err == nil || errors.Is(err, ErrOutOfRange) != bad.out {
			t.Fatalf("start(%d, %d) with the log at %d: %v", bad.epoch, bad.start, bad.written, err)
		}
	}
	want := []EpochEntry{{1, 0}, {3, 100}, {4, 100}, {7, 250}}
	if got, _ := h.get(); !slices.Equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	// The file holds what the history holds: a second reader sees it.
	if got, err := (&epochHistory{fs: fs, dir: "d"}).get(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("reloaded %v, %v; want %v", got, err, want)
	}

	if err := h.truncate(251); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.get(); !slices.Equal(got, want) {
		t.Fatalf("truncate past every start changed the history to %v", got)
	}
	if err := h.truncate(100); err != nil {
		t.Fatal(err)
	}
	want = want[:1]
	if got, err := (&epochHistory{fs: fs, dir: "d"}).get(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("after truncate(100) the file holds %v, %v; want %v", got, err, want)
	}
}

func TestEpochHistoryDamagedFile(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	b := encodeEpochs([]EpochEntry{{1, 0}, {2, 40}})
	b[len(b)-1] ^= 1
	if err := WriteFileAtomic(fs, "d", epochsName, b); err != nil {
		t.Fatal(err)
	}
	h := &epochHistory{fs: fs, dir: "d"}
	if _, err := h.get(); !errors.Is(err, ErrBadEpochs) {
		t.Fatalf("get of a damaged file: %v, want ErrBadEpochs", err)
	}
	if err := h.start(3, 0, 0); !errors.Is(err, ErrBadEpochs) {
		t.Fatalf("start over a damaged file: %v, want ErrBadEpochs", err)
	}
}
