package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/commitlog"
)

// Output file names, written to --out.
const (
	ResultsMarkdown = "layout-results.md"
	ResultsJSON     = "layout-results.json"
)

// DefaultCeilingScript is where the disk-ceiling script lives relative to
// the repository root.
const DefaultCeilingScript = "../shared/scripts/disk-ceiling.sh"

const usage = `usage: ferry bench layout [flags]

Runs the storage-layout sweep (Ferry's shared commitlog against a Kafka-style
per-partition log) and writes a Markdown table and a JSON file to --out;
go run ./bench/layout/plot draws the chart from the JSON file.

`

// cmdFlags are Main's flags.
type cmdFlags struct {
	topics    *string
	queues    *int
	size      *int
	flush     *string
	layouts   *string
	perPoint  *string
	maxDur    *time.Duration
	producers *int
	consumers *int
	batch     *int
	segment   *string
	dir       *string
	out       *string
	ceiling   *string
	quick     *bool
}

func defineFlags(fs *flag.FlagSet) *cmdFlags {
	return &cmdFlags{
		topics:    fs.String("topics", "1,8,64,256,1024", "topic counts to sweep"),
		queues:    fs.Int("queues", DefaultQueues, "queues (partitions) per topic"),
		size:      fs.Int("size", DefaultMessageSize, "message body size in bytes"),
		flush:     fs.String("flush", "async,sync", "flush modes to sweep"),
		layouts:   fs.String("layouts", "ferry,kafka", "layouts to compare"),
		perPoint:  fs.String("bytes-per-point", "8GiB", "record bytes stored per point (a point also stops after --max-duration)"),
		maxDur:    fs.Duration("max-duration", DefaultMaxDuration, "longest write phase of one point"),
		producers: fs.Int("producers", DefaultProducers, "producer goroutines"),
		consumers: fs.Int("consumers", DefaultConsumers, "consumer goroutines (0: consumption off)"),
		batch:     fs.Int("batch", DefaultBatch, "records per append call"),
		segment:   fs.String("segment-size", "1GiB", "segment size of both layouts"),
		dir:       fs.String("dir", "", "data directory on the disk under test (default: the system temp directory)"),
		out:       fs.String("out", "docs", "where to write the results"),
		ceiling:   fs.String("ceiling-script", DefaultCeilingScript, "disk-ceiling script, run once on --dir; empty to skip"),
		quick:     fs.Bool("quick", false, "smoke-test sweep: small data, short points, no ceiling measurement unless --ceiling-script is given; checks the output is well formed"),
	}
}

// FlagSet returns the flags Main parses, with their defaults and usage,
// for a command line that lists them in its own style.
func FlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("ferry bench layout", flag.ContinueOnError)
	defineFlags(fs)
	return fs
}

