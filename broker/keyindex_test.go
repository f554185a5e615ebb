package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

func TestKeyIndexHoursLookupAndPrune(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Entries of the index layout before hour buckets are dropped on open.
	for _, k := range []string{"k/shop\x00a\x00", "u/OLD"} {
		if err := db.Set([]byte(k), []byte("x"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	k, err := newKeyIndex(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, legacy := range []string{"k/shop\x00a\x00", "u/OLD"} {
		if _, closer, err := db.Get([]byte(legacy)); err == nil {
			closer.Close()
			t.Fatalf("legacy entry %q kept", legacy)
		}
	}
	k.bucketMs.Store(1000) // an "hour" is a second here

	rec := func(topic string, off, ts int64, keys, uniq string) consumequeue.Record {
		props := map[string]string{}
		if keys != "" {
			props[protocol.PropKeys] = keys
		}
		if uniq != "" {
			props[protocol.PropUniqKey] = uniq
		}
		return consumequeue.Record{Entry: consumequeue.Entry{Offset: off, Size: 100}, Topic: []byte(topic),
			StoreTimestamp: ts, Properties: protocol.EncodeProperties(props)}
	}
	batch := []consumequeue.Record{
		rec("shop", 0, 1_000, "a b", "U0"),
		rec("shop", 100, 2_500, "a", "U1"),
		rec("other", 200, 2_550, "a", ""),
		rec("shop", 300, 2_600, "a", "U2"),
		rec("shop", 400, 7_000, "a", "U0"), // U0 again, later: the newest wins
	}
	if err := k.Dispatch(batch); err != nil {
		t.Fatal(err)
	}
	offsets := func(locs [][2]int64) []int64 {
		var out []int64
		for _, l := range locs {
			out = append(out, l[0])
		}
		return out
	}
	check := func(name string, got []int64, want ...int64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: got %v, want %v", name, got, want)
			}
		}
	}
	lookup := func(key string, begin, end int64, max int) []int64 {
		t.Helper()
		locs, err := k.lookupKey("shop", key, begin, end, max)
		if err != nil {
			t.Fatal(err)
		}
		return offsets(locs)
	}
	check("all", lookup("a", 0, 1<<62, 100), 0, 100, 300, 400)
	check("range", lookup("a", 2_000, 3_000, 100), 100, 300)
	check("range edges inclusive", lookup("a", 2_500, 2_600, 100), 100, 300)
	check("max", lookup("a", 0, 1<<62, 2), 0, 100)
	check("other key", lookup("b", 0, 1<<62, 100), 0)
	check("none", lookup("zzz", 0, 1<<62, 100))
	uniq := func(id string) (int64, bool) {
		t.Helper()
		off, size, ok, err := k.lookupUniq(id)
		if err != nil {
			t.Fatal(err)
		}
		if ok && size != 100 {
			t.Fatalf("%s: size %d", id, size)
		}
		return off, ok
	}
	for id, want := range map[string]int64{"U0": 400, "U1": 100, "U2": 300} {
		if off, ok := uniq(id); !ok || off != want {
			t.Fatalf("uniq %s: %d %v, want %d", id, off, ok, want)
		}
	}
	if _, ok := uniq("U9"); ok {
		t.Fatal("unknown uniq key found")
	}

	// Retention kept messages from 2,600 ms on: hours 0 and 1 go.
	if err := k.prune(2_600); err != nil {
		t.Fatal(err)
	}
	check("after prune", lookup("a", 0, 1<<62, 100), 100, 300, 400)
	check("pruned key", lookup("b", 0, 1<<62, 100))
	if off, ok := uniq("U1"); !ok || off != 100 {
		t.Fatalf("U1 of a kept hour: %d %v", off, ok)
	}
	if off, ok := uniq("U0"); !ok || off != 400 {
		t.Fatalf("U0: %d %v", off, ok)
	}
	if err := k.prune(8_000); err != nil {
		t.Fatal(err)
	}
	if _, ok := uniq("U0"); ok {
		t.Fatal("U0 found after its hours were pruned")
	}
	check("all pruned", lookup("a", 0, 1<<62, 100))
}

// An offset id finds the message only if it names the record's own store
// host: the all-zero id (offset 0 of host 0.0.0.0:0) finds nothing.
func TestMessageByOffsetIDChecksHost(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	resp := c.send("orders", 0, "first", nil)
	mustOK(t, resp)
	id := resp.StringOr("msgId", "")
	if _, err := b.messages.byID(id); err != nil {
		t.Fatalf("by its offset id %s: %v", id, err)
	}
	for _, bad := range []string{strings.Repeat("0", 32), "7F00000100002A9F" + id[16:]} {
		if _, err := b.messages.byID(bad); !errors.Is(err, ErrMessageNotFound) {
			t.Errorf("by %s: %v, want not found", bad, err)
		}
	}
}
