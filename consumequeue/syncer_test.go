package consumequeue

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ferrymq/ferry/commitlog"
)

// failingSync is a file whose SyncData fails.
type failingSync struct{ vfs.File }

var errTestSync = errors.New("test: sync failed")

func (failingSync) SyncData() error { return errTestSync }

func newTestSyncer(t *testing.T, fs vfs.FS) *syncer {
	t.Helper()
	if err := fs.MkdirAll("cq/T/0", 0o755); err != nil {
		t.Fatal(err)
	}
	syncRoot(t, fs)
	return &syncer{fs: fs, dir: "cq"}
}

func testQFile(t *testing.T, fs vfs.FS, name string, data string) *qfile {
	t.Helper()
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	return &qfile{name: name, f: f}
}

func TestSyncerJobMakesFilesAndCheckpointDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	sy := newTestSyncer(t, fs)
	qf := testQFile(t, fs, "cq/T/0/f", "entries")
	ck := checkpoint{queues: 700, listeners: 500}
	if err := sy.runJob(syncJob{files: []*qfile{qf}, dirs: []string{"cq/T/0", "cq/T", "cq"}, ck: ck}); err != nil {
		t.Fatal(err)
	}
	if sy.saved != ck {
		t.Fatalf("saved %+v, want %+v", sy.saved, ck)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	b, err := commitlog.ReadFile(crashed, "cq/"+checkpointName)
	if err != nil {
		t.Fatalf("the checkpoint did not survive a crash: %v", err)
	}
	if got, err := decodeCheckpoint(b); err != nil || got != ck {
		t.Fatalf("checkpoint after a crash %+v, %v; want %+v", got, err, ck)
	}
	if d, err := commitlog.ReadFile(crashed, "cq/T/0/f"); err != nil || string(d) != "entries" {
		t.Fatalf("queue file after a crash: %q, %v", d, err)
	}

	// The same checkpoint again is not rewritten.
	if err := fs.Remove("cq/" + checkpointName); err != nil {
		t.Fatal(err)
	}
	if err := sy.runJob(syncJob{ck: ck}); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat("cq/" + checkpointName); err == nil {
		t.Fatal("an unchanged checkpoint was written again")
	}
}

func TestSyncerRunsJobsInOrder(t *testing.T) {
	fs := vfs.NewMem()
	sy := newTestSyncer(t, fs)
	sy.barrier() // before start: returns at once
	sy.start()
	good := testQFile(t, fs, "cq/T/0/a", "x")
	bad := &qfile{name: "cq/T/0/b", f: failingSync{testQFile(t, fs, "cq/T/0/b", "y").f}}

	sy.jobs <- syncJob{files: []*qfile{good}, ck: checkpoint{queues: 10, listeners: 10}}
	sy.jobs <- syncJob{files: []*qfile{bad}, ck: checkpoint{queues: 20, listeners: 20}}
	sy.barrier()
	if p := sy.err.Load(); p == nil || !errors.Is(*p, errTestSync) {
		t.Fatalf("the failed job left err %v", p)
	}
	if sy.saved != (checkpoint{queues: 10, listeners: 10}) {
		t.Fatalf("saved %+v: a failed job must not move the checkpoint", sy.saved)
	}
	// A job waited for returns its own result.
	done := make(chan error, 1)
	sy.jobs <- syncJob{files: []*qfile{bad}, done: done}
	if err := <-done; !errors.Is(err, errTestSync) {
		t.Fatalf("waited job: %v", err)
	}
	sy.stop()
}
