package broker

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// The metadata store cannot take a full disk: pebble treats a write-ahead
// log or MANIFEST write that fails as fatal (it calls Logger.Fatalf and the
// broker exits; the store is intact and a restart recovers it). So its
// files live on a file system with a reserve: a file of metaReserveSize
// bytes next to the store, given back the first time a write of the store
// finds the disk full, after which the write is tried again. The broker is
// in the disk-full state while the reserve is spent: sends and metadata
// changes (offset commits, topic, group and config changes) are refused
// with ErrDiskFull; what pebble writes in the background goes into the
// reserve. Once the disk has room for the reserve and more, the reserve is
// made again and the state ends.

// metaReserveSize is the space kept back for the metadata store: room for
// a memtable flush and a new write-ahead log.
const metaReserveSize = 8 << 20

// ErrDiskFull refuses a metadata change while the data disk is full.
var ErrDiskFull = errors.New("broker: data disk is full; try again when it has room")

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// reserveFS is the metadata store's file system.
type reserveFS struct {
	vfs.FS
	path  string
	size  int64
	log   zerolog.Logger
	mu    sync.Mutex // serialises making and giving back the reserve
	spent atomic.Bool
}

func newReserveFS(fs vfs.FS, path string, size int64, log zerolog.Logger) (*reserveFS, error) {
	r := &reserveFS{FS: fs, path: path, size: size, log: log}
	if err := r.fill(); err != nil {
		if !isNoSpace(err) {
			return nil, err
		}
		r.spent.Store(true)
		log.Error().Err(err).Msg("data disk is full: no room for the metadata store's reserve")
	}
	return r, nil
}

// fill writes the reserve file, zeros, synced; a partial one is removed.
func (r *reserveFS) fill() error {
	f, err := r.FS.Create(r.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	z := make([]byte, 1<<20)
	for n := int64(0); n < r.size && err == nil; n += int64(len(z)) {
		_, err = f.Write(z[:min(int64(len(z)), r.size-n)])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.FS.Remove(r.path)
	}
	return err
}

// Spent reports whether the reserve was given back.
func (r *reserveFS) Spent() bool { return r.spent.Load() }

// release gives the reserve back; it reports whether there was one.
func (r *reserveFS) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spent.Load() {
		return false
	}
	if err := r.FS.Remove(r.path); err != nil {
		r.log.Error().Err(err).Msg("remove the metadata store's reserve")
		return false
	}
	r.spent.Store(true)
	r.log.Error().Msg("data disk is full: the metadata store's reserve was given back; sends and metadata changes are refused")
	return true
}

// restore makes the reserve again.
func (r *reserveFS) restore() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.spent.Load() {
		return nil
	}
	if err := r.fill(); err != nil {
		return err
	}
	r.spent.Store(false)
	return nil
}

func (r *reserveFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return reserveFile{File: f, r: r}, nil
}

func (r *reserveFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := r.FS.Create(name, c)
	if isNoSpace(err) && r.release() {
		f, err = r.FS.Create(name, c)
	}
	return r.wrap(f, err)
}

func (r *reserveFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return r.wrap(r.FS.ReuseForWrite(old, name, c))
}

func (r *reserveFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return r.wrap(r.FS.OpenReadWrite(name, c, opts...))
}

// reserveFile tries a write that found the disk full again once the
// reserve is given back, from where the write stopped.
type reserveFile struct {
	vfs.File
	r *reserveFS
}

func (f reserveFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if isNoSpace(err) && f.r.release() {
		var m int
		m, err = f.File.Write(p[n:])
		n += m
	}
	return n, err
}

func (f reserveFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if isNoSpace(err) && f.r.release() {
		var m int
		m, err = f.File.WriteAt(p[n:], off+int64(n))
		n += m
	}
	return n, err
}

func (f reserveFile) Preallocate(off, n int64) error {
	err := f.File.Preallocate(off, n)
	if isNoSpace(err) && f.r.release() {
		err = f.File.Preallocate(off, n)
	}
	return err
}
