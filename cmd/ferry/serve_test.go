package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
