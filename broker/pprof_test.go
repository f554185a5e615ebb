package broker

import (
	"net/http"
	"testing"
)

// The profiler is off unless configured: /debug/pprof/ is then an unknown
// API path.
func TestPprofOnlyWhenConfigured(t *testing.T) {
	for _, on := range []bool{false, true} {
		_, a := testHTTPBroker(t, func(c *Config) { c.Pprof = on })
		r := a.do("GET", "/debug/pprof/cmdline", nil, "")
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; r.status != want {
			t.Errorf("pprof=%v: GET /debug/pprof/cmdline = %d, want %d", on, r.status, want)
		}
	}
}
