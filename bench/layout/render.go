package layout

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// tableHeader is the results table's header; ValidateMarkdown relies on it.
var tableHeader = []string{"flush", "topics", "layout", "write msg/s", "write MiB/s", "% of disk ceiling",
	"append p50 µs", "append p99 µs", "consume msg/s", "consumed", "disk written MiB", "open files", "stopped by"}

// WriteMarkdown renders r: the machine, the settings, the targets and one
// table row per point.
func WriteMarkdown(w io.Writer, r Report) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# Layout benchmark: shared commitlog vs per-partition logs\n\n")
	fmt.Fprintf(&b, "Run on %s: %d CPUs, %.1f GiB RAM, Linux %s, %s, data on %s.\n", r.Date, m.CPUs, m.MemGiB, m.Kernel, m.GoVersion, m.FSType)
	if m.Ceiling.Note != "" {
		fmt.Fprintf(&b, "Disk ceiling: not measured (%s).\n", m.Ceiling.Note)
	} else {
		fmt.Fprintf(&b, "Disk ceiling (same run): %.0f MiB/s sequential write, %.0f µs per 4 KiB write + fdatasync.\n", m.Ceiling.SeqWriteMiBps, m.Ceiling.FdatasyncUs)
	}
	keys := make([]string, 0, len(m.VM))
	for k := range m.VM {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vm := make([]string, len(keys))
	for i, k := range keys {
		vm[i] = k + "=" + m.VM[k]
	}
	fmt.Fprintf(&b, "Dirty-page settings: %s.\n\n", orNone(strings.Join(vm, ", ")))
	c := r.Config
	fmt.Fprintf(&b, "Load: %d queues per topic, %d-byte bodies, batches of %d records per append, %d producers, %d consumers; "+
		"each point stops after %s of records or %s; segments of %s.\n\n",
		c.Queues, c.MessageSize, c.Batch, c.Producers, c.Consumers, sizeString(c.BytesPerPt), c.MaxDuration, sizeString(c.SegmentSize))
	fmt.Fprintf(&b, "## Targets\n\n")
	for _, line := range targetLines(r) {
		fmt.Fprintf(&b, "- %s\n", line)
	}
	fmt.Fprintf(&b, "\n## Results\n\n")
	fmt.Fprintf(&b, "| %s |\n", strings.Join(tableHeader, " | "))
	seps := make([]string, len(tableHeader))
	for i := range seps {
		seps[i] = "---:"
		if i == 0 || i == 2 || i == len(seps)-1 {
			seps[i] = "---"
		}
	}
	fmt.Fprintf(&b, "|%s|\n", strings.Join(seps, "|"))
	for _, p := range r.Points {
		ceil := "n/a"
		if m.Ceiling.SeqWriteMiBps > 0 {
			ceil = fmt.Sprintf("%.0f %%", 100*p.MiBPerSec/m.Ceiling.SeqWriteMiBps)
		}
		stop := "time"
		if p.HitByteLimit {
			stop = "bytes"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %.1f | %s | %d | %d | %s | %d | %s | %s | %s |\n",
			p.Flush, p.Topics, p.Layout, group(int64(p.MsgPerSec)), p.MiBPerSec, ceil, p.P50Micros, p.P99Micros,
			group(int64(p.ConsumeRate)), p.Consumed, mib(p.DiskWritten), intOrNA(p.OpenFiles), stop)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// targetLines states the targets with the measured figures.
func targetLines(r Report) []string {
	find := func(l Layout, flush string, topics int) *Point {
		for i := range r.Points {
			p := &r.Points[i]
			if p.Layout == l && p.Flush == flush && p.Topics == topics {
				return p
			}
		}
		return nil
	}
	minT, maxT := 0, 0
	for _, p := range r.Points {
		if minT == 0 || p.Topics < minT {
			minT = p.Topics
		}
		maxT = max(maxT, p.Topics)
	}
	var out []string
	for _, fl := range []string{"async", "sync"} {
		lo, hi := find(Ferry, fl, minT), find(Ferry, fl, maxT)
		if lo != nil && hi != nil && lo.MsgPerSec > 0 && minT != maxT {
			out = append(out, fmt.Sprintf("Ferry, %s flush: %d topics at %.0f %% of its %d-topic throughput (target ≥ 90 %%).", fl, maxT, 100*hi.MsgPerSec/lo.MsgPerSec, minT))
		}
	}
	if f, k := find(Ferry, "sync", maxT), find(Kafka, "sync", maxT); f != nil && k != nil && k.MsgPerSec > 0 {
		out = append(out, fmt.Sprintf("Sync flush at %d topics: Ferry %.1f× the per-partition baseline (target ≥ 5×).", maxT, f.MsgPerSec/k.MsgPerSec))
	}
	if len(out) == 0 {
		out = append(out, "Not enough points in this run to state the targets.")
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "not readable"
	}
	return s
}

func intOrNA(v int) string {
	if v < 0 {
		return "n/a"
	}
	return strconv.Itoa(v)
}

func mib(v int64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", float64(v)/(1<<20))
}

// group formats n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// ValidateMarkdown checks that md is a well-formed results document with
// exactly wantRows table rows, each with the right number of cells and
// numbers where numbers belong.
func ValidateMarkdown(md string, wantRows int) error {
	lines := strings.Split(md, "\n")
	head := "| " + strings.Join(tableHeader, " | ") + " |"
	at := -1
	for i, l := range lines {
		if l == head {
			at = i
			break
		}
	}
	if at < 0 {
		return fmt.Errorf("%w: no results table header", ErrMalformed)
	}
	if at+1 >= len(lines) || !strings.HasPrefix(lines[at+1], "|---") {
		return fmt.Errorf("%w: no separator row under the header", ErrMalformed)
	}
	rows := 0
	for _, l := range lines[at+2:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		if len(cells) != len(tableHeader) {
			return fmt.Errorf("%w: row %d has %d cells, want %d", ErrMalformed, rows+1, len(cells), len(tableHeader))
		}
		for i, c := range cells {
			c = strings.TrimSpace(c)
			switch i {
			case 0:
				if c != "async" && c != "sync" {
					return fmt.Errorf("%w: row %d: flush %q", ErrMalformed, rows+1, c)
				}
			case 2:
				if c != string(Ferry) && c != string(Kafka) {
					return fmt.Errorf("%w: row %d: layout %q", ErrMalformed, rows+1, c)
				}
			case 5, 10, 11:
				if c == "n/a" {
					continue
				}
				fallthrough
			case 1, 3, 4, 6, 7, 8, 9:
				num := strings.TrimSuffix(strings.ReplaceAll(c, ",", ""), " %")
				if _, err := strconv.ParseFloat(num, 64); err != nil {
					return fmt.Errorf("%w: row %d, column %q: %q is not a number", ErrMalformed, rows+1, tableHeader[i], c)
				}
			case 12:
				if c != "bytes" && c != "time" {
					return fmt.Errorf("%w: row %d: stopped by %q", ErrMalformed, rows+1, c)
				}
			}
		}
		rows++
	}
	if rows != wantRows {
		return fmt.Errorf("%w: %d rows, want %d", ErrMalformed, rows, wantRows)
	}
	return nil
}
