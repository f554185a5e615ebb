package layout

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite golden files")

func goldenReport() Report {
	var r Report
	r.Date = "2026-11-23"
	r.Machine = Machine{CPUs: 2, MemGiB: 23.4, Kernel: "6.1.0", GoVersion: "go1.26.0", FSType: "ext4",
		VM:      map[string]string{"dirty_ratio": "20", "dirty_background_ratio": "10"},
		Ceiling: Ceiling{SeqWriteMiBps: 300, FdatasyncUs: 180}}
	r.Config.Queues, r.Config.MessageSize, r.Config.Batch = 8, 1024, 16
	r.Config.Producers, r.Config.Consumers = 64, 4
	r.Config.BytesPerPt, r.Config.MaxDuration, r.Config.SegmentSize = 8<<30, "1m0s", 1<<30
	r.Points = []Point{
		{Layout: Ferry, Flush: "sync", Topics: 1, Queues: 8, Messages: 1000000, MsgPerSec: 120000, MiBPerSec: 134.2, P50Micros: 410, P99Micros: 1900, Consumed: 1000000, ConsumeRate: 118000.5, DiskWritten: 1200 << 20, OpenFiles: 21, HitByteLimit: true},
		{Layout: Kafka, Flush: "sync", Topics: 1, Queues: 8, Messages: 900000, MsgPerSec: 90000, MiBPerSec: 100.7, P50Micros: 600, P99Micros: 2500, Consumed: 900000, ConsumeRate: 88000, DiskWritten: 1100 << 20, OpenFiles: 27, HitByteLimit: true},
		{Layout: Ferry, Flush: "sync", Topics: 1024, Queues: 8, Messages: 1000000, MsgPerSec: 110000, MiBPerSec: 123.0, P50Micros: 450, P99Micros: 2100, Consumed: 999000, ConsumeRate: 100000, DiskWritten: 1300 << 20, OpenFiles: 8213, HitByteLimit: true},
		{Layout: Kafka, Flush: "sync", Topics: 1024, Queues: 8, Messages: 100000, MsgPerSec: 1666, MiBPerSec: 1.9, P50Micros: 30000, P99Micros: 90000, Consumed: 100000, ConsumeRate: 1600, DiskWritten: -1, OpenFiles: -1},
	}
	return r
}

func TestMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, goldenReport()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "results.golden.md")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("markdown differs from %s (run with -update to accept):\n%s", path, b.String())
	}
	if err := ValidateMarkdown(b.String(), 4); err != nil {
		t.Fatal(err)
	}
}

func TestValidateMarkdownRejects(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, goldenReport()); err != nil {
		t.Fatal(err)
	}
	good := b.String()
	for name, md := range map[string]string{
		"row count":   good,
		"no table":    "# nothing here\n",
		"bad number":  strings.Replace(good, "| 120,000 |", "| fast |", 1),
		"short row":   strings.Replace(good, "| 21 | bytes |", "| bytes |", 1),
		"bad layout":  strings.Replace(good, "| ferry |", "| rabbit |", 1),
		"bad stopper": strings.Replace(good, "| 27 | bytes |", "| 27 | luck |", 1),
	} {
		want := 4
		if name == "row count" {
			want = 5
		}
		if err := ValidateMarkdown(md, want); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRunInMemory drives both layouts on an in-memory file system and
// checks that every stored message is consumed.
func TestRunInMemory(t *testing.T) {
	cfg := Config{
		Topics: []int{1, 3}, Queues: 2, MessageSize: 100, Batch: 4, Producers: 3, Consumers: 2,
		BytesPerPt: 1 << 20, MaxDuration: 20 * time.Second, SegmentSize: 16 << 20,
		Dir: "bench", FS: vfs.NewMem(),
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Points) != 2*2*2 {
		t.Fatalf("%d points", len(r.Points))
	}
	for _, p := range r.Points {
		if p.Messages == 0 || p.Consumed != p.Messages || !p.HitByteLimit {
			t.Errorf("%+v: want every stored message consumed and the byte limit reached", p)
		}
	}
}

// TestQuickSweepOnDisk runs a cut-down --quick sweep through Main on the
// real file system and validates what it writes.
func TestQuickSweepOnDisk(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--quick", "--topics", "1,8", "--bytes-per-point", "2MiB", "--max-duration", "2s",
		"--producers", "4", "--consumers", "2", "--segment-size", "16MiB", "--dir", t.TempDir(), "--out", out}
	if code := Main(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if err := ValidateOutputs(out, 8); err != nil {
		t.Fatal(err)
	}
}

func TestMainRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--flush", "sometimes"},
		{"--topics", "1,x"},
		{"--bytes-per-point", "lots"},
		{"--layouts", "ferry,rabbit", "--dir", t.TempDir(), "--out", t.TempDir()},
	} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
}
