package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// Help shows each flag's default once, and the real one.
func TestHelpShowsOneDefault(t *testing.T) {
	for _, cmd := range [][]string{{"server"}, {"namesrv"}, {"broker", "run"}} {
		out, _, code := ferry(t, "", append(cmd, "--help")...)
		if code != 0 {
			t.Fatalf("ferry %v --help: exit %d", cmd, code)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Count(line, "(default") > 1 || strings.Contains(line, "(default: 0)") {
				t.Errorf("ferry %v --help: %q", cmd, line)
			}
		}
		want := "(default: 9876)"
		if cmd[0] == "broker" {
			want = "create unknown topics on first send (default: true)"
		}
		if !strings.Contains(out, want) || !strings.Contains(out, "(default: info)") {
			t.Errorf("ferry %v --help does not show the real defaults:\n%s", cmd, out)
		}
	}
}

// `ferry broker run` runs a broker; `ferry broker` alone shows its
// commands (a usage error), an unknown one is refused, and the old
// `ferry broker <flags>` still runs a broker.
func TestBrokerCommand(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"broker"}, "ferry broker run"},
		{[]string{"broker", "stauts"}, `unknown command "stauts"`},
		{[]string{"broker", "run", "--data-dir", t.TempDir(), "--namesrv", "localhost:9876"}, "must be ip:port"},
		{[]string{"broker", "--data-dir", t.TempDir(), "--namesrv", "localhost:9876"}, "must be ip:port"},
	}
	for _, c := range cases {
		out, errs, code := ferry(t, "", c.args...)
		if code != 2 || !strings.Contains(out+errs, c.want) {
			t.Errorf("ferry %v: exit %d, %q %q; want exit 2 and %q", c.args, code, out, errs, c.want)
		}
	}
}

// The global flags work before the command too, as the README shows them.
func TestGlobalFlagsBeforeCommand(t *testing.T) {
	startServer(t)
	out, errs, code := ferry(t, "", "-o", "json", "--namesrv", srv.namesrv, "--timeout=20s", "cluster", "list", "--interval", "0")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["brokers"] == nil {
		t.Fatalf("ferry -o json --namesrv … cluster list: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = ferry(t, "", "--no-headers", "-n", srv.namesrv, "cluster", "list", "--interval", "0")
	if code != 0 || strings.Contains(out, "CLUSTER") || !strings.Contains(out, "broker-a") {
		t.Fatalf("ferry --no-headers -n … cluster list: exit %d\n%s%s", code, out, errs)
	}
}
