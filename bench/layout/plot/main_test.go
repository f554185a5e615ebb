package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/bench/layout"
)

func writeReport(t *testing.T, dir string, r layout.Report) {
	t.Helper()
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, layout.ResultsJSON), js, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPlotWritesBothCharts(t *testing.T) {
	dir := t.TempDir()
	var r layout.Report
	r.Config.Queues, r.Config.MessageSize = 8, 1024
	for i, topics := range []int{1, 8, 64} {
		for _, l := range []layout.Layout{"ferry", "kafka"} {
			r.Points = append(r.Points, layout.Point{Layout: l, Flush: "async", Topics: topics, MsgPerSec: float64(100000 / (i + 1))})
		}
	}
	writeReport(t, dir, r)
	var out, errb bytes.Buffer
	if code := run([]string{"--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for name, magic := range map[string]string{ChartPNG: "\x89PNG", ChartSVG: "<svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(b) < 1000 || !strings.Contains(string(b[:min(len(b), 512)]), magic) {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}

// A sweep of one topic count is drawn too (a log axis needs a range).
func TestPlotOnePoint(t *testing.T) {
	dir := t.TempDir()
	writeReport(t, dir, layout.Report{Points: []layout.Point{{Layout: "ferry", Flush: "async", Topics: 1, MsgPerSec: 5000}}})
	var errb bytes.Buffer
	if code := run([]string{"--out", dir}, &bytes.Buffer{}, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestPlotRejectsBadResults(t *testing.T) {
	dir := t.TempDir()
	var errb bytes.Buffer
	if code := run([]string{"--out", dir}, &bytes.Buffer{}, &errb); code != 1 {
		t.Errorf("no results: exit %d, want 1", code)
	}
	writeReport(t, dir, layout.Report{}) // no points: nothing to draw
	if code := run([]string{"--out", dir}, &bytes.Buffer{}, &errb); code != 1 || !strings.Contains(errb.String(), "no positive throughput") {
		t.Errorf("empty results: exit %d, stderr %q", code, errb.String())
	}
}
