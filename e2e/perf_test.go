package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsolePerformance measures what the console costs a large broker:
// 1,000 topics, 200 groups and (by default) 10 million messages. It runs
// only with FERRY_CONSOLE_PERF=1 (it takes minutes and gigabytes);
// FERRY_CONSOLE_PERF_MESSAGES changes the message count. It reports every
// page's API calls (p50 and max of 20 calls each, target under 200 ms)
// and the broker's CPU while a browser keeps the console open (target
// under 1 % of one core above the idle broker).
func TestConsolePerformance(t *testing.T) {
	if os.Getenv("FERRY_CONSOLE_PERF") != "1" {
		t.Skip("set FERRY_CONSOLE_PERF=1 to measure the console on a large broker (minutes, gigabytes)")
	}
	total := 10_000_000
	if v := os.Getenv("FERRY_CONSOLE_PERF_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			t.Fatalf("FERRY_CONSOLE_PERF_MESSAGES=%q: want a number of at least 1000", v)
		}
		total = n
	}
	const topics, groups, queues, batch = 1000, 200, 4, 1000
	s := startServer(t)
	start := time.Now()
	for i := range topics {
		s.call(t, "POST", "/v1/topics", map[string]any{"name": fmt.Sprintf("perf-%04d", i), "read_queues": queues, "write_queues": queues}, 201, nil)
	}
	// Seed with batch sends from four senders; every message has a key,
	// so the key index is as large as the messages are many.
	var sent atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	body := strings.Repeat("x", 100)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for r := w; r*batch < total; r += 4 {
				buf.Reset()
				buf.WriteString(`{"messages":[`)
				n := min(batch, total-r*batch)
				for k := range n {
					if k > 0 {
						buf.WriteByte(',')
					}
					fmt.Fprintf(&buf, `{"body":"%s","keys":["k%d"],"tags":"t%d"}`, body, r*batch+k, k%8)
				}
				buf.WriteString(`]}`)
				topic := fmt.Sprintf("perf-%04d", r%topics)
				resp, err := s.hc.Post(s.base+"/v1/topics/"+topic+"/messages", "application/json", &buf)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					firstErr.CompareAndSwap(nil, fmt.Errorf("produce: status %d", resp.StatusCode))
					return
				}
				sent.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		t.Fatal(err)
	}
	seedTook := time.Since(start)
	// Groups: each has committed offsets on five topics, half way.
	for g := range groups {
		name := fmt.Sprintf("perf-group-%03d", g)
		s.call(t, "POST", "/v1/groups", map[string]any{"name": name}, 201, nil)
		var offs []map[string]any
		for k := range 5 {
			for q := range queues {
				offs = append(offs, map[string]any{"topic": fmt.Sprintf("perf-%04d", (g*5+k)%topics), "queue_id": q, "offset": 1})
			}
		}
		s.call(t, "PUT", "/v1/groups/"+name+"/offsets", map[string]any{"offsets": offs}, 200, nil)
	}
	t.Logf("seeded %d messages in %d topics (%d queues each) and %d groups in %v (%.0f msg/s)",
		sent.Load(), topics, queues, groups, seedTook.Round(time.Second), float64(sent.Load())/seedTook.Seconds())
	// Let the consume queues and the key index catch up.
	waitFor(t, 10*time.Minute, "the dispatcher and indexes caught up", func() bool {
		var rt struct {
			Max        int64 `json:"commitlog_max_offset"`
			Dispatched int64 `json:"dispatched_offset"`
		}
		s.call(t, "GET", "/v1/broker", nil, 200, &rt)
		return rt.Dispatched >= rt.Max
	})
	var found struct {
		Messages []struct {
			MsgID string `json:"msg_id"`
		} `json:"messages"`
	}
	waitFor(t, 10*time.Minute, "the key index caught up", func() bool {
		s.call(t, "GET", fmt.Sprintf("/v1/topics/perf-%04d/messages?key=k%d", ((total-1)/batch)%topics, total-1), nil, 200, &found)
		return len(found.Messages) == 1
	})
	msgID := found.Messages[0].MsgID
	now := time.Now().UnixMilli()

	// The API calls of each page, as the console makes them.
	pages := []struct {
		page  string
		calls []string
	}{
		{"overview", []string{"/v1/cluster", "/v1/stats/groups"}},
		{"topics", []string{"/v1/stats/topics"}},
		{"topic", []string{"/v1/topics/perf-0007", "/v1/broker"}},
		{"groups", []string{"/v1/stats/groups", "/v1/cluster/groups"}},
		{"group", []string{"/v1/stats/groups", "/v1/groups/perf-group-007/lag", "/v1/groups/perf-group-007/clients", "/v1/cluster/groups"}},
		{"messages by id", []string{"/v1/messages/" + msgID + "/trace"}},
		{"messages by key", []string{fmt.Sprintf("/v1/topics/perf-%04d/messages?key=k%d&max=100", ((total-1)/batch)%topics, total-1)}},
		{"messages by time", []string{fmt.Sprintf("/v1/topics/perf-0007/messages?begin_ms=%d&end_ms=%d&max=200", now-3600_000, now)}},
		{"dead letters", []string{"/v1/groups/perf-group-007/dlq?from=0&max=50"}},
		{"delayed", []string{"/v1/delayed"}},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "| page | API call | p50 | max (20 calls) |\n|---|---|---:|---:|\n")
	for _, p := range pages {
		for _, path := range p.calls {
			var d []time.Duration
			for range 20 {
				t0 := time.Now()
				resp, err := s.hc.Get(s.base + path)
				if err != nil {
					t.Fatal(err)
				}
				var sink bytes.Buffer
				_, _ = sink.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: status %d: %s", path, resp.StatusCode, sink.String())
				}
				d = append(d, time.Since(t0))
			}
			sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			short := path
			if len(short) > 70 {
				short = short[:70] + "…"
			}
			fmt.Fprintf(&report, "| %s | `GET %s` | %.1f ms | %.1f ms |\n", p.page, short, ms(d[len(d)/2]), ms(d[len(d)-1]))
		}
	}
	t.Logf("API calls per page:\n%s", report.String())

	// CPU: the idle broker, then with the console open on a page.
	pid := s.cmd.Process.Pid
	window := 60 * time.Second
	if v := os.Getenv("FERRY_CONSOLE_PERF_WINDOW"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			window = d
		}
	}
	idle := cpuOver(t, pid, window)
	t.Logf("broker CPU idle: %.2f %% of one core over %v", idle, window)
	br := newBrowser(t)
	for _, page := range []string{"", "topics", "groups"} {
		br.run(t, "open "+page, chromedp.Navigate(s.base+"/console/"+page), chromedp.WaitVisible("main table", chromedp.ByQuery))
		open := cpuOver(t, pid, window)
		t.Logf("broker CPU with the console open on /console/%s: %.2f %% of one core over %v (%.2f %% above idle)", page, open, window, open-idle)
	}
	br.noErrors(t, "console open on a large broker")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuOver returns the CPU a process used over d, in percent of one core,
// from /proc/<pid>/stat (utime + stime, in clock ticks of 10 ms).
func cpuOver(t *testing.T, pid int, d time.Duration) float64 {
	t.Helper()
	read := func() float64 {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			t.Skipf("no /proc to measure CPU: %v", err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) / 100
	}
	c0, t0 := read(), time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	<-ctx.Done()
	cancel()
	return (read() - c0) / time.Since(t0).Seconds() * 100
}
