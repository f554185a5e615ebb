package broker

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestDataDirSurvivesCrash: the data directory a broker creates is synced
// into its parent, so a crash right after the first synced sends does not
// take the whole directory back.
func TestDataDirSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	vfsBroker(t, fs)
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	if _, err := crashed.Stat("data"); err != nil {
		t.Fatalf("the data directory did not survive a crash: %v", err)
	}
}
