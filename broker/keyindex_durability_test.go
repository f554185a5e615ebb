package broker

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// TestKeyIndexSyncSurvivesCrash: what the key index dispatched before a
// Sync survives a crash that keeps only synced bytes; feeding the same
// record again (the replay after a crash) leaves one entry.
func TestKeyIndexSyncSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db, err := pebble.Open("meta", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	k, err := newKeyIndex(db)
	if err != nil {
		t.Fatal(err)
	}
	rec := consumequeue.Record{
		Entry: consumequeue.Entry{Offset: 4096, Size: 200}, Topic: []byte("orders"), StoreTimestamp: 1_700_000_000_000,
		Properties: protocol.EncodeProperties(map[string]string{protocol.PropKeys: "k1", protocol.PropUniqKey: "U1"}),
	}
	if err := k.Dispatch([]consumequeue.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := k.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	db.Close()

	db, err = pebble.Open("meta", &pebble.Options{FS: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if k, err = newKeyIndex(db); err != nil {
		t.Fatal(err)
	}
	off, size, ok, err := k.lookupUniq("U1")
	if err != nil || !ok || off != 4096 || size != 200 {
		t.Fatalf("unique key after the crash: %d %d %v %v", off, size, ok, err)
	}
	if err := k.Dispatch([]consumequeue.Record{rec}); err != nil {
		t.Fatal(err)
	}
	locs, err := k.lookupKey("orders", "k1", 0, 1<<62, 10)
	if err != nil || len(locs) != 1 || locs[0] != [2]int64{4096, 200} {
		t.Fatalf("key after the crash and a repeated feed: %v %v", locs, err)
	}
}
