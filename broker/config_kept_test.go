package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A run-time config change is kept across a restart (and wins over the
// config the broker is started with); a refused one says why and changes
// nothing.
func TestConfigChangeKept(t *testing.T) {
	dir := t.TempDir()
	b := testBroker(t, dir, nil)
	if err := b.Admin().SetConfig("retry_max_times", "5"); err != nil {
		t.Fatal(err)
	}
	err := b.Admin().SetConfig("disk_max_used_ratio", "2")
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "disk_max_used_ratio 2 must be between 0 and 1") {
		t.Fatalf("invalid value: %v", err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := testBroker(t, dir, func(c *Config) { c.RetryMaxTimes = 16 })
	if got := r.Config(); got.RetryMaxTimes != 5 || got.DiskMaxUsedRatio != DefaultConfig().DiskMaxUsedRatio {
		t.Fatalf("after a restart: retry_max_times %d, disk_max_used_ratio %v", got.RetryMaxTimes, got.DiskMaxUsedRatio)
	}
}
