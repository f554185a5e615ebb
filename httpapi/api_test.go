package httpapi

import (
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ferrymq/ferry/broker"
)

// httpClient is a client for a test's requests, closed with the test.
func httpClient(t *testing.T) *http.Client {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// TestOpenAPIMatchesRoutes: docs/openapi.yaml describes exactly the
// (method, path) pairs the HTTP server serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                            `yaml:"openapi"`
		Paths   map[string]map[string]interface{} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}
	var documented []string
	for path, item := range doc.Paths {
		for m, op := range item {
			if !methods[m] {
				continue
			}
			if o, ok := op.(map[string]interface{}); !ok || o["responses"] == nil {
				t.Errorf("%s %s has no responses", m, path)
			}
			documented = append(documented, strings.ToUpper(m)+" "+path)
		}
	}
	var served []string
	for _, r := range routes {
		served = append(served, r.key())
	}
	for _, r := range healthRoutes {
		served = append(served, r[0]+" "+r[1])
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("openapi.yaml and the router differ\ndocumented:\n%s\n\nserved:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
}

// TestConsoleMounted: the broker's HTTP port serves the console, and /
// leads there.
func TestConsoleMounted(t *testing.T) {
	b, _ := startBroker(t, nil)
	base, hc := "http://"+b.HTTPAddr(), httpClient(t)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if r, _ := get("/"); r.StatusCode != 302 || r.Header.Get("Location") != "/console/" {
		t.Fatalf("GET /: %d %v", r.StatusCode, r.Header)
	}
	r, body := get("/console/groups/g1")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, "/console/app.js") {
		t.Fatalf("GET /console/groups/g1: %d %v", r.StatusCode, r.Header)
	}
	if r, body := get("/v1/broker"); r.StatusCode != 200 { // the API is still the API
		t.Fatalf("GET /v1/broker: %d %s", r.StatusCode, body)
	}
}

// The profiler is off unless configured: /debug/pprof/ is then an unknown
// API path.
func TestPprofOnlyWhenConfigured(t *testing.T) {
	for _, on := range []bool{false, true} {
		b, _ := startBroker(t, func(c *broker.Config) { c.Pprof = on })
		resp, err := httpClient(t).Get("http://" + b.HTTPAddr() + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; resp.StatusCode != want {
			t.Errorf("pprof=%v: GET /debug/pprof/cmdline = %d, want %d", on, resp.StatusCode, want)
		}
	}
}
