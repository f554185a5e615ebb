package consumequeue

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// syncWholeFS syncs the file system holding files with one syncfs(2) when
// at least syncfsThreshold of them are due and they are real files. false:
// it did nothing, and the caller syncs each file.
func syncWholeFS(files []*qfile) (bool, error) {
	if len(files) < syncfsThreshold || files[0].f.Fd() == vfs.InvalidFd {
		return false, nil
	}
	if err := unix.Syncfs(int(files[0].f.Fd())); err != nil {
		return true, fmt.Errorf("consumequeue: syncfs: %w", err)
	}
	return true, nil
}
