package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

func openTestMeta(t *testing.T) *metaStore {
	t.Helper()
	meta, err := openMeta(vfs.NewMem(), "meta", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = meta.close() })
	return meta
}

func openRuntimeConfig(t *testing.T, cfg Config, meta *metaStore) *runtimeConfig {
	t.Helper()
	rc := newRuntimeConfig(cfg, zerolog.Nop())
	if err := rc.open(meta); err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestRuntimeConfigSet: a change is in force at once, in the map, and
// kept: a configuration opened on the same store has it, over the value
// it starts with. A refused change says why and changes nothing.
func TestRuntimeConfigSet(t *testing.T) {
	meta := openTestMeta(t)
	rc := openRuntimeConfig(t, DefaultConfig(), meta)
	if err := rc.set("retry_max_times", "5"); err != nil {
		t.Fatal(err)
	}
	if err := rc.set("long_poll_max", "7s"); err != nil {
		t.Fatal(err)
	}
	if got := rc.load(); got.RetryMaxTimes != 5 || got.LongPollMax.D().String() != "7s" {
		t.Fatalf("in force: retry_max_times %d, long_poll_max %v", got.RetryMaxTimes, got.LongPollMax.D())
	}
	if m := rc.asMap(); m["retry_max_times"] != "5" || m["long_poll_max"] != "7s" || m["data_dir"] != DefaultConfig().DataDir {
		t.Fatalf("map: retry_max_times %q, long_poll_max %q, data_dir %q", m["retry_max_times"], m["long_poll_max"], m["data_dir"])
	}
	for _, c := range []struct{ key, value, why string }{
		{"data_dir", "/elsewhere", "cannot change at run time"},
		{"retry_max_times", "many", "is not a value of its type"},
		{"disk_max_used_ratio", "2", "must be between 0 and 1"},
	} {
		if err := rc.set(c.key, c.value); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), c.why) {
			t.Fatalf("%s = %s: %v, want %q", c.key, c.value, err, c.why)
		}
	}
	meta.full = func() bool { return true }
	if err := rc.set("retry_max_times", "6"); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("on a full disk: %v", err)
	}
	meta.full = nil

	start := DefaultConfig()
	start.RetryMaxTimes = 16
	again := openRuntimeConfig(t, start, meta)
	if got := again.load(); got.RetryMaxTimes != 5 || got.LongPollMax.D().String() != "7s" || got.DiskMaxUsedRatio != start.DiskMaxUsedRatio {
		t.Fatalf("reopened: retry_max_times %d, long_poll_max %v, disk_max_used_ratio %v", got.RetryMaxTimes, got.LongPollMax.D(), got.DiskMaxUsedRatio)
	}
}

// TestRuntimeConfigDropsBadKept: a kept change the configuration no
// longer accepts is dropped from the store, and the others apply.
func TestRuntimeConfigDropsBadKept(t *testing.T) {
	meta := openTestMeta(t)
	for k, v := range map[string]string{"data_dir": "/elsewhere", "retry_max_times": "3"} {
		if err := meta.db.Set([]byte(prefixConfig+k), []byte(v), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	rc := openRuntimeConfig(t, DefaultConfig(), meta)
	if got := rc.load(); got.RetryMaxTimes != 3 || got.DataDir != DefaultConfig().DataDir {
		t.Fatalf("retry_max_times %d, data_dir %q", got.RetryMaxTimes, got.DataDir)
	}
	if _, closer, err := meta.db.Get([]byte(prefixConfig + "data_dir")); err == nil {
		closer.Close()
		t.Fatal("the refused kept change is still kept")
	}
}
