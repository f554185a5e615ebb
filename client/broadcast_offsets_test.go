package client

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The offsets file is synced before it is renamed into place, and its
// directory after, so neither the content nor the rename is lost in a
// crash; what was saved loads back.
func TestBroadcastOffsetsSavedDurably(t *testing.T) {
	dir := t.TempDir()
	path := broadcastOffsetFile(dir, "g", "i")
	var synced []string
	orig := fsync
	fsync = func(f *os.File) error {
		if strings.HasPrefix(f.Name(), dir) {
			_, err := os.Stat(path)
			synced = append(synced, f.Name()+map[bool]string{true: " (after rename)", false: " (before rename)"}[err == nil])
		}
		return orig(f)
	}
	t.Cleanup(func() { fsync = orig })
	want := map[MessageQueue]int64{{Topic: "T", BrokerName: "b", QueueID: 1}: 42}
	if err := saveBroadcastOffsets(path, want); err != nil {
		t.Fatal(err)
	}
	wantSynced := []string{path + ".tmp (before rename)"}
	if runtime.GOOS != "windows" {
		wantSynced = append(wantSynced, filepath.Dir(path)+" (after rename)")
	}
	if !slices.Equal(synced, wantSynced) {
		t.Errorf("synced %q, want %q", synced, wantSynced)
	}
	got, err := loadBroadcastOffsets(path)
	if err != nil || len(got) != 1 || got[MessageQueue{Topic: "T", BrokerName: "b", QueueID: 1}] != 42 {
		t.Errorf("loaded %v, %v", got, err)
	}
}
