package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ferryBin is the binary built from this checkout by TestMain.
var ferryBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ferry-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ferryBin = filepath.Join(dir, "ferry")
	build := exec.Command(goTool(), "build", "-o", ferryBin, "./cmd/ferry")
	build.Dir = ".." // the main module
	build.Env = append(os.Environ(), "GOWORK=off")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building ferry:", err)
		return 1
	}
	return m.Run()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// server is a running `ferry server` on random ports with its own data
// directory.
type server struct {
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port
	namesrv  string // 127.0.0.1:port
	mu       sync.Mutex
	log      []string
	ready    chan struct{}
	exited   chan struct{}
	hc       *http.Client
	readyErr error
	nsOnly   bool // a name server alone: ready when it listens
}

// startServer starts ferry with the given extra flags and waits until its
// HTTP port answers.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	return startFerry(t, append([]string{"server", "--data-dir", filepath.Join(t.TempDir(), "data"), "--namesrv-port", "0",
		"--broker-port", "0", "--http-port", "0", "--host", "127.0.0.1", "--advertise-host", "127.0.0.1",
		"--log-format", "json"}, extra...))
}

// startBroker starts `ferry broker run` named name, registering with the
// name server at namesrv, and waits until its HTTP port answers.
func startBroker(t testing.TB, namesrv, name string, extra ...string) *server {
	t.Helper()
	return startFerry(t, append([]string{"broker", "run", "--data-dir", filepath.Join(t.TempDir(), "data"), "--namesrv", namesrv,
		"--broker-name", name, "--broker-port", "0", "--http-port", "0", "--host", "127.0.0.1", "--advertise-host", "127.0.0.1",
		"--log-format", "json"}, extra...))
}

// startFerry runs the ferry binary with args until the test ends.
func startFerry(t testing.TB, args []string) *server {
	t.Helper()
	return startFerryProc(t, args, false)
}

// startNamesrv runs `ferry namesrv` with args until the test ends and
// waits until it listens; its address is in namesrv.
func startNamesrv(t testing.TB, args ...string) *server {
	t.Helper()
	return startFerryProc(t, append([]string{"namesrv", "--namesrv-port", "0", "--host", "127.0.0.1", "--log-format", "json"}, args...), true)
}

func startFerryProc(t testing.TB, args []string, nsOnly bool) *server {
	t.Helper()
	s := &server{cmd: exec.Command(ferryBin, args...), ready: make(chan struct{}), exited: make(chan struct{}),
		hc: &http.Client{Timeout: 60 * time.Second}, nsOnly: nsOnly}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.read(stderr)
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // in case a test stopped it
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			t.Errorf("ferry did not stop within 30 s of SIGTERM")
		}
		if t.Failed() {
			s.mu.Lock()
			t.Logf("ferry log (last lines):\n%s", strings.Join(s.log[max(0, len(s.log)-40):], "\n"))
			s.mu.Unlock()
		}
	})
	select {
	case <-s.ready:
	case <-s.exited:
		t.Fatalf("ferry exited before it was ready:\n%s", strings.Join(s.log, "\n"))
	case <-time.After(60 * time.Second):
		t.Fatal("ferry not ready after 60 s")
	}
	return s
}

func (s *server) read(r io.Reader) {
	defer close(s.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	readied := false
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.log = append(s.log, line)
		s.mu.Unlock()
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if a, ok := m["addr"].(string); ok && m["message"] == "name server ready" {
			s.namesrv = a
			if s.nsOnly && !readied {
				readied = true
				close(s.ready)
			}
		}
		if h, ok := m["http"].(string); ok && m["message"] == "broker ready" && !readied {
			s.base = "http://" + h
			readied = true
			close(s.ready)
		}
	}
	_ = s.cmd.Wait()
}

// call sends a JSON request to the API and decodes the answer into out,
// failing the test unless the status is want.
func (s *server) call(t testing.TB, method, path string, body any, want int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// post sends a JSON body and ignores the answer (background traffic).
func (s *server) post(path, body string) {
	resp, err := s.hc.Post(s.base+path, "application/json", strings.NewReader(body))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
