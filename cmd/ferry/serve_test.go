package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
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
	cmd := exec.Command("/bin/sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, os.Args[0], "server",
		"--data-dir", t.TempDir(), "--namesrv-port", "0", "--broker-port", "0", "--http-port", "0",
		"--host", "127.0.0.1", "--advertise-host", "127.0.0.1", "--log-format", "json")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a server under ulimit: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	var mu sync.Mutex
	var logLines []string
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logLines = append(logLines, sc.Text())
			mu.Unlock()
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == "broker ready" {
				ready <- line
			}
		}
	}()
	logged := func(parts ...string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logLines {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				return true
			}
		}
		return false
	}
	var brokerAddr, httpAddr string
	select {
	case line := <-ready:
		brokerAddr, _ = line["addr"].(string)
		httpAddr, _ = line["http"].(string)
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready after 30s")
	}

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
		_, err := rc.Invoke(ctx, brokerAddr, remoting.NewRequest(remoting.ReqHeartBeat, nil, nil))
		return err == nil
	})
	if logged("Permanent error") {
		t.Fatal("fasthttp gave up accepting")
	}
}

// poll checks cond until it holds or d passes.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
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