// Main is the "ferry bench layout" command. It returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry bench layout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	f := defineFlags(fs)
	topics, queues, size, flush, layouts, perPoint, maxDur, producers, consumers, batch, segment, dir, out, ceiling, quick := f.topics, f.queues, f.size, f.flush, f.layouts, f.perPoint, f.maxDur, f.producers, f.consumers, f.batch, f.segment, f.dir, f.out, f.ceiling, f.quick
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["bytes-per-point"] {
			*perPoint = "24MiB"
		}
		if !set["max-duration"] {
			*maxDur = 2 * time.Second
		}
		if !set["segment-size"] {
			*segment = "64MiB"
		}
		if !set["producers"] {
			*producers = 16
		}
		if !set["ceiling-script"] {
			*ceiling = ""
		}
	}
	cfg := Config{Queues: *queues, MessageSize: *size, Batch: *batch, Producers: *producers, Consumers: *consumers, MaxDuration: *maxDur, Dir: *dir}
	var err error
	if cfg.Topics, err = parseInts(*topics); err != nil {
		return fail(stderr, "--topics: %v", err)
	}
	for _, f := range splitList(*flush) {
		m, err := commitlog.ParseFlushMode(f)
		if err != nil {
			return fail(stderr, "--flush: %v", err)
		}
		cfg.Flush = append(cfg.Flush, m)
	}
	for _, l := range splitList(*layouts) {
		cfg.Layouts = append(cfg.Layouts, Layout(l))
	}
	if cfg.BytesPerPt, err = parseSize(*perPoint); err != nil {
		return fail(stderr, "--bytes-per-point: %v", err)
	}
	if cfg.SegmentSize, err = parseSize(*segment); err != nil {
		return fail(stderr, "--segment-size: %v", err)
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	cfg.Dir = filepath.Join(cfg.Dir, fmt.Sprintf("ferry-bench-layout-%d", os.Getpid()))
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fail(stderr, "%v", err)
	}
	defer os.RemoveAll(cfg.Dir)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fail(stderr, "%v", err)
	}
	if err := cfg.Validate(); err != nil {
		return fail(stderr, "%v", err)
	}
	fst := fsType(cfg.Dir)
	if fst == "tmpfs" {
		fmt.Fprintf(stderr, "warning: %s is on tmpfs; the numbers will say nothing about a disk (use --dir)\n", cfg.Dir)
	}
	var ceil Ceiling
	if *ceiling != "" {
		fmt.Fprintf(stderr, "measuring the disk ceiling with %s\n", *ceiling)
		ceil = measureCeiling(*ceiling, cfg.Dir)
	} else {
		ceil.Note = "skipped"
	}
	cfg.Progress = func(p Point) {
		fmt.Fprintf(stderr, "%-5s %5d topics %-5s %10.0f msg/s %7.1f MiB/s p99 %6d µs, consumed %d at %.0f msg/s, %d open files\n",
			p.Flush, p.Topics, p.Layout, p.MsgPerSec, p.MiBPerSec, p.P99Micros, p.Consumed, p.ConsumeRate, p.OpenFiles)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	rep.Machine.FSType = fst
	rep.Machine.Ceiling = ceil
	if err := writeOutputs(*out, rep); err != nil {
		return fail(stderr, "%v", err)
	}
	want := len(cfg.Layouts) * len(cfg.Flush) * len(cfg.Topics)
	if err := ValidateOutputs(*out, want); err != nil {
		return fail(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "wrote %s and %s to %s (%d points in %s)\n", ResultsMarkdown, ResultsJSON, *out, want, time.Since(started).Round(time.Second))
	return 0
}

func fail(w io.Writer, format string, args ...any) int {
	fmt.Fprintf(w, "ferry bench layout: "+format+"\n", args...)
	return 1
}

func writeOutputs(dir string, r Report) error {
	var md bytes.Buffer
	if err := WriteMarkdown(&md, r); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{ResultsMarkdown: md.Bytes(), ResultsJSON: append(js, '\n')} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ValidateOutputs checks the files in dir: a well-formed table with
// wantRows rows and JSON with as many points.
func ValidateOutputs(dir string, wantRows int) error {
	md, err := os.ReadFile(filepath.Join(dir, ResultsMarkdown))
	if err != nil {
		return err
	}
	if err := ValidateMarkdown(string(md), wantRows); err != nil {
		return err
	}
	js, err := os.ReadFile(filepath.Join(dir, ResultsJSON))
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(js, &r); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, ResultsJSON, err)
	}
	if len(r.Points) != wantRows {
		return fmt.Errorf("%w: %s has %d points, want %d", ErrMalformed, ResultsJSON, len(r.Points), wantRows)
	}
	for _, p := range r.Points {
		if p.Messages <= 0 || p.MsgPerSec <= 0 {
			return fmt.Errorf("%w: %s %s %d topics stored nothing", ErrMalformed, p.Layout, p.Flush, p.Topics)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// parseSize parses a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a byte count like 512MiB or 8GiB", s)
	}
	return n * mult, nil
}
