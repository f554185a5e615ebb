package main

import (
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
	}
	for _, c := range cases {
		_, stderr, code := ferry(t, "", c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("ferry %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}
