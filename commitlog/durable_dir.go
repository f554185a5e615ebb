package commitlog

import "github.com/cockroachdb/pebble/v2/vfs"

// MkdirAllDurable creates dir and any missing parents on fs, and syncs the
// parent of every directory it created, so that a crash cannot take back a
// directory (and everything synced under it) that a caller went on to use.
func MkdirAllDurable(fs vfs.FS, dir string) error { return mkdirAllDurable(fs, dir) }
