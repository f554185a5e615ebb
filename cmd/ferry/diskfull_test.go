package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ipoll "github.com/ferrymq/ferry/internal/poll"
)

// TestDiskFullRecovers fills a 64 MiB tmpfs under a real `ferry server`
// with 64 KiB messages sent flat out over HTTP, past the point where the
// commitlog's writes fail with ENOSPC (faster than any periodic check),
// then frees space by deleting a filler file: sends must be accepted again
// without a restart, /readyz must stay 200 (reads are served) while
// /readyz?send=1 is 503, and every acknowledged message must be readable.
// While the disk is full an offset commit and a topic create are refused
// with 503 saying so; once space is freed both are accepted, and the
// offsets committed before and after survive a restart.
// It needs root to mount the tmpfs and skips where that is not allowed.
func TestDiskFullRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a tmpfs: skipped in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("disk-full test skipped: mounting its 64 MiB tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("disk-full test skipped: cannot mount a tmpfs here: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := spawnServer(filepath.Join(mnt, "data"))
	defer p.stop()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + p.http
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()

	type acked struct {
		queue  int32
		offset int64
	}
	var (
		mu   sync.Mutex
		acks = map[string]acked{}
		seq  atomic.Int64
	)
	// send posts one 64 KiB message; it reports the status and, on 200,
	// records where the message went.
	send := func() int {
		id := fmt.Sprintf("m%08d", seq.Add(1))
		body := bytes.Repeat([]byte{'x'}, 64<<10)
		copy(body, id)
		resp, err := hc.Post(base+"/v1/topics/Fill/messages", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Errorf("send: %v", err)
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return resp.StatusCode
		}
		var out struct {
			Results []struct {
				QueueID     int32 `json:"queue_id"`
				QueueOffset int64 `json:"queue_offset"`
			} `json:"results"`
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Results) != 1 {
			t.Errorf("send answer %s: %v", b, err)
			return 0
		}
		mu.Lock()
		acks[id] = acked{out.Results[0].QueueID, out.Results[0].QueueOffset}
		mu.Unlock()
		return 200
	}

	// do sends a request with a JSON body and answers the status and body.
	do := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	commit := func(off int) (int, string) {
		return do("PUT", "/v1/groups/g1/offsets", fmt.Sprintf(`{"offsets":[{"topic":"Fill","queue_id":0,"offset":%d}]}`, off))
	}
	committed := func() string {
		code, body := do("GET", "/v1/groups/g1/offsets?topic=Fill", "")
		if code != 200 {
			t.Fatalf("offsets of g1: %d %s", code, body)
		}
		return body
	}
	if code := send(); code != 200 {
		t.Fatalf("first send answered %d", code)
	}
	if code, body := commit(1); code != 200 {
		t.Fatalf("offset commit: %d %s", code, body)
	}

	// Flat out until every sender has been refused 20 times in a row.
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 4 {
		wg.Go(func() {
			for streak := 0; streak < 20 && !t.Failed(); {
				switch code := send(); code {
				case 200:
					streak = 0
				case 503:
					streak++
					refused.Add(1)
				default:
					t.Errorf("send on a filling disk answered %d", code)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("disk full after %d acknowledged sends (%d refused)", len(acks), refused.Load())

	get := func(path string) (int, string) {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "sends refused") {
		t.Fatalf("/readyz with the disk full: %d %q, want 200 saying sends are refused", code, body)
	}
	if code, body := get("/readyz?send=1"); code != 503 {
		t.Fatalf("/readyz?send=1 with the disk full: %d %q, want 503", code, body)
	}
	if code, body := commit(2); code != 503 || !strings.Contains(body, "data disk is full") {
		t.Fatalf("offset commit with the disk full: %d %s, want 503 saying the disk is full", code, body)
	}
	if code, body := do("POST", "/v1/topics", `{"name":"Later"}`); code != 503 || !strings.Contains(body, "data disk is full") {
		t.Fatalf("topic create with the disk full: %d %s, want 503 saying the disk is full", code, body)
	}
	if body := committed(); !strings.Contains(body, `"offset":1`) {
		t.Fatalf("offsets of g1 with the disk full: %s, want offset 1", body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	if ipoll.Until(context.Background(), 5*time.Second, 20*time.Millisecond, func() bool { return send() == 200 }) != nil {
		t.Fatal("sends still refused 5 s after space was freed")
	}
	t.Logf("sends accepted again %v after space was freed", time.Since(freed).Round(time.Millisecond))
	for range 10 {
		if code := send(); code != 200 {
			t.Fatalf("send once space is freed answered %d", code)
		}
	}
	if code, body := get("/readyz?send=1"); code != 200 {
		t.Fatalf("/readyz?send=1 once space is freed: %d %q", code, body)
	}
	if code, body := commit(3); code != 200 {
		t.Fatalf("offset commit once space is freed: %d %s", code, body)
	}
	if code, body := do("POST", "/v1/topics", `{"name":"Later"}`); code/100 != 2 {
		t.Fatalf("topic create once space is freed: %d %s", code, body)
	}

	// Every acknowledged message is where its answer said, once.
	for id, a := range acks {
		var page struct {
			Messages []struct {
				Body string `json:"body"`
			} `json:"messages"`
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body := get(fmt.Sprintf("/v1/topics/Fill/queues/%d/messages?offset=%d&max=1", a.queue, a.offset))
			if code != 200 {
				t.Fatalf("read %s at %d/%d: %d %s", id, a.queue, a.offset, code, body)
			}
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) == 1 || time.Now().After(deadline) {
				break
			}
		}
		if len(page.Messages) != 1 || !strings.HasPrefix(page.Messages[0].Body, id) {
			t.Fatalf("acknowledged message %s not at queue %d offset %d", id, a.queue, a.offset)
		}
	}

	// The offsets and the topic survive a restart.
	p.stop()
	if p, err = spawnServer(filepath.Join(mnt, "data")); err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	base = "http://" + p.http
	if body := committed(); !strings.Contains(body, `"offset":3`) {
		t.Fatalf("offsets of g1 after a restart: %s, want offset 3", body)
	}
	if code, body := get("/v1/topics/Later"); code != 200 {
		t.Fatalf("topic created once space was freed, after a restart: %d %s", code, body)
	}
}
