package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/client/admin"
	ipoll "github.com/ferrymq/ferry/internal/poll"
	"go.uber.org/goleak"
)

// The ops commands run against a live `ferry server`: this test binary
// started again as the ferry binary (same code path as the real one), on
// free ports, in a temporary data directory. Output is compared with
// testdata/*.golden after masking addresses, times and ids; -update
// rewrites the golden files.

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const childEnv = "FERRY_OPS_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		// Run as the ferry binary.
		os.Exit(run(append([]string{"ferry"}, os.Args[1:]...), os.Stdin, os.Stdout, os.Stderr))
	}
	flag.Parse()
	code := m.Run()
	stopServer()
	// No goroutine outlives the tests (the servers run in a child process;
	// the ops commands' clients run here). fasthttp keeps a process-wide
	// date updater once a server of it has run.
	if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2")); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		code = 1
	}
	os.Exit(code)
}

var srv struct {
	cmd     *exec.Cmd
	dir     string
	namesrv string
	broker  string
	http    string
	err     error
	started bool
}

// startServer starts the shared server once.
func startServer(t *testing.T) {
	t.Helper()
	if srv.started {
		if srv.err != nil {
			t.Fatal(srv.err)
		}
		return
	}
	srv.started = true
	srv.err = func() error {
		dir, err := os.MkdirTemp("", "ferry-ops-test")
		if err != nil {
			return err
		}
		srv.dir = dir
		p, err := spawnServer(filepath.Join(dir, "data"))
		if p != nil {
			srv.cmd = p.cmd
		}
		if err != nil {
			return err
		}
		srv.namesrv, srv.broker, srv.http = p.namesrv, p.broker, p.http
		// Wait until the name server lists the broker.
		a, err := admin.New(srv.namesrv)
		if err != nil {
			return err
		}
		defer a.Close()
		if ipoll.Until(context.Background(), 20*time.Second, 20*time.Millisecond, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			bs, berr := a.Brokers(ctx, 0)
			err = berr
			return err == nil && len(bs) > 0 && bs[0].Error == ""
		}) != nil {
			return fmt.Errorf("broker never registered: %v", err)
		}
		return nil
	}()
	if srv.err != nil {
		t.Fatal(srv.err)
	}
}

// process is a `ferry server` child process and the addresses it logged.
type process struct {
	cmd                   *exec.Cmd
	namesrv, broker, http string
}

// spawnServer starts this test binary as `ferry server` on free ports of
// 127.0.0.1 with its data in dataDir, and waits until it logs that it is
// ready. The caller stops it (stop).
func spawnServer(dataDir string, extra ...string) (*process, error) {
	args := append([]string{"server", "--data-dir", dataDir, "--namesrv-port", "0",
		"--broker-port", "0", "--http-port", "0", "--host", "127.0.0.1", "--advertise-host", "127.0.0.1", "--log-format", "json"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		done := false
		for sc.Scan() {
			if done {
				continue // keep draining the server's log
			}
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line["message"] {
			case "name server ready":
				p.namesrv = "127.0.0.1:" + fmt.Sprint(line["port"])
			case "broker ready":
				p.broker, _ = line["addr"].(string)
				p.http, _ = line["http"].(string)
				done = true
				ready <- nil
			}
		}
		if !done {
			ready <- fmt.Errorf("server exited before it was ready")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			return p, err
		}
	case <-time.After(30 * time.Second):
		return p, fmt.Errorf("server not ready after 30s")
	}
	return p, nil
}

// stop interrupts the process and waits for it, killing it after 10 s.
func (p *process) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

func stopServer() {
	if srv.cmd != nil {
		(&process{cmd: srv.cmd}).stop()
	}
	if srv.dir != "" {
		_ = os.RemoveAll(srv.dir)
	}
}

// ferry runs one command line in-process and returns its output and exit
// code.
func ferry(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"ferry"}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<TIME>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "<ADDR>"},
	{regexp.MustCompile(`\b[0-9A-F]{32}\b`), "<ID>"},
	{regexp.MustCompile(`"(born_ms|store_ms|last_store_ms|last_consumed_ms|failed_at_ms|born_at_ms)": ?[1-9]\d*`), `"$1": <MS>`},
	{regexp.MustCompile(`"(uptime_seconds|disk_used_ratio|msg_in_per_sec|msg_out_per_sec|msg_in_total|msg_out_total)": ?[0-9.e+-]+`), `"$1": <N>`},
	{regexp.MustCompile(`\b\d+\.\d%`), "<PCT>"},
	{regexp.MustCompile(`<PCT>\s+\d+\.\d\s+\d+\.\d`), "<PCT>  <R>  <R>"}, // rates vary, and so their width
	{regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+s\b`), "<DUR>"},
	{regexp.MustCompile(`"(commitlog_max_offset)": \d+`), `"$1": <N>`},
	{regexp.MustCompile(`"(commit_log_offset|stored_ms|age_ms|expires_ms|last_seen_ms)": \d+`), `"$1": <N>`},
	{regexp.MustCompile(`\b(client-\d+@)\d+\b`), "${1}<PID>"},
	// Masked values change the width of table columns: align with two
	// spaces whatever the padding was.
	{regexp.MustCompile(`(\S) {2,}`), "$1  "},
}

func mask(s string) string {
	for _, m := range masks {
		s = m.re.ReplaceAllString(s, m.with)
	}
	return s
}

// step is one command and what it must do.
type step struct {
	name  string // golden file name; "" checks only the exit code
	args  []string
	stdin string
	code  int
	// errHas must appear in stderr.
	errHas string
	// http says how the step runs again over the HTTP API.
	http httpMode
}

// httpMode is how a step of TestOps is repeated over the HTTP API.
type httpMode int

const (
	httpSame httpMode = iota // same output: the same golden file
	httpOwn                  // its own golden file, <name>.http.golden
	httpOnce                 // not repeated (it changes state); see TestOps's HTTP part
)

// overHTTP is the step as it runs over the HTTP API.
func (s step) overHTTP() step {
	if s.http == httpOwn && s.name != "" {
		s.name += ".http"
	}
	return s
}

func (s step) check(t *testing.T, env ...string) {
	t.Helper()
	args := append(append([]string{}, s.args...), env...)
	out, errs, code := ferry(t, s.stdin, args...)
	if code != s.code {
		t.Fatalf("ferry %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(s.args, " "), code, s.code, out, errs)
	}
	if s.errHas != "" && !strings.Contains(errs, s.errHas) {
		t.Fatalf("ferry %s: stderr %q does not say %q", strings.Join(s.args, " "), errs, s.errHas)
	}
	if s.name == "" {
		return
	}
	got := mask("$ ferry " + strings.Join(s.args, " ") + "\n" + out + "--- stderr\n" + errs + "--- exit " + strconv.Itoa(code) + "\n")
	path := filepath.Join("testdata", s.name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (rerun with -update if the change is intended)\n--- got\n%s--- want\n%s", s.name, path, got, want)
	}
}

// TestOps runs every ops command in order against one live server: each
// step through the name server, then again through the broker's HTTP API
// unless it changes state (those run over HTTP on their own resources at
// the end).
