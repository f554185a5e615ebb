//go:build unix

package layout

import (
	"strconv"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// settleWriteback flushes every dirty page of the system before a point
// starts, so the previous point's writeback is not charged to this one.
func settleWriteback(fs vfs.FS) {
	if fs == vfs.Default {
		syscall.Sync()
	}
}

// fsType names the file system holding dir.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch uint32(st.Type) {
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794C7630:
		return "overlayfs"
	}
	return "0x" + strconv.FormatUint(uint64(uint32(st.Type)), 16)
}
