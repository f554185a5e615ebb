package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/bench/layout"
	"github.com/ferrymq/ferry/bench/load"
	ipoll "github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/remoting"
)

// A bad broker setting is a usage error (exit 2) caught before the name
// server or anything else starts.
func TestServeRejectsBadConfig(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"server", "--data-dir", t.TempDir(), "--namesrv-port", "0", "--flush", "bogus"}, `flush "bogus" must be async or sync`},
		{[]string{"broker", "--data-dir", t.TempDir(), "--namesrv", "localhost:9876"}, "must be ip:port"},
		{[]string{"server", "--data-dir", t.TempDir(), "--namesrv-port", "99999"}, "is not a TCP port"},
		{[]string{"server", "--data-dir", t.TempDir(), "--delay-levels", "1s nope"}, "delay_levels"},
		{[]string{"server", "--data-dir", t.TempDir(), "--config", writeConfig(t, "[runtime]\ngc_percent = 0\n")}, "gc_percent 0"},
		{[]string{"namesrv", "--config", writeConfig(t, "[namesrv]\ncontroller_port = 70000\n")}, "controller_port 70000"},
		{[]string{"namesrv", "--config", writeConfig(t, "[namesrv]\ncontroller_port = 9878\ncontroller_peers = [\"a@h:1\"]\n")}, "controller_id must name"},
		{[]string{"namesrv", "--config", writeConfig(t, "[namesrv]\ncontroller_port = 9878\ncontroller_peers = [\"h:1\"]\n")}, "want id@host:port"},
		{[]string{"server", "--data-dir", t.TempDir(), "--config", writeConfig(t, "[runtime]\ngc_percent = -1\nmemory_limit = 0\n")}, "needs a memory_limit"},
	}
	for _, c := range cases {
		_, stderr, code := ferry(t, "", c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("ferry %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ferry.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The runtime table is read, shown by --print-config, and defaults to the
// collector setting a broker wants.
func TestRuntimeConfig(t *testing.T) {
	out, _, code := ferry(t, "", "server", "--print-config")
	if code != 0 || !strings.Contains(out, "gc_percent = 800") || !strings.Contains(out, "memory_limit = 1073741824") {
		t.Fatalf("defaults: exit %d\n%s", code, out)
	}
	out, _, code = ferry(t, "", "server", "--print-config", "--config", writeConfig(t, "[runtime]\ngc_percent = 200\nmemory_limit = 536870912\n"))
	if code != 0 || !strings.Contains(out, "gc_percent = 200") || !strings.Contains(out, "memory_limit = 536870912") {
		t.Fatalf("from the file: exit %d\n%s", code, out)
	}
}

// --print-config shows only a configuration the server would run with.
func TestPrintConfigValidates(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"server", "--print-config", "--flush", "sometimes"}, `flush "sometimes" must be async or sync`},
		{[]string{"broker", "--print-config", "--http-port", "70000"}, "http_port 70000 is not a TCP port"},
		{[]string{"server", "--print-config", "--max-connections", "10", "--max-connections-per-addr", "20"},
			"max_connections_per_addr 20 must be 1 to max_connections (10)"},
		{[]string{"namesrv", "--print-config", "--config", writeConfig(t, "[namesrv]\nmax_connections = 0\n")},
			"namesrv max_connections 0 must be at least 1"},
		{[]string{"namesrv", "--print-config", "--read-timeout", "0s"}, "namesrv idle_timeout and read_timeout must be positive"},
	}
	for _, c := range cases {
		out, stderr, code := ferry(t, "", c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || out != "" {
			t.Errorf("ferry %v: exit %d, stdout %q, stderr %q; want exit 2, no output and %q", c.args, code, out, stderr, c.want)
		}
	}
	help, _, _ := ferry(t, "", "server", "--help")
	for _, want := range []string{"(default: 2m0s) [$FERRY_IDLE_TIMEOUT]", "(default: 1m0s) [$FERRY_READ_TIMEOUT]",
		"(default: 10000) [$FERRY_MAX_CONNECTIONS]", "(default: 1000) [$FERRY_MAX_CONNECTIONS_PER_ADDR]"} {
		if !strings.Contains(help, want) {
			t.Errorf("server --help lacks %q (one default per flag)", want)
		}
	}
	out, _, code := ferry(t, "", "server", "--print-config", "--idle-timeout", "30s", "--max-connections-per-addr", "50")
	if code != 0 || strings.Count(out, `idle_timeout = "30s"`) != 2 || strings.Count(out, "max_connections_per_addr = 50") != 2 {
		t.Fatalf("exit %d, config:\n%s", code, out)
	}
}

// Out of file descriptors as in production: a server under ulimit -n 256,
// more connections than that to its broker port and one HTTP request
// while it is out. Once they are closed, /livez and the broker port
// answer again.
func TestServerSurvivesFileDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and exhausts its descriptors")
	}
	p := startProcess(t, "ulimit -n 256", "broker ready", "server", "--data-dir", t.TempDir(), "--namesrv-port", "0",
		"--broker-port", "0", "--http-port", "0", "--host", "127.0.0.1", "--advertise-host", "127.0.0.1")
	logged := p.logged
	brokerAddr, _ := p.ready["addr"].(string)
	httpAddr, _ := p.ready["http"].(string)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range 300 {
		c, err := net.DialTimeout("tcp", brokerAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// The HTTP request must find the process out of descriptors: wait
	// until the broker port has used the last of them (on a loaded
	// machine its accept loop can lag behind the dials).
	poll(t, 30*time.Second, "the broker port's accept error", func() bool {
		return logged(`"port":"remoting"`, "too many open files")
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	if resp, err := hc.Get("http://" + httpAddr + "/readyz"); err == nil {
		resp.Body.Close() // answered after all: fine, not what is tested
	}
	poll(t, 10*time.Second, "the HTTP port's accept error", func() bool {
		return logged(`"port":"http"`, "too many open files") || logged("Permanent error", "too many open files")
	})
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil

	poll(t, 20*time.Second, "/livez answering again", func() bool {
		resp, err := hc.Get("http://" + httpAddr + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	rc := remoting.NewClient(remoting.ClientConfig{})
	defer rc.Close()
	poll(t, 20*time.Second, "the broker port answering again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := rc.Invoke(ctx, brokerAddr, remoting.NewRequest(protocol.ReqHeartBeat, nil, nil))
		return err == nil
	})
	if logged("Permanent error") {
		t.Fatal("fasthttp gave up accepting")
	}
}

// ferryProcess is this test binary running as the ferry binary.
type ferryProcess struct {
	ready map[string]any // the log line the start waited for
	mu    sync.Mutex
	lines []string
}

// startProcess runs ferry args under sh after the shell command prefix
// (such as a ulimit), with a JSON log, until readyMsg is logged; it is
// stopped at cleanup.
func startProcess(t *testing.T, prefix, readyMsg string, args ...string) *ferryProcess {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", prefix + ` && exec "$0" "$@"`, os.Args[0]},
		append(args, "--log-format", "json")...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start ferry under sh: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	p := &ferryProcess{}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == readyMsg {
				ready <- line
			}
		}
	}()
	select {
	case p.ready = <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("ferry %v: no %q after 30s", args, readyMsg)
	}
	return p
}

// logged reports whether one log line contains every part.
func (p *ferryProcess) logged(parts ...string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(l, part)
		}
		if all {
			return true
		}
	}
	return false
}

// The name server's port takes the connection settings too.
func TestNamesrvConnectionSettings(t *testing.T) {
	p := startProcess(t, "true", "name server ready", "namesrv", "--namesrv-port", "0", "--host", "127.0.0.1",
		"--idle-timeout", "300ms", "--max-connections-per-addr", "1")
	addr := "127.0.0.1:" + fmt.Sprint(p.ready["port"])
	first, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	second, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	for _, c := range []struct {
		conn net.Conn
		what string
		min  time.Duration
	}{{second, "a second connection from one address (limit 1)", 0}, {first, "an idle connection (300ms)", 250 * time.Millisecond}} {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.conn.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
			t.Fatalf("%s was not closed: %v", c.what, err)
		}
		if d := time.Since(start); d < c.min {
			t.Fatalf("%s closed after %v", c.what, d)
		}
	}
	poll(t, 5*time.Second, "the refusal logged", func() bool {
		return p.logged(`"port":"remoting"`, "connection refused: too many connections from one address")
	})
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// poll checks cond until it holds or d passes.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if ipoll.Until(context.Background(), d, 20*time.Millisecond, cond) != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// ferry bench's subcommands take urfave/cli flags like every other
// command and hand them to the benchmark as its Go flags.
func TestBenchFlags(t *testing.T) {
	out, _, code := ferry(t, "", "bench", "produce", "--help")
	if code != 0 || !strings.Contains(out, "--producers value") || !strings.Contains(out, "(default: 4)") ||
		!strings.Contains(out, "--duration value") || strings.Contains(out, "-producers int") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
	if _, stderr, code := ferry(t, "", "bench", "consume", "--size", "abc"); code != 2 || !strings.Contains(stderr, `invalid value "abc" for flag -size`) {
		t.Fatalf("bad value: exit %d, %q", code, stderr)
	}
	if _, stderr, code := ferry(t, "", "bench", "layout", "extra"); code != 2 || !strings.Contains(stderr, "takes no arguments") {
		t.Fatalf("argument: exit %d, %q", code, stderr)
	}
	for _, tc := range []struct {
		fs   *flag.FlagSet
		args []string
		want map[string]string
	}{
		{load.FlagSet("produce"), []string{"--batch", "10", "--quiet", "--duration", "1m30s"},
			map[string]string{"batch": "10", "quiet": "true", "duration": "1m30s", "size": "1024"}},
		{layout.FlagSet(), []string{"--batch", "10", "--quick", "--max-duration", "1m30s", "--topics", "1,8"},
			map[string]string{"batch": "10", "quick": "true", "max-duration": "1m30s", "topics": "1,8"}},
	} {
		var got []string
		app := &cli.App{Commands: []*cli.Command{benchSubcommand("x", "", tc.fs, func(a []string) int { got = a; return 0 })},
			ExitErrHandler: func(*cli.Context, error) {}}
		if err := app.Run(append([]string{"app", "x"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if err := tc.fs.Parse(got); err != nil {
			t.Fatalf("%v do not parse as Go flags: %v", got, err)
		}
		for name, want := range tc.want {
			if v := tc.fs.Lookup(name).Value.String(); v != want {
				t.Errorf("%s: %s = %s, want %s (args %v)", tc.fs.Name(), name, v, want, got)
			}
		}
	}
}
