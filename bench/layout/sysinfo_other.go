//go:build !unix

package layout

import "github.com/cockroachdb/pebble/v2/vfs"

// settleWriteback does nothing where there is no sync(2): a point may then
// be charged some of the previous point's writeback.
func settleWriteback(vfs.FS) {}

// fsType names the file system holding dir; without statfs(2) it is not
// known.
func fsType(string) string { return "unknown" }
