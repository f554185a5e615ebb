package consumequeue

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/rs/zerolog"
)

// lockedBuffer collects a store's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fullFS is a real directory whose disk can be made full: then creating a
// file or a directory fails with ENOSPC, and a write gets one and a half
// entries onto the disk (a torn write) before it fails with ENOSPC.
type fullFS struct {
	vfs.FS
	full atomic.Bool
	hits atomic.Int64
}

func (f *fullFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if _, err := f.FS.Stat(name); err != nil && f.full.Load() {
		f.hits.Add(1)
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	file, err := f.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: file, fs: f}, nil
}

func (f *fullFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if f.full.Load() {
		f.hits.Add(1)
		return nil, &os.PathError{Op: "create", Path: name, Err: syscall.ENOSPC}
	}
	return f.FS.Create(name, c)
}

func (f *fullFS) MkdirAll(dir string, perm os.FileMode) error {
	if _, err := f.FS.Stat(dir); err != nil && f.full.Load() {
		f.hits.Add(1)
		return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOSPC}
	}
	return f.FS.MkdirAll(dir, perm)
}

type fullFile struct {
	vfs.File
	fs *fullFS
}

func (f *fullFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.fs.full.Load() {
		return f.File.WriteAt(p, off)
	}
	f.fs.hits.Add(1)
	n, _ := f.File.WriteAt(p[:min(len(p), EntrySize+EntrySize/2)], off)
	return n, syscall.ENOSPC
}

func (f *fullFile) Truncate(size int64) error { return f.File.(truncater).Truncate(size) }

// TestNoSpaceDispatch fills the disk under a store: dispatch waits for
// room instead of stopping for good, a torn entry is cut back to a whole
// one, the checkpoint does not pass what was not written, the queues serve
// what they hold, the retries are logged once, and once there is room
// again dispatch resumes by itself with every record indexed, also after a
// reopen.
func TestNoSpaceDispatch(t *testing.T) {
	mem := vfs.NewMem()
	l := openLog(t, mem, nil)
	defer l.Close()
	dir := filepath.Join(t.TempDir(), "cq")
	ffs := &fullFS{FS: vfs.Default}
	var logs lockedBuffer
	opts := func(o *Options) { o.Dir, o.SyncBytes, o.Logger = dir, 1, zerolog.New(&logs) }
	s := openStore(t, ffs, l, opts)
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	for i := range 25 {
		mustAppend(t, l, testMsg("A", int32(i%2), "before", ""))
	}
	waitDispatched(t, s, l.WrittenOffset())
	before := snapshot(t, s)

	ffs.full.Store(true)
	fullFrom := l.WrittenOffset()
	for i := range 30 {
		mustAppend(t, l, testMsg("A", int32(i%2), "during", ""))
	}
	if err := poll.Until(context.Background(), 10*time.Second, 5*time.Millisecond, s.NoSpace); err != nil {
		t.Fatalf("dispatcher not waiting for space (err %v, %d faults)", s.Err(), ffs.hits.Load())
	}
	// A new queue needs a directory and a file: neither can be created.
	mustAppend(t, l, testMsg("B", 0, "during", ""))
	hits := ffs.hits.Load()
	if err := poll.Until(context.Background(), 10*time.Second, 5*time.Millisecond, func() bool { return ffs.hits.Load() >= hits+3 }); err != nil {
		t.Fatalf("dispatcher does not retry: %d faults", ffs.hits.Load())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("a full disk stopped the dispatcher for good: %v", err)
	}
	if n := strings.Count(logs.String(), "dispatch waits for room"); n != 1 {
		t.Errorf("the full disk logged %d times in one episode, want once", n)
	}

	s.writeMu.Lock()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == checkpointName {
			return err
		}
		if _, ok := parseFileName(d.Name()); !ok {
			return nil
		}
		st, err := os.Stat(path)
		if err == nil && st.Size()%EntrySize != 0 {
			err = errors.New(path + ": a torn entry was left in the file")
		}
		return err
	})
	s.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := commitlog.ReadFile(vfs.Default, filepath.Join(dir, checkpointName)); err == nil {
		ck, err := decodeCheckpoint(b)
		if err != nil {
			t.Fatal(err)
		}
		if ck.queues > fullFrom {
			t.Fatalf("checkpoint %d passes entries not on the disk (the disk filled at %d)", ck.queues, fullFrom)
		}
	}
	// What the queues held is still served.
	for k, es := range before {
		got, err := s.Get(k.topic, k.queue, 0, len(es), nil)
		if err != nil || len(got) != len(es) {
			t.Fatalf("%v with the disk full: %d of %d entries, %v", k, len(got), len(es), err)
		}
	}

	ffs.full.Store(false)
	freed := time.Now()
	waitDispatched(t, s, l.WrittenOffset())
	if err := poll.Until(context.Background(), 10*time.Second, 5*time.Millisecond, func() bool { return !s.NoSpace() }); err != nil {
		t.Fatal("dispatcher still waiting for space after it was freed")
	}
	t.Logf("dispatch resumed %v after space was freed", time.Since(freed).Round(time.Millisecond))
	checkAgainstLog(t, s, l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, vfs.Default, l, opts)
	checkAgainstLog(t, s, l)
}
