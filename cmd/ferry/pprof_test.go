package main

import (
	"strings"
	"testing"
)

// The profiler is off by default and turned on by the flag, the
// environment or the file.
func TestPprofSetting(t *testing.T) {
	cases := []struct {
		env  string
		args []string
		want string
	}{
		{"", nil, "pprof = false"},
		{"", []string{"--pprof"}, "pprof = true"},
		{"true", nil, "pprof = true"},
		{"", []string{"--config", writeConfig(t, "[broker]\npprof = true\n")}, "pprof = true"},
	}
	for _, c := range cases {
		if c.env != "" {
			t.Setenv("FERRY_PPROF", c.env)
		}
		out, stderr, code := ferry(t, "", append([]string{"server", "--print-config"}, c.args...)...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("FERRY_PPROF=%q ferry server --print-config %v: exit %d, want %q\n%s%s", c.env, c.args, code, c.want, out, stderr)
		}
	}
}
